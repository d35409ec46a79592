package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

// A reload whose kernel changes fail part-way is undone: the table is as
// before, services the reload created are gone, and the old config runs.
func TestReloadRollsBackOnPartialFailure(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, testConfig("quiesce", b1, b2), mem)
	want := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(want, "start")
	waitReady(t, h.engine)
	before, err := mem.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// The new config changes the scheduler, adds b3 and a second service;
	// the kernel refuses to add b3, after other changes went through.
	next := testConfig("quiesce", b1, b2, b3)
	next.VirtualServers[0].Scheduler = "rr"
	withAPI(next, b1)
	mem.SetFail(func(op ipvs.Op) error {
		if op.Kind == ipvs.OpCreateDestination && op.Destination.Address == b3.addr {
			return fmt.Errorf("injected: %w", ipvs.ErrInvalid)
		}
		return nil
	})
	ctx := tctx(t)
	err = h.engine.Reload(ctx, next)
	if err == nil {
		t.Fatal("reload that failed in the kernel reported success")
	}
	if !strings.Contains(err.Error(), "test.toml") || !strings.Contains(err.Error(), "undone") {
		t.Errorf("reload error %q should name the file and say the changes were undone", err)
	}
	mem.SetFail(nil)
	after, err := mem.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("table after the rolled-back reload:\n%v\nwant as before:\n%v", after, before)
	}
	if h.engine.Config() != nil && h.engine.Config().VirtualServers[0].Scheduler != "wrr" {
		t.Errorf("engine runs the refused config")
	}
	if v := h.counter("director_config_reload_rollbacks_total", "result", "success"); v != 1 {
		t.Errorf("rollbacks{success} = %v, want 1", v)
	}
	if n := logs.Count("rolled back"); n != 1 {
		t.Errorf("want one 'rolled back' line:\n%s", logs)
	}
	// A resync must not bring the refused config back.
	if !h.engine.reconcileNow(t, "resync") {
		t.Fatal("resync after rollback failed")
	}
	if got, _ := weights(t, mem, webKey); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after resync: %v, want %v", got, want)
	}
	// The same reload goes through once the kernel accepts it.
	if err := h.engine.Reload(ctx, next); err != nil {
		t.Fatalf("retrying the reload: %v", err)
	}
	if h.scheduler() != "rr" {
		t.Errorf("scheduler = %q after a successful reload, want rr", h.scheduler())
	}
}

func TestReloadLogsWhatChanged(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	h, logs := startLogged(t, testConfig("quiesce", b1), ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	next := testConfig("quiesce", b1, b2)
	addVS(next, "api", apiVIP)
	reload(t, h, next)
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "config reloaded") {
			line = l
		}
	}
	for _, want := range []string{"virtual_servers_added=[api]", "real_servers_added=", "web/" + b2.addr.String()} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log line lacks %s:\n%s", want, line)
		}
	}
}

// Netlink failures: counted every time, logged once per cause, the engine
// is not ready while they last, and checks go on.
func TestKernelFailuresLoggedOnceAndNotReady(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.Director.ResyncInterval = 30 * time.Millisecond
	mem := ipvs.NewMemory()
	h, logs := startLogged(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	waitReady(t, h.engine)

	mem.SetFail(func(ipvs.Op) error { return fmt.Errorf("netlink: %w", ipvs.ErrPermission) })
	// Drift that the director must repair but cannot.
	mem.SetFail(nil)
	if err := mem.UpdateDestination(context.Background(), webKey, ipvs.Destination{Address: b1.addr, Weight: 3}); err != nil {
		t.Fatal(err)
	}
	mem.SetFail(func(ipvs.Op) error { return fmt.Errorf("netlink: %w", ipvs.ErrPermission) })
	if !testutil.Within(15*time.Second, func() bool { return h.counter("director_ipvs_errors_total", "cause", "permission") >= 5 }) {
		t.Fatalf("no repeated failures counted; log:\n%s", logs)
	}
	if h.engine.Ready() {
		t.Error("engine ready while every reconcile fails")
	}
	if v := h.counter("director_reconcile_failing", "", ""); v != 1 {
		t.Errorf("director_reconcile_failing = %v, want 1", v)
	}
	if n := logs.Count("ipvs operation failed", "cause=permission"); n != 1 {
		t.Errorf("%d log lines for one persisting cause, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "CAP_NET_ADMIN") {
		t.Errorf("the failure line does not say what to do:\n%s", logs)
	}
	checksBefore := h.metric("director_checks_total", "web", b1.addr, "")
	if !testutil.Within(10*time.Second, func() bool { return h.metric("director_checks_total", "web", b1.addr, "") >= checksBefore+3 }) {
		t.Fatal("health checks stopped while the kernel refused operations")
	}

	mem.SetFail(nil)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "repaired once the kernel accepts")
	waitReady(t, h.engine)
	if !testutil.Within(5*time.Second, func() bool { return logs.Count("ipvs operations succeed again") == 1 }) {
		t.Fatalf("no recovery line:\n%s", logs)
	}
}

func TestErrorLog(t *testing.T) {
	var l errorLog
	t0 := time.Unix(0, 0)
	steps := []struct {
		cause      string
		at         time.Duration
		log        bool
		suppressed int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // another cause is logged at once
		{"a", 59 * time.Second, false, 0},
		{"a", 61 * time.Second, true, 2}, // after a minute, with the repeats held back
		{"a", 62 * time.Second, false, 0},
		{"a", 61*time.Second + 2*time.Minute, true, 1}, // then after two minutes
	}
	for i, s := range steps {
		log, suppressed := l.note(s.cause, t0.Add(s.at))
		if log != s.log || suppressed != s.suppressed {
			t.Errorf("step %d (%s at %s): log %v suppressed %d, want %v %d", i, s.cause, s.at, log, suppressed, s.log, s.suppressed)
		}
	}
	rec := l.clear()
	if len(rec) != 2 || rec[0].cause != "a" || rec[0].failures != 6 || rec[1].cause != "b" {
		t.Errorf("clear = %+v", rec)
	}
	if log, _ := l.note("a", t0.Add(time.Hour)); !log {
		t.Error("a cause that returns after clearing is not logged")
	}
}

func TestIPVSCause(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("x: %w", ipvs.ErrPermission):                       "permission",
		&ipvs.OpError{Err: ipvs.ErrUnknownScheduler}:                  "unknown_scheduler",
		fmt.Errorf("read: %w", ipvs.ErrNotSupported):                  "not_supported",
		&ipvs.StoppedError{Err: context.DeadlineExceeded}:             "timeout",
		errors.New("weird"):                                           "other",
		&ipvs.OpError{Err: fmt.Errorf("%w: weight", ipvs.ErrInvalid)}: "invalid",
	} {
		if got := ipvsCause(err); got != want {
			t.Errorf("ipvsCause(%v) = %s, want %s", err, got, want)
		}
	}
}
