package engine

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/selfhealth"
)

// SelfHealth reports what policy/selfhealth needs: whether the table was
// ever reconciled, since when it has not been, each pool's healthy weight,
// and the loop's last turn.
func TestSelfHealthSignals(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	cfg := testConfig("quiesce", b1, b2)
	cfg.VirtualServers[0].RealServers[1].Weight = 300
	idle, err := New(cfg, Options{Table: ipvs.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	if s := idle.SelfHealth(time.Now()); !s.LastTurn.IsZero() || s.Reconciled {
		t.Errorf("before Run: %+v, want no last turn (a loop not started is not a stuck one)", s)
	}
	h := start(t, cfg, mem)
	if s := h.engine.SelfHealth(time.Now()); s.Reconciled && len(s.Pools) == 0 {
		t.Fatalf("reconciled without pools: %+v", s)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 300}, "start")
	s := h.engine.SelfHealth(time.Now())
	if !s.Reconciled || !s.UnreconciledSince.IsZero() || time.Since(s.LastTurn) > 5*time.Second {
		t.Fatalf("after a good reconcile: %+v", s)
	}
	if len(s.Pools) != 1 || s.Pools[0] != (selfhealth.Pool{Name: "web", Healthy: 400, Total: 400}) {
		t.Errorf("pools %+v", s.Pools)
	}

	b2.stop()
	poll(t, "b2's weight out of the healthy share", func() bool {
		p := h.engine.SelfHealth(time.Now()).Pools
		return len(p) == 1 && p[0].Healthy == 100 && p[0].Total == 400
	})
	v := selfhealth.Evaluate(h.engine.SelfHealth(time.Now()), selfhealth.Limits{StuckAfter: time.Minute, MinPoolShare: 0.5})
	if v.Cause != selfhealth.CausePools {
		t.Errorf("a pool at 25%% with a 50%% watermark: %+v", v)
	}

	mem.SetFail(func(ipvs.Op) error { return errors.New("kernel says no") })
	b2.start()
	before := time.Now()
	poll(t, "a failed reconcile noted", func() bool { return !h.engine.SelfHealth(time.Now()).UnreconciledSince.IsZero() })
	failedAt := h.engine.SelfHealth(time.Now()).UnreconciledSince
	if failedAt.Before(before.Add(-time.Second)) {
		t.Errorf("unreconciled since %v, before the failure started (%v)", failedAt, before)
	}
	mem.SetFail(nil)
	h.engine.reconcileNow(t, "test")
	if s := h.engine.SelfHealth(time.Now()); !s.UnreconciledSince.IsZero() {
		t.Errorf("still unreconciled after a good reconcile: %+v", s)
	}
}
