package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/internal/logbuf"
	"github.com/lvsdirector/director/ipvs"
)

var (
	ssA = netip.MustParseAddrPort("10.0.0.1:80")
	ssB = netip.MustParseAddrPort("10.0.0.2:80")
	ssC = netip.MustParseAddrPort("10.0.0.3:80")
)

// switchProber fails while its server is switched down.
type switchProber struct{ down *atomic.Bool }

func (p switchProber) Probe(context.Context) checks.Result {
	if p.down.Load() {
		return checks.Result{Reason: "refused", Start: time.Now()}
	}
	return checks.Result{OK: true, Start: time.Now()}
}

// switches are the servers' health, by address, set by the test.
type switches map[netip.AddrPort]*atomic.Bool

func (s switches) prober(spec checks.Spec) (checks.Prober, error) {
	sw := s[spec.Target]
	if sw == nil {
		return nil, fmt.Errorf("no switch for %s", spec.Target)
	}
	return switchProber{sw}, nil
}

// startRamps runs an engine on cfg whose servers' health sw sets, and
// waits until a and b are up at weight 100.
func startRamps(t *testing.T, cfg *config.Config, sw switches) (*harness, ipvs.Table, *logbuf.Buffer) {
	t.Helper()
	table := ipvs.NewMemory()
	h, logs := startAdmin(t, cfg, table, func(o *Options) { o.NewProber = sw.prober })
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "both up")
	return h, table, logs
}

// bounce takes a down and waits until it is quiesced; the caller brings it back.
func bounce(h *harness, sw switches) {
	h.t.Helper()
	sw[ssA].Store(true)
	h.eventually(map[netip.AddrPort]uint32{ssA: 0, ssB: 100}, "a down")
}

// slowStartConfig is one wlc virtual server, web, with the given real
// servers at weight 100 and slow_start d.
func slowStartConfig(d time.Duration, addrs ...netip.AddrPort) *config.Config {
	cfg := testConfig("quiesce")
	vs := &cfg.VirtualServers[0]
	vs.Scheduler, vs.SlowStart = "wlc", d
	for _, a := range addrs {
		vs.RealServers = append(vs.RealServers, config.RealServer{Address: a, Weight: 100, Forwarding: "nat"})
	}
	return cfg
}

// weightTrace records, every few milliseconds, each new weight the table
// gives one destination of the test VIP (-1: absent), and when.
type weightTrace struct {
	mu    sync.Mutex
	seen  []int64
	times []time.Time
}

func traceWeights(t *testing.T, table ipvs.Table, addr netip.AddrPort) *weightTrace {
	tr := &weightTrace{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			w := int64(-1)
			if svcs, err := table.Services(ctx); err == nil {
				for _, s := range svcs {
					for _, d := range s.Destinations {
						if s.Key == webKey && d.Address == addr {
							w = int64(d.Weight)
						}
					}
				}
			}
			tr.mu.Lock()
			if n := len(tr.seen); n == 0 || tr.seen[n-1] != w {
				tr.seen, tr.times = append(tr.seen, w), append(tr.times, time.Now())
			}
			tr.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	poll(t, "the first weight traced", func() bool { return len(tr.all()) > 0 })
	return tr
}

// since returns the weights seen from the last time the trace reached
// from on, and when each was first seen.
func (tr *weightTrace) since(from int64) ([]int64, []time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i := len(tr.seen) - 1; i >= 0; i-- {
		if tr.seen[i] == from {
			return slices.Clone(tr.seen[i:]), slices.Clone(tr.times[i:])
		}
	}
	return nil, nil
}

// reaches waits until the trace's latest weight is w.
func (tr *weightTrace) reaches(t *testing.T, w int64) {
	t.Helper()
	poll(t, fmt.Sprintf("weight %d traced", w), func() bool { all := tr.all(); return all[len(all)-1] == w })
}

func (tr *weightTrace) all() []int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.seen)
}

