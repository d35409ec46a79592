package systemd

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestMessages(t *testing.T) {
	path, next := testutil.NotifySocket(t, 10*time.Second)
	n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": path}))
	if n == nil {
		t.Fatal("FromEnv returned nil with NOTIFY_SOCKET set")
	}
	n.Ready("serving 2 virtual servers")
	if got := next(); got != "READY=1\nSTATUS=serving 2 virtual servers" {
		t.Errorf("Ready sent %q", got)
	}
	n.Reloading()
	if got := next(); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*$`).MatchString(got) {
		t.Errorf("Reloading sent %q", got)
	}
	n.Stopping()
	if got := next(); got != "STOPPING=1" {
		t.Errorf("Stopping sent %q", got)
	}
	n.Watchdog()
	if got := next(); got != "WATCHDOG=1" {
		t.Errorf("Watchdog sent %q", got)
	}
}

func TestNotStartedBySystemd(t *testing.T) {
	n := FromEnv(env(nil))
	if n != nil {
		t.Fatal("FromEnv without NOTIFY_SOCKET returned a notifier")
	}
	if err := n.Ready("x"); err != nil || n.WatchdogInterval() != 0 {
		t.Errorf("nil notifier: Ready = %v, WatchdogInterval = %v; want no-ops", err, n.WatchdogInterval())
	}
}

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, tt := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}, 30 * time.Second},
		{map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}, 30 * time.Second},
		{map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 0}, // meant for another process
		{map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "garbage"}, 0},
	} {
		if got := FromEnv(env(tt.env)).WatchdogInterval(); got != tt.want {
			t.Errorf("%v: interval %v, want %v", tt.env, got, tt.want)
		}
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	n := FromEnv(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")}))
	if err := n.Ready("x"); err == nil {
		t.Error("Ready to a missing socket succeeded")
	}
}
