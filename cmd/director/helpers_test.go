package main

// Helpers shared by the command's tests: the built binary, a running
// daemon with its log, backends, config files and HTTP requests.

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// binary is the director built for the tests that run it as a process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "director-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "director")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building director: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running director binary with its log captured.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	seen chan string
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, nil, args...)
}

// startDaemonEnv is startDaemon with extra environment.
func startDaemonEnv(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	return startDaemonCmd(t, cmd)
}

// startDaemonCmd starts cmd, a command that runs the director (perhaps
// through a wrapper), as a daemon.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{t: t, cmd: cmd, seen: make(chan string, 1024)}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.seen <- sc.Text():
			default:
			}
		}
		close(d.seen)
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	return d
}

// waitLog waits for a log line matching re and returns its submatches.
func (d *daemon) waitLog(re string) []string {
	d.t.Helper()
	r := regexp.MustCompile(re)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-d.seen:
			if !ok {
				d.t.Fatalf("director exited before logging %q; log:\n%s", re, d.logText())
			}
			if m := r.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			d.t.Fatalf("no log line matching %q; log:\n%s", re, d.logText())
		}
	}
}

// waitStarted waits for the start line and returns the address the
// director listens on.
func (d *daemon) waitStarted() string {
	d.t.Helper()
	return d.waitLog(`msg="director started".* listen=(\S+)`)[1]
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// waitExit waits for the director to exit, which it must do cleanly.
func (d *daemon) waitExit() {
	d.t.Helper()
	if err := d.cmd.Wait(); err != nil {
		d.t.Fatalf("director did not exit cleanly on SIGTERM: %v\n%s", err, d.logText())
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	d.waitExit()
}

// okBackend is a backend that answers "ok".
func okBackend(t *testing.T) string {
	t.Helper()
	return testutil.ServeHTTP(t, testutil.Answer(http.StatusOK, "ok")).String()
}
