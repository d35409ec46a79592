package engine

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

func TestDrainWaitsForConnections(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	setConns(t, mem, webKey, b2.addr, 3, 2)

	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, next)
	// Right after the reload: b2 takes no new connections but is not cut.
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}) {
		t.Fatalf("after removing b2 with connections: table %v, want b2 at weight 0", got)
	}
	if v := h.stateMetric("web", b2.addr, "draining"); v != 1 {
		t.Errorf("director_real_server_state{state=draining} for b2 = %v, want 1", v)
	}
	if d := h.engine.Draining(); len(d) != 1 || d[0].RealServer != b2.addr {
		t.Errorf("Draining() = %+v, want b2", d)
	}
	// Several polls with connections left: still there.
	time.Sleep(200 * time.Millisecond)
	if got, _ := weights(t, mem, webKey); len(got) != 2 {
		t.Fatalf("b2 deleted while it still had connections: %v", got)
	}
	setConns(t, mem, webKey, b2.addr, 0, 1)
	time.Sleep(100 * time.Millisecond)
	if got, _ := weights(t, mem, webKey); len(got) != 2 {
		t.Fatalf("b2 deleted with an inactive connection left: %v", got)
	}
	setConns(t, mem, webKey, b2.addr, 0, 0)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "b2 drained")
	if v := h.counter("director_drains_total", "result", "connections"); v != 1 {
		t.Errorf("director_drains_total{result=connections} = %v, want 1", v)
	}
	if v := h.stateMetric("web", b2.addr, "draining"); v != -1 {
		t.Errorf("b2's state series still exported after it left (%v)", v)
	}
	if n := logs.Count("real server draining", b2.addr.String()); n != 1 {
		t.Errorf("%d 'real server draining' lines for b2, want 1:\n%s", n, logs)
	}
	if n := logs.Count("real server drained", b2.addr.String()); n != 1 {
		t.Errorf("%d 'real server drained' lines for b2, want 1:\n%s", n, logs)
	}
}

func TestDrainTimeout(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	setConns(t, mem, webKey, b2.addr, 5, 0)
	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = 1500 * time.Millisecond
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); got[b2.addr] != 0 || len(got) != 2 {
		t.Fatalf("after reload: %v, want b2 at weight 0", got)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "b2 deleted at drain_timeout")
	if v := h.counter("director_drains_total", "result", "timeout"); v != 1 {
		t.Errorf("director_drains_total{result=timeout} = %v, want 1", v)
	}
	if n := logs.Count("drain timed out", "connections=5"); n != 1 {
		t.Errorf("want one timeout line naming the 5 connections left:\n%s", logs)
	}
}

func TestZeroDrainTimeoutDeletesAtOnce(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, _ := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	setConns(t, mem, webKey, b2.addr, 5, 0)
	next := testConfig("quiesce", b1) // DrainTimeout 0, as UDP services get by default
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(map[netip.AddrPort]uint32{b1.addr: 100}) {
		t.Fatalf("drain_timeout 0: table %v right after the reload, want b2 deleted", got)
	}
}

func TestIdleServerDeletedAtOnce(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, _ := startLogged(t, testConfig("quiesce", b1, b2), mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(map[netip.AddrPort]uint32{b1.addr: 100}) {
		t.Fatalf("removing a server without connections: table %v right after the reload, want it deleted", got)
	}
}

func TestDrainingServerRestored(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, _ := startLogged(t, testConfig("quiesce", b1, b2), mem)
	all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(all, "start")
	setConns(t, mem, webKey, b2.addr, 1, 0)
	next := testConfig("quiesce", b1)
	next.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, next)
	if got, _ := weights(t, mem, webKey); got[b2.addr] != 0 || len(got) != 2 {
		t.Fatalf("after removal: %v", got)
	}
	back := testConfig("quiesce", b1, b2)
	back.VirtualServers[0].DrainTimeout = time.Hour
	reload(t, h, back)
	// It comes back with the verdict it left with (up), in the same reload.
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("after restoring b2: table %v right after the reload, want %v", got, all)
	}
	if v := h.counter("director_drains_total", "result", "restored"); v != 1 {
		t.Errorf("director_drains_total{result=restored} = %v, want 1", v)
	}
	if len(h.engine.Draining()) != 0 {
		t.Errorf("still draining after restore: %+v", h.engine.Draining())
	}
	if v := h.stateMetric("web", b2.addr, "up"); v != 1 {
		t.Errorf("b2 state up = %v after restore, want 1", v)
	}
}

func TestRemovedVirtualServerDrainsThenGoes(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	addVS(cfg, "api", apiVIP).DrainTimeout = time.Hour

	mem := ipvs.NewMemory()
	h, _ := startLogged(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	if !testutil.Within(10*time.Second, func() bool { w, _ := weights(t, mem, apiKey); return w[b1.addr] == 100 }) {
		t.Fatal("api never came up")
	}
	setConns(t, mem, apiKey, b1.addr, 2, 0)
	reload(t, h, testConfig("quiesce", b1)) // api is gone from the config
	if w, ok := weights(t, mem, apiKey); !ok || w[b1.addr] != 0 {
		t.Fatalf("removed service with connections: %v (present %v), want kept with its server at weight 0", w, ok)
	}
	setConns(t, mem, apiKey, b1.addr, 0, 0)
	if !testutil.Within(10*time.Second, func() bool { return !hasService(t, mem, apiKey) }) {
		t.Fatal("removed service never deleted after its last server drained")
	}
	if w, _ := weights(t, mem, webKey); w[b1.addr] != 100 {
		t.Errorf("web disturbed: %v", w)
	}
}

func TestStrayWithConnectionsDrainsAtStart(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.VirtualServers[0].DrainTimeout = time.Hour
	mem := ipvs.NewMemory()
	ctx := context.Background()
	stray := netip.MustParseAddrPort("127.0.0.1:9")
	if err := mem.CreateService(ctx, desired.Service(&cfg.VirtualServers[0])); err != nil {
		t.Fatal(err)
	}
	if err := mem.CreateDestination(ctx, webKey, ipvs.Destination{Address: stray, Weight: 10}); err != nil {
		t.Fatal(err)
	}
	setConns(t, mem, webKey, stray, 4, 0)
	h, _ := startLogged(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, stray: 0}, "stray drained, not deleted")
	setConns(t, mem, webKey, stray, 0, 0)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "stray deleted once idle")
}

// Pure parts, table-tested.
