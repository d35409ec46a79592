package vrrp

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/internal/logbuf"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/selfhealth"
)

// count counts s in what l holds.
func count(l *logbuf.Buffer, s string) int { return strings.Count(l.String(), s) }

// signals is a director whose health the test sets.
type signals struct {
	reconciled atomic.Bool
	stuck      atomic.Bool
}

func (s *signals) get(now time.Time) selfhealth.Signals {
	turn := now
	if s.stuck.Load() {
		turn = now.Add(-time.Hour)
	}
	return selfhealth.Signals{Now: now, LastTurn: turn, Reconciled: s.reconciled.Load()}
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readTrack(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

// writeFIFO writes lines to the FIFO as keepalived does: its own
// descriptor, one write per line.
func writeFIFO(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open the FIFO for writing: %v", err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

type harness struct {
	ctl     *Controller
	sig     *signals
	sync    *ipvs.MemorySync
	logs    *logbuf.Buffer
	notices chan Notice
	fifo    string
	track   string
	cancel  context.CancelFunc
	done    chan struct{}
}

func start(t *testing.T, mode, onUnhealthy string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{sig: &signals{}, sync: ipvs.NewMemorySync(), logs: &logbuf.Buffer{}, notices: make(chan Notice, 100),
		fifo: filepath.Join(dir, "keepalived.fifo"), track: filepath.Join(dir, "track"), done: make(chan struct{})}
	cfg := &config.VRRP{NotifyFIFO: h.fifo, TrackFile: h.track, HealthyValue: 50, OnUnhealthy: onUnhealthy,
		UnhealthyAfter: time.Second, Instances: []config.VRRPInstance{{Name: "VI_1"}, {Name: "VI_2"}},
		Sync: config.VRRPSync{Mode: mode, Interface: "eth0", SyncID: 1, PeerSyncID: 2}}
	h.ctl = New(Options{Config: cfg, Signals: h.sig.get, StuckAfter: 10 * time.Second, Sync: h.sync,
		Logger: slog.New(slog.NewTextHandler(h.logs, nil)), Metrics: metrics.NewVRRP(metrics.New(metrics.Build{Version: "test"})),
		OnNotice: func(n Notice) { h.notices <- n }, HealthEvery: 20 * time.Millisecond, SyncEvery: time.Hour,
		FIFOPoll: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.ctl.Start(ctx)
	go func() { defer close(h.done); h.ctl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-h.done })
	poll(t, "the FIFO open", func() bool { return h.ctl.Status().FIFOOpen })
	return h
}

func (h *harness) daemons(t *testing.T) []ipvs.SyncDaemon {
	ds, err := h.sync.SyncDaemons(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// The track file says "not ready" from Start on, then follows the
// director's health; an unhealthy director writes 0 ("lower").
func TestTrackFileFollowsHealth(t *testing.T) {
	dir := t.TempDir()
	track := filepath.Join(dir, "track")
	if err := os.WriteFile(track, []byte("50\n"), 0o644); err != nil { // a previous run's healthy value
		t.Fatal(err)
	}
	sig := &signals{}
	cfg := &config.VRRP{NotifyFIFO: filepath.Join(dir, "fifo"), TrackFile: track, HealthyValue: 50, OnUnhealthy: "lower",
		UnhealthyAfter: time.Second, Instances: []config.VRRPInstance{{Name: "VI_1"}}, Sync: config.VRRPSync{Mode: config.SyncOff}}
	ctl := New(Options{Config: cfg, Signals: sig.get, StuckAfter: 10 * time.Second, HealthEvery: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	ctl.Start(ctx)
	if got := readTrack(t, track); got != "0" {
		t.Fatalf("after Start, before any reconcile: track file %q, want 0", got)
	}
	if st := ctl.Status(); st.Health.Cause != selfhealth.CauseStarting || !st.TrackWritten || st.TrackValue != 0 {
		t.Errorf("status after Start: %+v", st)
	}
	go func() { defer close(done); ctl.Run(ctx) }()
	sig.reconciled.Store(true)
	poll(t, "the healthy value", func() bool { return readTrack(t, track) == "50" })
	sig.stuck.Store(true)
	poll(t, "0 while the loop is stuck", func() bool { return readTrack(t, track) == "0" })
	poll(t, "the status to show the write", func() bool { return ctl.Status().TrackValue == 0 })
	if st := ctl.Status(); st.Health.Cause != selfhealth.CauseStuck {
		t.Errorf("status while stuck: %+v", st)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".track.*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// keepalived's real event lines drive the role, the sync daemons, the
// notices and the log; other lines are logged once and ignored; health
// "fault" writes -254.
func TestRoleFromTheFIFO(t *testing.T) {
	h := start(t, config.SyncFollowRole, "fault")
	if got := readTrack(t, h.track); got != "-254" {
		t.Errorf("track file at start with on_unhealthy = fault: %q", got)
	}
	if ds := h.daemons(t); len(ds) != 1 || ds[0].State != ipvs.SyncBackup || ds[0].SyncID != 1 {
		t.Fatalf("before any role: %+v, want the backup daemon", ds)
	}

	writeFIFO(t, h.fifo, `INSTANCE "VI_1" MASTER 200`)
	poll(t, "MASTER", func() bool { return h.ctl.Status().Role == Master })
	if ds := h.daemons(t); len(ds) != 1 || ds[0].State != ipvs.SyncMaster {
		t.Errorf("as MASTER: %+v, want the master daemon only", ds)
	}
	if n := <-h.notices; n.Instance != "VI_1" || n.From != "UNKNOWN" || n.To != "MASTER" {
		t.Errorf("notice %+v", n)
	}
	st := h.ctl.Status()
	if in := st.Instances[0]; in.State != Master || in.Priority != 200 || in.Since.IsZero() {
		t.Errorf("VI_1: %+v", in)
	}
	if len(st.SyncDaemons) != 1 || st.SyncDaemons[0].State != ipvs.SyncMaster {
		t.Errorf("status sync daemons %+v", st.SyncDaemons)
	}

	for range 2 {
		writeFIFO(t, h.fifo, `VS [192.0.2.10]:tcp:80 UP`, `not keepalived at all`)
	}
	writeFIFO(t, h.fifo, `INSTANCE "VI_1" MASTER_PRIORITY 180`, `INSTANCE "VI_1" BACKUP 180`)
	poll(t, "BACKUP", func() bool { return h.ctl.Status().Role == Backup })
	if ds := h.daemons(t); len(ds) != 1 || ds[0].State != ipvs.SyncBackup {
		t.Errorf("as BACKUP: %+v, want the backup daemon only", ds)
	}
	if n := count(h.logs, "not a keepalived VRRP event"); n != 2 {
		t.Errorf("%d log lines about ignored lines, want one for each of the two distinct lines:\n%s", n, h.logs.String())
	}
	if n := count(h.logs, `msg="VRRP state changed"`); n != 2 {
		t.Errorf("%d state change log lines, want 2", n)
	}

	// keepalived removes a FIFO it made when it stops and makes a new one
	// when it starts: the reader follows.
	if err := os.Remove(h.fifo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(h.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	poll(t, "the new FIFO read", func() bool {
		if count(h.logs, "reading keepalived's notify_fifo") < 2 {
			return false
		}
		writeFIFO(t, h.fifo, `INSTANCE "VI_2" MASTER 100`)
		return true
	})
	poll(t, "MASTER again, through VI_2", func() bool { return h.ctl.Status().Role == Master })

	h.sig.reconciled.Store(true)
	poll(t, "the healthy value", func() bool { return readTrack(t, h.track) == "50" })
}

// both-always runs both daemons whatever the role.
func TestBothAlways(t *testing.T) {
	h := start(t, config.SyncBothAlways, "lower")
	want := func(what string) {
		ds := h.daemons(t)
		if len(ds) != 2 || ds[0].State != ipvs.SyncMaster || ds[0].SyncID != 1 || ds[1].State != ipvs.SyncBackup || ds[1].SyncID != 2 {
			t.Errorf("%s: %+v, want master with 1 and backup with 2", what, ds)
		}
	}
	want("at start")
	calls := h.sync.Calls
	writeFIFO(t, h.fifo, `INSTANCE "VI_1" MASTER 100`)
	poll(t, "MASTER", func() bool { return h.ctl.Status().Role == Master })
	want("as MASTER")
	writeFIFO(t, h.fifo, `INSTANCE "VI_1" FAULT 0`)
	poll(t, "FAULT", func() bool { return h.ctl.Status().Instances[0].State == Fault })
	want("in FAULT")
	if h.sync.Calls != calls {
		t.Errorf("%d sync daemon commands on role changes, want none", h.sync.Calls-calls)
	}
}

// A missing directory for the FIFO, or a file that is not a FIFO, is
// reported (once) and retried; nothing else waits for it.
func TestFIFOProblems(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sig := &signals{}
	sig.reconciled.Store(true)
	logs := &logbuf.Buffer{}
	track := filepath.Join(dir, "track")
	cfg := &config.VRRP{NotifyFIFO: plain, TrackFile: track, HealthyValue: 7, OnUnhealthy: "lower",
		UnhealthyAfter: time.Second, Instances: []config.VRRPInstance{{Name: "VI_1"}}, Sync: config.VRRPSync{Mode: config.SyncOff}}
	ctl := New(Options{Config: cfg, Signals: sig.get, StuckAfter: time.Minute, HealthEvery: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ctl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	poll(t, "the error reported", func() bool { return strings.Contains(ctl.Status().FIFOError, "is not a FIFO") })
	if got := readTrack(t, track); got != "7" {
		t.Errorf("the track file waits for the FIFO: %q", got)
	}
	time.Sleep(1500 * time.Millisecond) // a retry or two
	if n := count(logs, "is not a FIFO"); n != 1 {
		t.Errorf("the error logged %d times, want once", n)
	}
}
