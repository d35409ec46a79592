package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/ipvs"
)

func TestQuiesceRestoreCycle(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	h := start(t, testConfig("quiesce", b1, b2, b3), ipvs.NewMemory())
	all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100}
	h.eventually(all, "start")
	waitReady(t, h.engine)

	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0, b3.addr: 100}, "b2 stopped")
	if v := h.metric("director_real_server_up", "web", b2.addr, ""); v != 0 {
		t.Errorf("director_real_server_up for b2 = %v, want 0", v)
	}
	b2.start()
	h.eventually(all, "b2 restarted")
	if v := h.metric("director_real_server_up", "web", b2.addr, ""); v != 1 {
		t.Errorf("director_real_server_up for b2 = %v, want 1", v)
	}
}

func TestRemoveRestoreCycle(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	h := start(t, testConfig("remove", b1, b2), ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	b1.stop()
	h.eventually(map[netip.AddrPort]uint32{b2.addr: 100}, "b1 stopped: removed")
	b1.start()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "b1 restarted: back")
}

func TestFallbackAppearsAndLeaves(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	sorry := netip.MustParseAddrPort("127.0.0.1:8089")
	cfg.VirtualServers[0].Fallback = sorry
	h := start(t, cfg, ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	b1.stop()
	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 0, sorry: 1}, "all down: fallback in")
	b2.start()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "one back: fallback out")
}

func TestAdoptsKernelTableWithoutChanges(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	ctx := context.Background()
	cfg := testConfig("quiesce", b1, b2)
	svc := desired.Service(&cfg.VirtualServers[0])
	if err := mem.CreateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*backend{b1, b2} {
		if err := mem.CreateDestination(ctx, svc.Key, ipvs.Destination{Address: b.addr, Weight: 100}); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, cfg, mem)
	waitReady(t, h.engine)
	// Several check rounds: servers that were serving must never be touched.
	time.Sleep(300 * time.Millisecond)
	if n := h.table.mutations.Load(); n != 0 {
		t.Fatalf("adopting a correct kernel table made %d changes, want 0", n)
	}
	if v := h.metric("director_state_transitions_total", "web", b1.addr, "up"); v != 0 {
		t.Errorf("adopted server counted %v transitions to up, want 0", v)
	}
}

func TestResyncRepairsDrift(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.Director.ResyncInterval = 100 * time.Millisecond
	mem := ipvs.NewMemory()
	h := start(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	ctx := context.Background()
	if err := mem.UpdateDestination(ctx, webKey, ipvs.Destination{Address: b1.addr, Weight: 7}); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "manual weight edit repaired")
	if err := mem.DeleteService(ctx, webKey); err != nil { // like ipvsadm -C
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "cleared table repaired")
}

func TestReloadKeepsUnchangedState(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	h := start(t, cfg, ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "b2 down")
	upBefore := h.metric("director_state_transitions_total", "web", b1.addr, "up")
	downBefore := h.metric("director_state_transitions_total", "web", b2.addr, "down")
	probeB1 := h.engine.probeFor(t, b1.addr)

	// Add b3, change the scheduler; b1 and b2 are unchanged.
	next := testConfig("quiesce", b1, b2, b3)
	next.VirtualServers[0].Scheduler = "wlc"
	if err := h.engine.Reload(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0, b3.addr: 100}, "after reload")
	if s := h.scheduler(); s != "wlc" {
		t.Errorf("scheduler after reload = %q, want wlc", s)
	}
	if probeB1 != h.engine.probeFor(t, b1.addr) {
		t.Errorf("b1's check was restarted by a reload that did not change it")
	}
	if got := h.metric("director_state_transitions_total", "web", b1.addr, "up"); got != upBefore {
		t.Errorf("b1 transitions to up went %v -> %v across reload; its state should be kept", upBefore, got)
	}
	if got := h.metric("director_state_transitions_total", "web", b2.addr, "down"); got != downBefore {
		t.Errorf("b2 transitions to down went %v -> %v across reload", downBefore, got)
	}

	// Remove b1: its destination goes.
	if err := h.engine.Reload(context.Background(), testConfig("quiesce", b2, b3)); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b2.addr: 0, b3.addr: 100}, "b1 removed by reload")
}

func TestBadReloadChangesNothing(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	h := start(t, testConfig("quiesce", b1, b2), ipvs.NewMemory())
	want := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(want, "start")
	waitReady(t, h.engine)
	before := h.table.mutations.Load()

	bad := testConfig("quiesce", b1) // would drop b2...
	bad.VirtualServers[0].Scheduler = "rr"
	bad.VirtualServers[0].Checks[0].Options = checks.HTTPOptions{ExpectBody: "("} // ...but its check cannot be built
	err := h.engine.Reload(context.Background(), bad)
	if err == nil {
		t.Fatal("reload with an invalid check was accepted")
	}
	if !strings.Contains(err.Error(), "test.toml") {
		t.Errorf("reload error %q does not name the config file", err)
	}
	time.Sleep(200 * time.Millisecond)
	if got, _ := weights(t, h.table, webKey); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("table after bad reload = %v, want unchanged %v", got, want)
	}
	if n := h.table.mutations.Load() - before; n != 0 {
		t.Errorf("bad reload caused %d table changes", n)
	}
	if s := h.scheduler(); s != "wrr" {
		t.Errorf("scheduler after bad reload = %q, want wrr", s)
	}
}

func TestSharedCheckRunsOnce(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	addVS(cfg, "web-alt", netip.MustParseAddrPort("192.0.2.11:80"))
	e, err := New(cfg, Options{Table: ipvs.NewMemory(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.buildProbers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 1 {
		t.Fatalf("two virtual servers with the same check of the same server built %d probers, want 1", len(fresh))
	}
}

func TestShutdownFlushRemovesOnlyManagedServices(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.Director.OnShutdown = "flush"
	mem := ipvs.NewMemory()
	foreign := ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP,
		Address: netip.MustParseAddrPort("192.0.2.99:443")}, Scheduler: "rr", PersistenceNetmask: 32}
	if err := mem.CreateService(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	h.stop()
	svcs, err := mem.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Key != foreign.Key {
		t.Fatalf("after flush the table holds %v, want only the hand-made service", svcs)
	}
}

func TestNewRejectsUnbuildableCheck(t *testing.T) {
	cfg := testConfig("quiesce", &backend{addr: netip.MustParseAddrPort("127.0.0.1:1")})
	cfg.VirtualServers[0].Checks[0].Options = checks.HTTPOptions{ExpectStatus: []string{"abc"}}
	_, err := New(cfg, Options{Table: ipvs.NewMemory(), NewProber: checks.New})
	if err == nil || !strings.Contains(err.Error(), `virtual server "web"`) {
		t.Fatalf("New = %v, want an error naming the virtual server", err)
	}
}

// BenchmarkObserveResult is the engine's cost per check result: fan-out,
// state machine, status ring and metrics for one real server.
func BenchmarkObserveResult(b *testing.B) {
	cfg := testConfig("quiesce", &backend{addr: netip.MustParseAddrPort("127.0.0.1:8080")})
	e, err := New(cfg, Options{Table: ipvs.NewMemory(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	// The benchmark is the loop here: nothing else runs.
	e.adoptConfig(cfg, nil, context.Background())
	var key string
	for k := range e.probes {
		key = k
	}
	ok := probeResult{key: key, result: checks.Result{OK: true, Duration: time.Millisecond}}
	for b.Loop() {
		e.observe(ok)
	}
}
