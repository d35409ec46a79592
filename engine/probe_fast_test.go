package engine

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// The quiesce cycle of TestQuiesceRestoreCycle with fast_checks on, for
// both kinds the loop runs: servers go down and come back as before.
func TestFastChecksQuiesceRestoreCycle(t *testing.T) {
	for _, kind := range []string{"http", "tcp"} {
		t.Run(kind, func(t *testing.T) {
			b1, b2 := newBackend(t), newBackend(t)
			cfg := testConfig("quiesce", b1, b2)
			cfg.Director.FastChecks = true
			cfg.VirtualServers[0].Checks[0].Type = kind
			cfg.VirtualServers[0].Checks[0].Options = nil
			h := start(t, cfg, ipvs.NewMemory())
			all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
			h.eventually(all, "start")
			b2.stop()
			h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "b2 stopped")
			b2.start()
			h.eventually(all, "b2 restarted")
			h.stop() // Run has returned: its fields may be read
			if len(h.engine.fast) == 0 {
				t.Fatal("fast_checks on, but the engine ran no loop")
			}
			vs := &cfg.VirtualServers[0]
			p, err := checks.New(vs.CheckSpec(&vs.RealServers[0], &vs.Checks[0]))
			if err != nil || !h.engine.fast[0].Supports(p) {
				t.Fatalf("%s check: the loop does not run it (%v)", kind, err)
			}
		})
	}
}

// A runner on the loop keeps fire's grid: results on schedule, started
// counted, no second result while the engine has not taken the first, and
// stop ends everything it started.
func TestFastRunnerScheduleAndStop(t *testing.T) {
	b := newBackend(t)
	loop, err := checks.NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	spec := checks.Spec{Type: "tcp", Target: b.addr, Interval: 20 * time.Millisecond, Timeout: time.Second}
	prober, err := checks.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Build{})
	goroutines := runtime.NumGoroutine()
	p := &probeRunner{spec: spec, prober: prober, loop: loop}
	out := newInbox(1, m.Schedule) // room for one: the engine is "slow"
	results := &inboxReader{in: out}
	p.start(context.Background(), out)
	for i := range 5 {
		r, ok := results.next(5 * time.Second)
		if !ok {
			t.Fatalf("no result %d", i)
		}
		if !r.result.OK {
			t.Fatalf("result %d: %+v", i, r.result)
		}
		time.Sleep(50 * time.Millisecond) // the engine lags: the runner must wait, not pile up
	}
	started := testutil.ToFloat64(m.Schedule.StartedCounter())
	if started < 5 || started > 7 {
		t.Errorf("started %v runs for 5 results taken slowly, want 5-7 (one outstanding at most)", started)
	}
	p.stop()
	results.batch = nil // the one the inbox held before stop, if any
	out.take()
	if r, ok := results.next(100 * time.Millisecond); ok {
		t.Errorf("result after stop: %+v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after stop, %d before start", n, goroutines)
	}
}

// A runner on the loop whose results find room in the inbox makes no
// part for runs on goroutines (probeRunner.slow): that is what keeps it
// 32 bytes smaller than one on the usual path.
func TestFastRunnerMakesNoSlowPart(t *testing.T) {
	b := newBackend(t)
	loop, err := checks.NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close()
	spec := checks.Spec{Type: "tcp", Target: b.addr, Interval: 10 * time.Millisecond, Timeout: time.Second}
	prober, err := checks.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Build{})
	p := &probeRunner{spec: spec, prober: prober, loop: loop}
	results := &inboxReader{in: newInbox(inboxLimit, m.Schedule)}
	p.start(context.Background(), results.in)
	for i := range 3 {
		if r, ok := results.next(5 * time.Second); !ok || !r.result.OK {
			t.Fatalf("result %d: %+v (%v)", i, r.result, ok)
		}
	}
	p.stop()
	if p.slow != nil {
		t.Error("a runner on the loop made the goroutine path's part with room in the inbox")
	}
	// The usual path makes it at start.
	g := &probeRunner{spec: spec, prober: prober}
	g.start(context.Background(), newInbox(inboxLimit, m.Schedule))
	g.stop()
	if g.slow == nil || g.slow.timer == nil {
		t.Error("a runner on a goroutine has no timer")
	}
}
