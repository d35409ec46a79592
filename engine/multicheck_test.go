package engine

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// sideCheck is a tcp check of one fixed address: the same for every real
// server, so one runner serves them all.
func sideCheck(name string, side *backend) config.Check {
	return config.Check{Type: "tcp", Name: name, Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond,
		Rise: 1, Fall: 1, Address: side.addr.Addr(), Port: side.addr.Port(), Options: checks.TCPOptions{}}
}

// runners is the engine's check runners by key, and how many servers'
// checks each feeds, asked of the loop.
func (e *Engine) runners(t *testing.T) (map[string]*probeRunner, map[string]int) {
	t.Helper()
	type both struct {
		probes map[string]*probeRunner
		fed    map[string]int
	}
	v, err := e.submit(tctx(t), func(context.Context, time.Time) (any, bool, error) {
		b := both{probes: map[string]*probeRunner{}, fed: map[string]int{}}
		for k, p := range e.probes {
			b.probes[k] = p
			b.fed[k] = p.fed()
		}
		return b, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v.(both).probes, v.(both).fed
}

// A real server is up only while all its checks pass; an identical check
// of several servers runs once; a server's reason names its failing check.
func TestSeveralChecksAllMustPass(t *testing.T) {
	b1, b2, side := newBackend(t), newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	cfg.VirtualServers[0].Checks = append(cfg.VirtualServers[0].Checks, sideCheck("side", side))
	h := start(t, cfg, ipvs.NewMemory())
	both := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(both, "both servers up with both checks passing")

	probes, fed := h.engine.runners(t)
	if len(probes) != 3 {
		t.Errorf("%d check runners for 2 servers × (own http + shared tcp), want 3", len(probes))
	}
	if counts := slices.Sorted(func(yield func(int) bool) {
		for _, n := range fed {
			yield(n)
		}
	}); !slices.Equal(counts, []int{1, 1, 2}) {
		t.Errorf("servers fed per runner = %v, want [1 1 2]", counts)
	}
	rs := rsStatus(t, h.engine, "web", b1.addr)
	if len(rs.Checks) != 2 || rs.Checks[0].Name != "http" || rs.Checks[1].Name != "side" || rs.Checks[1].State != health.Up {
		t.Errorf("status checks = %+v", rs.Checks)
	}

	side.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 0}, "the shared check failing takes both out")
	st := rsStatus(t, h.engine, "web", b2.addr)
	if st.State != health.Down || st.Checks[0].State != health.Up || st.Checks[1].State != health.Down {
		t.Errorf("b2 = %v, checks %+v", st.State, st.Checks)
	}
	side.start()
	h.eventually(both, "the shared check passing again")

	b1.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "b1's own check failing takes only b1 out")
	var reason string
	for _, ev := range h.engine.Status().Events {
		if ev.RealServer == b1.addr && ev.To == health.Down {
			reason = ev.Reason
		}
	}
	if !strings.HasPrefix(reason, "http: ") {
		t.Errorf("b1's down reason %q does not name its failing check", reason)
	}
}

// A reload that changes one real server's own check restarts that check
// only: the others keep their runners and the server its verdict.
func TestReloadRestartsOnlyChangedChecks(t *testing.T) {
	b1, b2, side, side2 := newBackend(t), newBackend(t), newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	cfg.VirtualServers[0].Checks = append(cfg.VirtualServers[0].Checks, sideCheck("side", side))
	h := start(t, cfg, ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	before, _ := h.engine.runners(t)

	next := testConfig("quiesce", b1, b2)
	vs := &next.VirtualServers[0]
	vs.Checks = append(vs.Checks, sideCheck("side", side))
	vs.RealServers[1].Checks = []config.Check{vs.Checks[0], sideCheck("side", side2)}
	if ch := config.Diff(cfg, next); !slices.Equal(ch.RecheckedRS, []string{"web/" + b2.addr.String()}) || len(ch.ChangedVS) != 0 {
		t.Fatalf("Diff = %+v", ch)
	}
	reload(t, h, next)
	after, fed := h.engine.runners(t)
	if len(after) != 4 {
		t.Errorf("%d runners after b2 got its own side check, want 4", len(after))
	}
	for k, p := range before {
		if after[k] != p {
			t.Errorf("runner of %s was replaced though its check did not change", p.spec)
		}
	}
	for k, p := range after {
		if before[k] == nil && (p.spec.Target != side2.addr || fed[k] != 1) {
			t.Errorf("new runner %s feeding %d servers; want only b2's check of %s", p.spec, fed[k], side2.addr)
		}
	}
	if st := rsStatus(t, h.engine, "web", b2.addr); st.State != health.Up {
		t.Errorf("b2 lost its verdict over the reload: %v", st.State)
	}
	side2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "b2's own check decides for b2 alone")
}
