package announcer

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/internal/bgptest"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/announce"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func speakerConfig(port int) config.BGP {
	return config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("10.255.0.2"), ListenPort: -1,
		Peers: []config.BGPPeer{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000, Port: uint16(port), HoldTime: 9 * time.Second}}}
}

func startSpeaker(t *testing.T, port int, m *metrics.Announce) (*BGP, *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := StartBGP(ctx, speakerConfig(port), testLogger(), m)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(b, Options{Logger: testLogger(), Metrics: m, StuckAfter: time.Minute, Retry: 100 * time.Millisecond})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; b.Stop() })
	return b, r
}

var (
	vipA = netip.MustParsePrefix("192.0.2.10/32")
	vipB = netip.MustParsePrefix("192.0.2.20/32")
)

// The speaker announces what it is handed with its attributes, sends
// nothing when handed the same set again, withdraws what leaves the set,
// and WithdrawAll leaves the router with nothing.
func TestSpeakerIncremental(t *testing.T) {
	rt := bgptest.Start(t, testLogger())
	b, r := startSpeaker(t, rt.Port, nil)
	a := announce.Route{Prefix: vipA, Communities: []uint32{65000<<16 | 100}, HasMED: true, MED: 5}
	r.Announce([]announce.Route{a, {Prefix: vipB}})
	rt.WaitRIB(t, "both announced", vipA, vipB)
	if ps := b.Peers(); len(ps) != 1 || !ps[0].Established || ps[0].State != "established" {
		t.Errorf("peers %+v, want one established", ps)
	}
	p := rt.RIB(t)[vipA]
	var comms []uint32
	var med uint32
	var nh netip.Addr
	for _, attr := range p.Attrs {
		switch v := attr.(type) {
		case *bgp.PathAttributeCommunities:
			comms = v.Value
		case *bgp.PathAttributeMultiExitDisc:
			med = v.Value
		case *bgp.PathAttributeNextHop:
			nh = v.Value
		}
	}
	if !slices.Equal(comms, a.Communities) || med != 5 || nh != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("attributes: communities %v med %d next hop %s; want %v, 5, the session's address", comms, med, nh, a.Communities)
	}

	before := rt.Updates()
	for range 20 {
		r.Announce([]announce.Route{{Prefix: vipB}, a})
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if n := rt.Updates(); n != before {
		t.Errorf("the same set handed over 20 times sent %d updates, want none", n-before)
	}

	r.Announce([]announce.Route{a})
	rt.WaitRIB(t, "B withdrawn", vipA)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.WithdrawAll(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	rt.WaitRIB(t, "all withdrawn")
	r.Announce([]announce.Route{a})
	time.Sleep(300 * time.Millisecond)
	if got := rt.RIB(t); len(got) != 0 {
		t.Errorf("announced %v after WithdrawAll, want nothing", got)
	}
}

// The heartbeat: when the engine stops handing routes over, the speaker
// withdraws everything, and announces again when it comes back.
func TestSpeakerWithdrawsWhenEngineStuck(t *testing.T) {
	rt := bgptest.Start(t, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := StartBGP(ctx, speakerConfig(rt.Port), testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	r := NewRunner(b, Options{Logger: testLogger(), StuckAfter: 300 * time.Millisecond, Retry: 50 * time.Millisecond})
	go r.Run(ctx)
	beat := func(until func() bool) (last time.Time) {
		for !until() {
			last = time.Now()
			r.Announce([]announce.Route{{Prefix: vipA}})
			time.Sleep(50 * time.Millisecond)
		}
		return last
	}
	has := func() bool { return rt.RIB(t)[vipA] != nil }
	quiet := beat(has) // the session takes a moment to come up
	rt.WaitRIB(t, "withdrawn once the engine went quiet")
	if d := time.Since(quiet); d < 300*time.Millisecond {
		t.Errorf("withdrawn %s after the last hand-over, before stuck_after", d)
	}
	beat(has)
}

// A peer that refuses connections blocks nothing: routes are taken at
// once and the router gets them when it comes up.
func TestSpeakerPeerDownBlocksNothing(t *testing.T) {
	port := bgptest.FreePort(t) // nobody listens yet
	_, r := startSpeaker(t, port, nil)
	start := time.Now()
	r.Announce([]announce.Route{{Prefix: vipA}})
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("Announce took %s with the peer down", d)
	}
	poll := time.Now().Add(5 * time.Second)
	for len(r.Held()) != 1 && time.Now().Before(poll) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.Held(); len(got) != 1 {
		t.Fatalf("speaker holds %v with its peer down, want the VIP", got)
	}
}

// httpBackend is a real server on loopback the engine checks; stop makes
// its checks fail.
type httpBackend struct {
	addr netip.AddrPort
	srv  *http.Server
}

func newHTTPBackend(t *testing.T) *httpBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &httpBackend{addr: netip.MustParseAddrPort(ln.Addr().String()),
		srv: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })}}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// The whole path on loopback: the engine checks a pool, the speaker