// A server that comes back after failing ramps 1, 33, 67, 100 over a
// slow_start of 3s (three steps of 1s), shown in the status and a metric
// while it does; the servers of a director that starts do not ramp.
func TestSlowStartRamp(t *testing.T) {
	sw := switches{ssA: {}, ssB: {}}
	table := ipvs.NewMemory()
	tr := traceWeights(t, table, ssA)
	h, logs := startAdmin(t, slowStartConfig(3*time.Second, ssA, ssB), table, func(o *Options) { o.NewProber = sw.prober })
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "both up")
	tr.reaches(t, 100)
	if got := tr.all(); !slices.Equal(got, []int64{-1, 0, 100}) && !slices.Equal(got, []int64{-1, 100}) {
		t.Errorf("weights of a at start: %v, want its full weight at its first verdict, no ramp", got)
	}
	if n := logs.Count("slow start"); n != 0 {
		t.Errorf("%d slow start log lines at start, want none:\n%s", n, logs)
	}

	sw[ssA].Store(true)
	h.eventually(map[netip.AddrPort]uint32{ssA: 0, ssB: 100}, "a down")
	sw[ssA].Store(false)
	st := waitStatus(t, h.engine, "a in slow start", func(st Status) bool { r := serverIn(st, ssA.String()); return r != nil && r.SlowStart != nil })
	r := serverIn(st, ssA.String())
	if ss := r.SlowStart; ss.Target != 100 || ss.Weight >= 100 || ss.Until.Sub(ss.Since) != 3*time.Second {
		t.Errorf("status slow start %+v, want target 100, a weight below it, 3s long", *ss)
	}
	if v, ok := h.series("director_real_server_slow_start_ratio", map[string]string{"real_server": ssA.String()}); !ok || v <= 0 || v >= 1 {
		t.Errorf("director_real_server_slow_start_ratio = %v (present %v), want between 0 and 1 while ramping", v, ok)
	}
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "a back at its full weight")
	tr.reaches(t, 100)
	seen, at := tr.since(0)
	if want := []int64{0, 1, 33, 67, 100}; !slices.Equal(seen, want) {
		t.Fatalf("weights of a after it came back: %v, want %v", seen, want)
	}
	// The steps are timers, which never fire early: from 1 to 100 takes
	// at least the slow start.
	if took := at[4].Sub(at[1]); took < 2900*time.Millisecond || took > 10*time.Second {
		t.Errorf("the ramp took %v, want about 3s", took)
	}
	waitStatus(t, h.engine, "a out of slow start", func(st Status) bool { return serverIn(st, ssA.String()).SlowStart == nil })
	poll(t, "the slow start series removed", func() bool {
		_, ok := h.series("director_real_server_slow_start_ratio", map[string]string{"real_server": ssA.String()})
		return !ok
	})
	if n := logs.Count("real server in slow start", ssA.String()); n != 1 {
		t.Errorf("%d lines for the ramp's start, want 1:\n%s", n, logs)
	}
	poll(t, "the ramp's end logged", func() bool { return logs.Count("slow start over", ssA.String()) == 1 })
	if w, _ := weights(t, table, webKey); w[ssB] != 100 {
		t.Errorf("b at %d, want 100 throughout", w[ssB])
	}
}

// A server that fails mid-ramp starts its ramp again from the beginning
// when it comes back.
func TestSlowStartFailMidRamp(t *testing.T) {
	sw := switches{ssA: {}, ssB: {}}
	h, table, _ := startRamps(t, slowStartConfig(3*time.Second, ssA, ssB), sw)
	bounce(h, sw)
	sw[ssA].Store(false)
	h.eventually(map[netip.AddrPort]uint32{ssA: 33, ssB: 100}, "a ramping")
	tr := traceWeights(t, table, ssA)
	sw[ssA].Store(true)
	h.eventually(map[netip.AddrPort]uint32{ssA: 0, ssB: 100}, "a down mid-ramp")
	sw[ssA].Store(false)
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "a back")
	tr.reaches(t, 100)
	if seen, _ := tr.since(0); !slices.Equal(seen, []int64{0, 1, 33, 67, 100}) {
		t.Errorf("weights of a after failing mid-ramp: %v, want the ramp from the start: 0 1 33 67 100", seen)
	}
}

