package engine

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
)

// A result that moves no state allocates nothing: the server's metrics
// series are reached through the handle it holds, its address is not
// formatted and nothing is looked up by name (two allocations a result
// before, docs/performance.md "Memory, second pass: records").
func TestResultAllocatesNothing(t *testing.T) {
	cfg := scaleConfig(1, 2) // rise 1, fall 1
	e := scaleUnit(t, cfg, ipvs.NewMemory())
	key := checkKeys(cfg)[1]
	at := time.Now()
	for _, ok := range []bool{true, false} {
		r := probeResult{key: key, result: checks.Result{OK: ok, Start: at, Duration: time.Millisecond}}
		if !ok {
			r.result.Reason = "refused"
		}
		e.observe(r) // the transition, and the ring filled
		for range e.opts.HistoryLength {
			if e.observe(r) {
				t.Fatal("a repeated result moved the server")
			}
		}
		if n := testing.AllocsPerRun(100, func() { e.observe(r) }); n != 0 {
			t.Errorf("ok=%v: a result allocates %v times, want 0", ok, n)
		}
	}
}

// A server that leaves the config and comes back records into the series
// that are exported: its new handle is resolved when it is made, and the
// old series, dropped with the server, count nothing any more.
func TestServerBackInConfigRecordsIntoItsSeries(t *testing.T) {
	cfg := scaleConfig(1, 2)
	e := scaleUnit(t, cfg, ipvs.NewMemory())
	m := e.opts.Metrics
	key := checkKeys(cfg)[1]
	rs := cfg.VirtualServers[0].RealServers[1].Address.String()
	checksOf := func() float64 {
		t.Helper()
		families, err := m.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var n float64
		for _, f := range families {
			if f.GetName() != "director_checks_total" {
				continue
			}
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "real_server" && l.GetValue() == rs {
						n += s.GetCounter().GetValue()
					}
				}
			}
		}
		return n
	}
	ok := probeResult{key: key, result: checks.Result{OK: true, Start: time.Now()}}
	for range 3 {
		e.observe(ok)
	}
	if n := checksOf(); n != 3 {
		t.Fatalf("%v checks counted, want 3", n)
	}
	ctx := context.Background()
	without := scaleConfig(1, 2)
	without.VirtualServers[0].RealServers = without.VirtualServers[0].RealServers[:1]
	e.adoptConfig(without, nil, ctx)
	if n := checksOf(); n != 0 {
		t.Fatalf("removed server: %v checks still exported, want none", n)
	}
	e.adoptConfig(scaleConfig(1, 2), nil, ctx)
	for range 2 {
		e.observe(ok)
	}
	if n := checksOf(); n != 2 {
		t.Errorf("server back: %v checks counted, want the 2 since it came back", n)
	}
}

// A check's key is held once: the probes map, its runner and every
// server's check (through its runner, which feeds it) share the runner's string, after a reload
// that adds servers as after the first config (16 bytes a check, and an
// allocation, more for each copy).
func TestServersShareCheckKeys(t *testing.T) {
	e := adoptedEngine(t, memoryConfig(t, 40, 4), false)
	same := func(what, a, b string) {
		t.Helper()
		if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
			t.Errorf("%s: key %x is a copy of its runner's, not its string", what, a)
		}
	}
	check := func() {
		t.Helper()
		for key, p := range e.probes {
			same("probes map", key, p.key)
		}
		for key, p := range e.probes {
			for c := p.feeds; c != nil; c = c.next {
				if c.runner != p {
					t.Errorf("runner of key %x feeds a check of another runner's", key)
				}
			}
		}
		for id, s := range e.servers.all() {
			for _, c := range s.checks {
				if p := e.probes[c.key()]; p == nil {
					t.Errorf("%v: check %q has no runner", id, c.name)
				} else {
					same(id.String()+" check "+c.name, c.key(), p.key)
				}
			}
		}
	}
	check()
	more := memoryConfig(t, 48, 4) // the same 40, and 8 more
	fresh, err := e.buildProbers(more)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 8 {
		t.Fatalf("%d runners for 8 servers added", len(fresh))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.adoptConfig(more, fresh, ctx)
	if e.servers.len() != 48 {
		t.Fatalf("%d servers, want 48", e.servers.len())
	}
	check()
}

// A reconcile that changes a server's programmed weight sets its series
// through its handle too: at start-up every server's first verdict goes
// this way, 20,000 addresses formatted before.
func TestProgrammedWeightAllocatesNothing(t *testing.T) {
	cfg := scaleConfig(1, 2)
	e := scaleUnit(t, cfg, ipvs.NewMemory())
	vs := &cfg.VirtualServers[0]
	rs := &vs.RealServers[1]
	s := e.servers.get(config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address})
	weight := int64(0)
	if n := testing.AllocsPerRun(100, func() {
		weight = 100 - weight
		e.setProgrammed(vs, rs, s, weight)
	}); n != 0 {
		t.Errorf("a changed programmed weight allocates %v times, want 0", n)
	}
	m := e.opts.Metrics
	families, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "director_real_server_weight" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "real_server" && l.GetValue() == rs.Address.String() {
					found = true
					if v := mt.GetGauge().GetValue(); v != float64(weight) {
						t.Errorf("weight series %v, want %d", v, weight)
					}
				}
			}
		}
	}
	if !found {
		t.Error("no weight series for the server")
	}
}
