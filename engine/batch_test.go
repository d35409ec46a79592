package engine

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// idleProber never finishes a run of its own: the test hands results over.
type idleProber struct{}

func (idleProber) Probe(ctx context.Context) checks.Result {
	<-ctx.Done()
	return checks.Result{Inconclusive: true, Reason: "stopped"}
}

// checkKeys is the check key of each real server of cfg, in config order.
func checkKeys(cfg *config.Config) []string {
	var keys []string
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for j := range vs.RealServers {
			keys = append(keys, vs.CheckSpec(&vs.RealServers[j], &vs.Checks[0]).Key())
		}
	}
	return keys
}

// A burst of results handed over while the loop is busy (here: serving a
// request) is taken in one go and costs one reconcile, whatever its size.
func TestBurstOfResultsCostsOneReconcile(t *testing.T) {
	cfg := scaleConfig(2, 25) // rise 1, fall 1
	mem := ipvs.NewMemory()
	up := func(config.ServerID) health.State { return health.Up }
	if _, err := ipvs.Reconcile(tctx(t), mem, desired.FromStates(cfg, up), nil); err != nil {
		t.Fatal(err)
	}
	h := startWith(t, cfg, mem, io.Discard, func(o *Options) {
		o.NewProber = func(checks.Spec) (checks.Prober, error) { return idleProber{}, nil }
	})
	waitReady(t, h.engine)
	before := h.counter("director_reconcile_runs_total", "trigger", "transition")
	mutations := h.table.mutations.Load()

	held, release := make(chan struct{}), make(chan struct{})
	go h.engine.submit(tctx(t), func(context.Context, time.Time) (any, bool, error) {
		close(held)
		<-release
		return nil, false, nil
	})
	<-held
	keys := checkKeys(cfg)
	done := make(chan struct{})
	for _, k := range keys { // one goroutine per runner, as the runners are
		go func() {
			h.engine.results.put(context.Background(), probeResult{key: k, result: checks.Result{Reason: "connection refused"}})
			done <- struct{}{}
		}()
	}
	for range keys {
		<-done
	}
	close(release)

	poll(t, "every server at weight 0", func() bool {
		for i := range cfg.VirtualServers {
			w, _ := weights(t, mem, desired.ServiceKey(&cfg.VirtualServers[i]))
			for _, v := range w {
				if v != 0 {
					return false
				}
			}
			if len(w) != len(cfg.VirtualServers[i].RealServers) {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond) // a second reconcile would come within the settle time
	if n := h.counter("director_reconcile_runs_total", "trigger", "transition") - before; n != 1 {
		t.Errorf("%d transitions handed over at once cost %v reconciles, want 1", len(keys), n)
	}
	if n := h.table.mutations.Load() - mutations; n != int64(len(keys)) {
		t.Errorf("%d servers down made %d table changes, want %d", len(keys), n, len(keys))
	}
}

// scaleUnit is an engine for cfg whose loop's state the test drives
// itself: no runner, no goroutine but the test's.
func scaleUnit(t *testing.T, cfg *config.Config, table ipvs.Table) *Engine {
	t.Helper()
	e, err := New(cfg, Options{Table: table, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.adoptConfig(cfg, nil, context.Background())
	return e
}

// A result still waiting for the loop when a reload removes its server is
// dropped: it moves nothing and records nothing for the server gone.
func TestResultForServerRemovedMeanwhileIsDropped(t *testing.T) {
	cfg := scaleConfig(1, 2)
	e := scaleUnit(t, cfg, ipvs.NewMemory())
	keys := checkKeys(cfg)
	ctx := context.Background()
	e.results.put(ctx, probeResult{key: keys[1], result: checks.Result{OK: true}})
	e.results.put(ctx, probeResult{key: keys[0], result: checks.Result{OK: true}})

	next := scaleConfig(1, 2)
	next.VirtualServers[0].RealServers = next.VirtualServers[0].RealServers[:1]
	e.adoptConfig(next, nil, ctx) // what a reload does on the loop
	<-e.results.ready
	if !e.observeAll(e.results.take()) {
		t.Fatal("the kept server's result changed nothing")
	}
	gone := config.ServerID{VirtualServer: "vs0", RealServer: cfg.VirtualServers[0].RealServers[1].Address}
	if e.servers.get(gone) != nil {
		t.Fatal("a result brought back a server the reload removed")
	}
	if len(e.events) != 1 || e.events[0].RealServer != cfg.VirtualServers[0].RealServers[0].Address || e.events[0].To != health.Up {
		t.Fatalf("events %+v, want one: the kept server up", e.events)
	}
}

// Within one batch each server's results are observed in the order its
// runner handed them over.
func TestBatchKeepsEachServersOrder(t *testing.T) {
	cfg := scaleConfig(1, 2) // rise 1, fall 1: each differing result is a transition
	e := scaleUnit(t, cfg, ipvs.NewMemory())
	keys := checkKeys(cfg)
	ctx := context.Background()
	for _, r := range []probeResult{
		{key: keys[0], result: checks.Result{OK: true}},
		{key: keys[1], result: checks.Result{OK: true}},
		{key: keys[0], result: checks.Result{Reason: "refused"}},
		{key: keys[0], result: checks.Result{OK: true}},
		{key: keys[1], result: checks.Result{Reason: "refused"}},
	} {
		e.results.put(ctx, r)
	}
	<-e.results.ready
	e.observeAll(e.results.take())
	var got []string
	for _, ev := range e.events {
		got = append(got, ev.RealServer.String()+" "+ev.To.String())
	}
	a, b := cfg.VirtualServers[0].RealServers[0].Address.String(), cfg.VirtualServers[0].RealServers[1].Address.String()
	want := []string{a + " up", b + " up", a + " down", a + " up", b + " down"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("transitions %q, want %q", got, want)
	}
}

// The transition path builds and plans only the virtual servers whose
// servers changed, and keeps the table as last known without reading the
// kernel, changing only the services its plan touched: after each
// transition the kernel holds the whole desired table (quorum takeover and
// on_failure = "remove" included), the table as known is the kernel's, and
// every server's programmed weight is the kernel's.
func TestTransitionPathKnowsTheTable(t *testing.T) {
	cfg := scaleConfig(3, 4)
	cfg.VirtualServers[1].Quorum = 400 // one server down loses quorum: the fallback takes over
	cfg.VirtualServers[1].Fallback = netip.MustParseAddrPort("10.9.9.9:8080")
	cfg.VirtualServers[2].OnFailure = "remove" // its failed servers leave the table
	mem := ipvs.NewMemory()
	e := scaleUnit(t, cfg, mem)
	ctx := context.Background()
	keys := checkKeys(cfg)
	for _, k := range keys {
		e.observe(probeResult{key: k, result: checks.Result{OK: true}})
	}
	if !e.reconcile(ctx, "start") {
		t.Fatal("first reconcile failed")
	}
	for i, k := range []int{0, 5, 9, 10, 5, 0, 9} {
		e.observe(probeResult{key: keys[k], result: checks.Result{OK: i >= 4, Reason: "refused"}})
		if !e.reconcile(ctx, "transition") {
			t.Fatalf("transition %d: reconcile failed", i)
		}
		kernel, err := mem.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e.actual, kernel) {
			t.Fatalf("transition %d: the table as known\n%+v\nthe kernel's\n%+v", i, e.actual, kernel)
		}
		full, retired := e.desired()
		if ops := ipvs.Plan(full, kernel, retired); len(ops) > 0 {
			t.Fatalf("transition %d: the kernel is not the whole desired table: a full reconcile would still make %v", i, ops)
		}
		idx := desired.Index(kernel)
		for id, s := range e.servers.all() {
			want := int64(-1)
			if d, ok := idx[desired.Key(desired.ServiceKey(cfg.Find(id.VirtualServer)), id.RealServer)]; ok {
				want = int64(d.Weight)
			}
			if s.programmed != want || s.reported.programmed != want {
				t.Fatalf("transition %d: %v programmed %d (reported %d), the kernel has %d", i, id, s.programmed, s.reported.programmed, want)
			}
		}
	}
}