// An operator's drain takes a ramping server to 0; enabling it again
// starts a ramp, as coming back from down does.
func TestSlowStartAfterDrain(t *testing.T) {
	sw := switches{ssA: {}, ssB: {}}
	h, table, _ := startRamps(t, slowStartConfig(3*time.Second, ssA, ssB), sw)
	if _, err := h.engine.SetOverride(tctx(t), OverrideRequest{VirtualServer: "web", RealServer: ssA, Kind: OverrideDrain, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{ssA: 0, ssB: 100}, "a drained")
	tr := traceWeights(t, table, ssA)
	if err := h.engine.EnableServer(tctx(t), "web", ssA, "done", "test"); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "a back")
	tr.reaches(t, 100)
	if seen, _ := tr.since(0); !slices.Equal(seen, []int64{0, 1, 33, 67, 100}) {
		t.Errorf("weights of a after its drain ended: %v, want a ramp: 0 1 33 67 100", seen)
	}
}

// A reload mid-ramp: a new weight is ramped to from where the ramp is; a
// server the reload adds to the serving pool ramps, one of a new virtual
// server does not; slow_start turned off gives every weight at once.
func TestSlowStartReload(t *testing.T) {
	sw := switches{ssA: {}, ssB: {}, ssC: {}}
	h, table, logs := startRamps(t, slowStartConfig(10*time.Second, ssA, ssB), sw)
	bounce(h, sw)
	sw[ssA].Store(false)
	h.eventually(map[netip.AddrPort]uint32{ssA: 10, ssB: 100}, "a at its ramp's second step (10%)")

	// a's weight doubles and c joins web; api is a new virtual server.
	next := slowStartConfig(10*time.Second, ssA, ssB, ssC)
	next.VirtualServers[0].RealServers[0].Weight = 200
	addVS(next, "api", apiVIP).RealServers = []config.RealServer{{Address: ssC, Weight: 100, Forwarding: "nat"}}
	trC := traceWeights(t, table, ssC)
	reload(t, h, next)
	w, _ := weights(t, table, webKey)
	if w[ssA] == 0 || w[ssA]%20 != 0 || w[ssA] > 100 {
		t.Errorf("a at %d after its weight became 200 mid-ramp, want the ramp's share of 200 (a multiple of 20 below 100)", w[ssA])
	}
	poll(t, "c up in web", func() bool { return slices.IndexFunc(trC.all(), func(w int64) bool { return w > 0 }) >= 0 })
	if seen := trC.all(); seen[slices.IndexFunc(seen, func(w int64) bool { return w > 0 })] != 1 {
		t.Errorf("weights of c, added to web: %v, want it to come up ramping, at 1 first", seen)
	}
	poll(t, "c up in api", func() bool { w, _ := weights(t, table, apiKey); return w[ssC] > 0 })
	if w, _ := weights(t, table, apiKey); w[ssC] != 100 {
		t.Errorf("c in the new virtual server api at %d, want 100: a pool that starts whole does not ramp", w[ssC])
	}

	// Off: every ramp ends at once.
	off := slowStartConfig(0, ssA, ssB, ssC)
	off.VirtualServers[0].RealServers[0].Weight = 200
	addVS(off, "api", apiVIP).RealServers = []config.RealServer{{Address: ssC, Weight: 100, Forwarding: "nat"}}
	reload(t, h, off)
	if w, _ := weights(t, table, webKey); w[ssA] != 200 || w[ssC] != 100 {
		t.Errorf("after slow_start was turned off: %v, want a at 200 and c at 100 at once", w)
	}
	poll(t, "the ramps' end logged", func() bool { return logs.Count("slow start over") == 2 })
}

