package engine

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/announce"
)

// recordingAnnouncer keeps every set the engine hands over.
type recordingAnnouncer struct {
	mu   sync.Mutex
	sets [][]announce.Route
}

func (r *recordingAnnouncer) Announce(routes []announce.Route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets = append(r.sets, routes)
}

// last is the latest set and how many sets were handed over.
func (r *recordingAnnouncer) last() ([]announce.Route, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil, 0
	}
	return r.sets[len(r.sets)-1], len(r.sets)
}

func announceConfig(cfg *config.Config) *config.Config {
	cfg.RouteTable = &config.RouteTable{Table: 100, Device: "lo"}
	cfg.Announce = config.Announce{HoldDown: 0, UnhealthyAfter: 200 * time.Millisecond}
	med := uint32(7)
	cfg.VirtualServers[0].Announce = config.VIPAnnounce{Enabled: true, Rule: "all", Communities: []uint32{65000<<16 | 1}, MED: &med}
	return cfg
}

func (r *recordingAnnouncer) waitFor(t *testing.T, what string, want bool) {
	t.Helper()
	poll(t, what, func() bool {
		routes, _ := r.last()
		return (len(routes) == 1) == want
	})
}

// The engine hands the announcer the VIP once the pool is healthy, with
// its attributes, withdraws it when the pool fails and announces it again
// when it comes back, logging one line for each with the reason; the
// status shows the decision.
func TestAnnounceFollowsPool(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	rec := &recordingAnnouncer{}
	h, logs := startAdmin(t, announceConfig(testConfig("quiesce", b1, b2)), ipvs.NewMemory(), func(o *Options) { o.Announcer = rec })
	rec.waitFor(t, "VIP announced", true)
	routes, _ := rec.last()
	want := announce.Route{Prefix: netip.MustParsePrefix("192.0.2.10/32"), Communities: []uint32{65000<<16 | 1}, HasMED: true, MED: 7}
	if !routes[0].Equal(want) {
		t.Errorf("route %+v, want %+v", routes[0], want)
	}
	st := waitStatus(t, h.engine, "VIP in status", func(s Status) bool { return len(s.VIPs) == 1 && s.VIPs[0].Announced })
	if st.VIPs[0].Cause != "healthy" || st.VIPs[0].Since.IsZero() {
		t.Errorf("status %+v", st.VIPs[0])
	}

	b1.stop()
	b2.stop()
	rec.waitFor(t, "VIP withdrawn with the pool down", false)
	if logs.Count("VIP withdrawn", "vip=192.0.2.10", "cause=pool_unhealthy", "no real server serving") != 1 {
		t.Errorf("want one withdraw line with the reason:\n%s", logs)
	}
	if v := h.gauge("director_vip_announced", map[string]string{"vip": "192.0.2.10"}); v != 0 {
		t.Errorf("director_vip_announced = %v, want 0", v)
	}
	b1.start()
	rec.waitFor(t, "VIP announced again", true)
	if logs.Count("VIP announced", "vip=192.0.2.10", "cause=healthy") != 2 {
		t.Errorf("want two announce lines:\n%s", logs)
	}
}

// A director whose kernel table cannot be reconciled for unhealthy_after
// withdraws its VIPs though the pool is healthy, and announces them again
// once the table is right.
func TestAnnounceWithdrawsWhenTableUnreconciled(t *testing.T) {
	b1 := newBackend(t)
	cfg := announceConfig(testConfig("quiesce", b1))
	cfg.Director.ResyncInterval = 30 * time.Millisecond
	table := &readFailTable{Table: ipvs.NewMemory()}
	rec := &recordingAnnouncer{}
	_, logs := startAdmin(t, cfg, table, func(o *Options) { o.Announcer = rec })
	rec.waitFor(t, "VIP announced", true)
	err := errors.New("operation not permitted")
	table.fail.Store(&err)
	rec.waitFor(t, "VIP withdrawn while the table cannot be read", false)
	if logs.Count("VIP withdrawn", "cause=director_unhealthy", "kernel table has not been reconciled for") != 1 {
		t.Errorf("want one withdraw line naming the table:\n%s", logs)
	}
	table.fail.Store(nil)
	rec.waitFor(t, "VIP announced again", true)
}

// The loop hands the set over on every admin poll even when nothing
// changes: that is the announcers' heartbeat.
func TestAnnounceHeartbeat(t *testing.T) {
	b1 := newBackend(t)
	rec := &recordingAnnouncer{}
	startAdmin(t, announceConfig(testConfig("quiesce", b1)), ipvs.NewMemory(), func(o *Options) { o.Announcer = rec })
	rec.waitFor(t, "VIP announced", true)
	_, n := rec.last()
	if !testutil.Within(2*time.Second, func() bool { _, m := rec.last(); return m >= n+5 }) {
		t.Errorf("fewer than 5 hand-overs in 2s at a 20ms admin poll")
	}
}
