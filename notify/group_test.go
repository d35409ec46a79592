package notify

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gone reports whether process pid has ended (or is a zombie nobody has
// reaped yet: dead all the same).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[0] == "Z" || f[0] == "X"
}

// grandchildScript starts a grandchild that sleeps forever, writes its pid
// to the file $PIDFILE, then runs tail (the command's own behaviour).
func grandchildScript(t *testing.T, tail string) (script, pidFile string) {
	pidFile = filepath.Join(t.TempDir(), "pid")
	t.Setenv("PIDFILE", pidFile)
	return writeScript(t, "sleep 100000 &\necho $! > \"$PIDFILE.tmp\" && mv \"$PIDFILE.tmp\" \"$PIDFILE\"\n"+tail), pidFile
}

func readPid(t *testing.T, pidFile string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the command never wrote its grandchild's pid")
		}
	}
}

type kills struct {
	mu sync.Mutex
	n  map[string]int
}

func (k *kills) record(when string, processes int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n == nil {
		k.n = map[string]int{}
	}
	k.n[when] += processes
}

func (k *kills) get(when string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n[when]
}

// TestCommandGroupKilled: a notify_command's grandchild that sleeps
// forever is gone after the timeout, after the command exits, and after
// shutdown, and every killed process is counted. Only the direct child was
// killed before.
func TestCommandGroupKilled(t *testing.T) {
	for _, tc := range []struct {
		name, tail string
		timeout    time.Duration
		shutdown   bool
		when       string
		processes  int // the background sleep; while the command runs, the shell and its foreground sleep too
	}{
		{"timeout", "sleep 100000\n", 300 * time.Millisecond, false, "timeout", 3},
		{"command exits", "exit 0\n", 10 * time.Second, false, "exited", 1},
		{"shutdown", "sleep 100000\n", time.Minute, true, "shutdown", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script, pidFile := grandchildScript(t, tc.tail)
			rec, killed := &counts{}, &kills{}
			n := New(Options{
				Targets: func(string) Target { return Target{Command: []string{script}} },
				Timeout: tc.timeout, Recorder: rec, Logger: quiet(), Killed: killed.record,
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { n.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			n.Notify(event())
			grandchild := readPid(t, pidFile)
			t.Cleanup(func() { // should the test fail, end what it started
				if !gone(grandchild) {
					syscall.Kill(grandchild, syscall.SIGKILL)
				}
			})
			if tc.shutdown {
				time.Sleep(100 * time.Millisecond)
				cancel()
				<-done
			} else {
				for deadline := time.Now().Add(20 * time.Second); rec.get("command/failure")+rec.get("command/success") == 0; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the command never finished")
					}
				}
			}
			// Killed with SIGKILL: only the reaping may take a moment.
			for deadline := time.Now().Add(5 * time.Second); !gone(grandchild); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("grandchild %d still running after the command's %s", grandchild, tc.when)
				}
			}
			if got := killed.get(tc.when); got != tc.processes {
				t.Errorf("killed %v, want %d processes at %q", killed.n, tc.processes, tc.when)
			}
		})
	}
}
