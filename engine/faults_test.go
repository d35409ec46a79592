package engine

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/leaktest"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

// Fifty checks that hang until their timeout do not hold up a healthy
// server's check: its results keep coming at its interval and it keeps its
// weight. When the engine stops, no check goroutine is left.
func TestHangingChecksDoNotDelayOthers(t *testing.T) {
	leaktest.Check(t)
	healthy := newBackend(t)
	var hanging []*backend
	for range 50 {
		hanging = append(hanging, hangingBackend(t))
	}
	cfg := testConfig("quiesce", healthy)
	const interval = 100 * time.Millisecond
	cfg.VirtualServers[0].Checks[0].Interval = interval
	cfg.VirtualServers[0].Checks[0].Timeout = 80 * time.Millisecond
	// Ten failures in a row (a second) before the healthy server is down:
	// on a loaded host a few of its 80ms checks time out on their own, and
	// what this test guards is that hanging checks do not starve it.
	cfg.VirtualServers[0].Checks[0].Fall = 10
	hang := testConfig("quiesce", hanging...).VirtualServers[0]
	hang.Name, hang.Address = "hang", netip.MustParseAddrPort("192.0.2.30:80")
	hang.Checks = cfg.VirtualServers[0].Checks
	cfg.VirtualServers = append(cfg.VirtualServers, hang)

	h := start(t, cfg, ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{healthy.addr: 100}, "healthy server up")
	waitStatus(t, h.engine, "every hanging check timed out", func(st Status) bool {
		for _, b := range hanging {
			r := serverIn(st, b.addr.String())
			if r == nil || r.Last == nil || r.Last.Reason != "timeout" {
				return false
			}
		}
		return true
	})

	// Over a window of 40 intervals the healthy check must run at least
	// 20 times, whatever else is slow. Were checks to wait for each other,
	// one round of the hanging ones alone would take 50 × 80ms.
	const window = 40 * interval
	var weightLost atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if w, _ := weights(t, h.table, webKey); w[healthy.addr] != 100 {
				weightLost.CompareAndSwap(nil, fmt.Sprint(w))
			}
		}
	})
	before := h.metric("director_checks_total", "web", healthy.addr, "")
	time.Sleep(window)
	got := h.metric("director_checks_total", "web", healthy.addr, "") - before
	close(stop)
	wg.Wait()
	t.Logf("healthy server: %v checks in %v (interval %v) beside 50 hanging ones", got, window, interval)
	if got < 20 {
		t.Errorf("healthy server checked %v times in %v at an interval of %v: hanging checks delay it", got, window, interval)
	}
	if v := weightLost.Load(); v != nil {
		t.Errorf("the healthy server lost its weight while others hung: %v", v)
	}
	h.stop()
}

// A reconcile the kernel refuses is retried with backoff on its own: no
// resync or later transition is needed for the table to be repaired once
// the kernel accepts again. It is logged once, counted each time, and the
// engine is not ready meanwhile.
func TestRefusedReconcileRetried(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, testConfig("quiesce", b1, b2), mem) // resync_interval 1h
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	waitReady(t, h.engine)

	mem.SetFail(func(op ipvs.Op) error {
		if op.Kind == ipvs.OpUpdateDestination {
			return fmt.Errorf("netlink: %w", ipvs.ErrInvalid)
		}
		return nil
	})
	b2.stop() // the transition's reconcile fails
	// The transition's failure, then a retry's.
	if !testutil.Within(15*time.Second, func() bool { return h.counter("director_ipvs_errors_total", "cause", "invalid") >= 2 }) {
		t.Fatalf("the failed reconcile was not retried; log:\n%s", logs)
	}
	if h.engine.Ready() {
		t.Error("engine ready while its reconciles fail")
	}
	if n := logs.Count("ipvs operation failed", "cause=invalid"); n != 1 {
		t.Errorf("%d log lines for one cause, want 1:\n%s", n, logs)
	}
	mem.SetFail(nil)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "repaired by a retry")
	waitReady(t, h.engine)
	if !strings.Contains(logs.String(), "trigger=retry") {
		t.Errorf("no reconcile triggered by a retry in the log:\n%s", logs)
	}
}

// readFailTable is a table whose reads fail while fail holds an error.
type readFailTable struct {
	ipvs.Table
	fail atomic.Pointer[error]
}

func (r *readFailTable) Services(ctx context.Context) ([]ipvs.ServiceState, error) {
	if err := r.fail.Load(); err != nil {
		return nil, *err
	}
	return r.Table.Services(ctx)
}

// When the kernel refuses even to be read (permission denied), the engine
// is not ready, logs it once, and keeps checking: a server that dies
// meanwhile is seen to, and taken out as soon as the kernel answers again.
func TestTableReadRefused(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	cfg.Director.ResyncInterval = 30 * time.Millisecond
	table := &readFailTable{Table: ipvs.NewMemory()}
	h, logs := startLogged(t, cfg, table)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	waitReady(t, h.engine)

	refused := fmt.Errorf("netlink: %w", ipvs.ErrPermission)
	table.fail.Store(&refused)
	if !testutil.Within(15*time.Second, func() bool { return h.counter("director_ipvs_errors_total", "cause", "permission") >= 5 }) {
		t.Fatalf("repeated read failures not counted; log:\n%s", logs)
	}
	if h.engine.Ready() {
		t.Error("engine ready while the table cannot be read")
	}
	b2.stop()
	waitStatus(t, h.engine, "b2 seen down while the kernel refuses reads", func(st Status) bool {
		r := serverIn(st, b2.addr.String())
		return r != nil && r.State.String() == "down"
	})
	if n := logs.Count("reading the IPVS table failed", "cause=permission"); n != 1 {
		t.Errorf("%d log lines for one cause, want 1:\n%s", n, logs)
	}

	table.fail.Store(nil)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "b2 out once the kernel answers")
	waitReady(t, h.engine)
}