// A director that starts on a table where a server is below its weight
// (the previous run stopped mid-ramp) goes on with the ramp from there; a
// server at its weight stays; one out of a serving pool ramps when it
// comes up.
func TestSlowStartAdoptsTable(t *testing.T) {
	sw := switches{ssA: {}, ssB: {}, ssC: {}}
	cfg := slowStartConfig(3*time.Second, ssA, ssB, ssC)
	table := ipvs.NewMemory()
	ctx := tctx(t)
	svc := ipvs.Service{Key: webKey, Scheduler: "wlc", PersistenceNetmask: 32}
	if err := table.CreateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	for a, w := range map[netip.AddrPort]uint32{ssA: 100, ssB: 33, ssC: 0} {
		if err := table.CreateDestination(ctx, webKey, ipvs.Destination{Address: a, Weight: w, Forwarding: ipvs.NAT}); err != nil {
			t.Fatal(err)
		}
	}
	trA, trB, trC := traceWeights(t, table, ssA), traceWeights(t, table, ssB), traceWeights(t, table, ssC)
	h, _ := startAdmin(t, cfg, table, func(o *Options) { o.NewProber = sw.prober })
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100, ssC: 100}, "all at their full weight")
	trB.reaches(t, 100)
	trC.reaches(t, 100)
	if got := trA.all(); !slices.Equal(got, []int64{100}) {
		t.Errorf("weights of a, at its weight at start: %v, want 100 throughout", got)
	}
	if got := trB.all(); !slices.Equal(got, []int64{33, 67, 100}) {
		t.Errorf("weights of b, mid-ramp at start: %v, want the ramp resumed: 33 67 100", got)
	}
	if got := trC.all(); !slices.Equal(got, []int64{0, 1, 33, 67, 100}) {
		t.Errorf("weights of c, out of a serving pool at start: %v, want a ramp when it comes up: 0 1 33 67 100", got)
	}
}

// A reload that turns slow start on, or lengthens it past a finished
// ramp, does not ramp servers already serving, even one that came up a
// moment ago.
func TestSlowStartTurnedOn(t *testing.T) {
	sw := switches{ssA: {}, ssB: {}}
	h, table, _ := startRamps(t, slowStartConfig(0, ssA, ssB), sw)
	bounce(h, sw)
	sw[ssA].Store(false)
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "a back at once, slow start off")
	tr := traceWeights(t, table, ssA)
	reload(t, h, slowStartConfig(10*time.Second, ssA, ssB))
	h.engine.reconcileNow(t, rampTrigger)
	time.Sleep(200 * time.Millisecond) // a ramp would hold weight 1 for a second: the trace sees it
	if got := tr.all(); !slices.Equal(got, []int64{100}) {
		t.Errorf("weights of a after slow start was turned on: %v, want 100 throughout", got)
	}

	// A one-step ramp of 1s, over; then slow_start becomes a minute.
	reload(t, h, slowStartConfig(time.Second, ssA, ssB))
	bounce(h, sw)
	sw[ssA].Store(false)
	h.eventually(map[netip.AddrPort]uint32{ssA: 1, ssB: 100}, "a ramping")
	h.eventually(map[netip.AddrPort]uint32{ssA: 100, ssB: 100}, "a's ramp over")
	tr = traceWeights(t, table, ssA)
	reload(t, h, slowStartConfig(time.Minute, ssA, ssB))
	h.engine.reconcileNow(t, rampTrigger)
	time.Sleep(200 * time.Millisecond)
	if got := tr.all(); !slices.Equal(got, []int64{100}) {
		t.Errorf("weights of a after slow start was lengthened past its finished ramp: %v, want 100 throughout", got)
	}
}
