package engine

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// A loop that stops turning (here: a notification hook that blocks, as a
// badly written one might) makes the engine unready, although its last
// reconcile succeeded; it is ready again once the loop turns.
func TestReadyFollowsTheLoop(t *testing.T) {
	b1 := newBackend(t)
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	h, _ := startAdmin(t, testConfig("quiesce", b1), ipvs.NewMemory(), func(o *Options) {
		o.StuckAfter = 300 * time.Millisecond
		o.OnTransition = func(ev Event) {
			if ev.To.String() == "down" {
				blocked <- struct{}{}
				<-release
			}
		}
	})
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	waitReady(t, h.engine)
	b1.stop()
	<-blocked
	poll(t, "unready while the loop is stuck", func() bool { return !h.engine.Ready() })
	close(release)
	poll(t, "ready again once the loop turns", func() bool { return h.engine.Ready() })
}

// A state_file path that names a directory (here one holding the
// maintenance directory) is never moved aside: the directory and what it
// holds stay, and the maintenance holds in it still apply.
func TestStateFileDirectoryNotMoved(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state := filepath.Join(t.TempDir(), "state")
	maint := filepath.Join(state, "maintenance")
	if err := os.MkdirAll(maint, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(maint, b1.addr.Addr().String()+"_"+itoa(b1.addr.Port())), []byte("drain: rack move\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("quiesce", b1, b2)
	cfg.Director.MaintenanceDir = maint
	h, logs := startAdmin(t, cfg, ipvs.NewMemory(), func(o *Options) { o.StateFile = state })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "b1 held by its maintenance file")
	if fi, err := os.Stat(state); err != nil || !fi.IsDir() {
		t.Fatalf("the state_file directory is gone: %v", err)
	}
	if _, err := os.Stat(state + ".corrupt"); err == nil {
		t.Error("the state_file directory was moved aside")
	}
	if !strings.Contains(logs.String(), "not a regular file") {
		t.Errorf("no log line says the state file is not a regular file:\n%s", logs)
	}
}