// announces its VIP to the router; the pool failing withdraws the route
// within one check interval + 1s; a reload that does not touch the VIP
// sends the router nothing and leaves the route's age alone.
func TestEngineToRouter(t *testing.T) {
	rt := bgptest.Start(t, testLogger())
	m := metrics.New(metrics.Build{Version: "test"})
	_, r := startSpeaker(t, rt.Port, metrics.NewAnnounce(m))
	b1, b2 := newHTTPBackend(t), newHTTPBackend(t)
	const interval = 500 * time.Millisecond
	web := config.VirtualServer{
		Name: "web", Address: netip.MustParseAddrPort("192.0.2.10:80"), Family: "ipv4", Protocol: "tcp", Scheduler: "mh",
		PersistenceNetmask: 32, Forwarding: "nat", OnFailure: "quiesce",
		Checks: []config.Check{{Type: "http", Interval: interval, Timeout: 200 * time.Millisecond, Rise: 1, Fall: 1,
			Options: checks.HTTPOptions{MaxBodyBytes: 1024, ExpectBody: "ok"}}},
		RealServers: []config.RealServer{{Address: b1.addr, Weight: 1, Forwarding: "nat"}, {Address: b2.addr, Weight: 1, Forwarding: "nat"}},
		Announce:    config.VIPAnnounce{Enabled: true, Rule: "all"},
	}
	cfg := &config.Config{Path: "test.toml",
		Director:       config.Director{Listen: "127.0.0.1:0", ResyncInterval: time.Hour, OnFailure: "quiesce", OnShutdown: "keep"},
		Announce:       config.Announce{HoldDown: 0, UnhealthyAfter: time.Minute},
		BGP:            &config.BGP{ASN: 65001},
		VirtualServers: []config.VirtualServer{web},
	}
	eng, err := engine.New(cfg, engine.Options{Table: ipvs.NewMemory(), Metrics: m, Logger: testLogger(), Announcer: r, AdminPoll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()

	rt.WaitRIB(t, "announced once the pool is up", vipA)
	age := rt.RIB(t)[vipA].Age

	// An unrelated reload: a new virtual server that announces nothing.
	next := *cfg
	other := web
	other.Name, other.Address, other.Announce = "other", netip.MustParseAddrPort("192.0.2.99:80"), config.VIPAnnounce{}
	next.VirtualServers = []config.VirtualServer{web, other}
	before := rt.Updates()
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	if err := eng.Reload(rctx, &next); err != nil {
		t.Fatal(err)
	}
	rcancel()
	time.Sleep(2 * interval)
	if n := rt.Updates() - before; n != 0 {
		t.Errorf("an unrelated reload sent the router %d updates, want none", n)
	}
	if got := rt.RIB(t)[vipA]; got == nil || got.Age != age {
		t.Errorf("the route changed across an unrelated reload: %+v (age was %d)", got, age)
	}

	failed := time.Now()
	b1.srv.Close()
	b2.srv.Close()
	withdrawn := rt.WaitRIB(t, "withdrawn once the pool failed")
	if took := withdrawn.Sub(failed); took > interval+time.Second {
		t.Errorf("withdraw reached the router %s after the pool failed, want within one interval + 1s (%s)", took, interval+time.Second)
	} else {
		t.Logf("withdraw reached the router %s after the pool failed", took.Round(time.Millisecond))
	}
}
