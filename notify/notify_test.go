package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// counts is a Recorder that keeps the counts.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) Notification(sink, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[sink+"/"+result]++
}

func (c *counts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// waitCount polls until the recorder has want of k.
func (c *counts) wait(t *testing.T, k string, want int) {
	t.Helper()
	if !testutil.Within(20*time.Second, func() bool { return c.get(k) >= want }) {
		t.Fatalf("%s never reached %d (have %v)", k, want, c.n)
	}
}

func event() Event {
	return Event{
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), VirtualServer: "web", RealServer: "10.0.0.11:8080",
		From: "up", To: "down", Reason: "status 503", Check: "http GET http://10.0.0.11:8080/healthz",
		Recent: []Result{{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), OK: false, Reason: "status 503", DurationSeconds: 0.002}},
	}
}

func run(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandGetsTheEvent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	// The arguments must arrive as given: no shell splits or expands them.
	script := writeScript(t, `{ env | grep ^DIRECTOR_ | sort; echo "args=$1|$2"; cat; } > "$OUT"`+"\n")
	t.Setenv("OUT", out)
	rec := &counts{}
	n := New(Options{
		Targets:  func(string) Target { return Target{Command: []string{script, "a b", "$HOME"}} },
		Recorder: rec, Logger: quiet(),
	})
	run(t, n)
	n.Notify(event())
	rec.wait(t, "command/success", 1)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"DIRECTOR_EVENT=transition", "DIRECTOR_VIRTUAL_SERVER=web", "DIRECTOR_REAL_SERVER=10.0.0.11:8080",
		"DIRECTOR_FROM=up", "DIRECTOR_TO=down", "DIRECTOR_REASON=status 503", "DIRECTOR_TIME=2025-01-02T03:04:05Z",
		"args=a b|$HOME", `"virtual_server":"web"`, `"recent":[{`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("command saw no %q in:\n%s", want, got)
		}
	}
}

func TestCommandFailuresAreCountedAndBounded(t *testing.T) {
	for _, tc := range []struct {
		name, script string
	}{
		{"exit status", "echo broken >&2; exit 3\n"},
		{"timeout", "sleep 3\n"},
		{"backgrounded child holds the pipe", "sleep 3 &\nexit 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &counts{}
			script := writeScript(t, tc.script)
			n := New(Options{
				Targets:  func(string) Target { return Target{Command: []string{script}} },
				Timeout:  300 * time.Millisecond,
				Recorder: rec, Logger: quiet(),
			})
			run(t, n)
			n.Notify(event())
			n.Notify(event())
			// Both are delivered (or given up on): a bad command does not wedge the worker.
			if !testutil.Within(20*time.Second, func() bool { return rec.get("command/failure")+rec.get("command/success") >= 2 }) {
				t.Fatalf("deliveries never finished: %v", rec.n)
			}
			if tc.name != "backgrounded child holds the pipe" && rec.get("command/failure") != 2 {
				t.Errorf("failures = %d, want 2", rec.get("command/failure"))
			}
		})
	}
	t.Run("missing executable", func(t *testing.T) {
		rec := &counts{}
		n := New(Options{Targets: func(string) Target { return Target{Command: []string{"/nonexistent/notify"}} }, Recorder: rec, Logger: quiet()})
		run(t, n)
		n.Notify(event())
		rec.wait(t, "command/failure", 1)
	})
}

func TestWebhookRetriesThenDelivers(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got Event
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		ctype = r.Header.Get("Content-Type")
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("webhook body: %v", err)
		}
	}))
	defer srv.Close()
	rec := &counts{}
	n := New(Options{
		Targets:  func(vs string) Target { return Target{URL: srv.URL + "/hook?token=secret"} },
		Attempts: 3, RetryDelay: 10 * time.Millisecond, Recorder: rec, Logger: quiet(),
	})
	run(t, n)
	n.Notify(event())
	rec.wait(t, "webhook/success", 1)
	if calls.Load() != 3 {
		t.Errorf("calls = %d, want 3 (two 503s, then success)", calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	want := event()
	if got.VirtualServer != want.VirtualServer || got.RealServer != want.RealServer || got.To != "down" ||
		got.Reason != "status 503" || got.Type != "transition" || len(got.Recent) != 1 || !got.Time.Equal(want.Time) {
		t.Errorf("webhook got %+v", got)
	}
	if ctype != "application/json" {
		t.Errorf("Content-Type = %q", ctype)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		calls  int32
	}{
		{"client error is not retried", http.StatusBadRequest, 1},
		{"server error is retried to the limit", http.StatusBadGateway, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			rec := &counts{}
			n := New(Options{Targets: func(string) Target { return Target{URL: srv.URL} },
				RetryDelay: time.Millisecond, Recorder: rec, Logger: quiet()})
			run(t, n)
			n.Notify(event())
			rec.wait(t, "webhook/failure", 1)
			if calls.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", calls.Load(), tc.calls)
			}
		})
	}
}

func TestNotifyNeverBlocks(t *testing.T) {
	rec := &counts{}
	// Notify's caller holds a lock that Targets needs (the engine's): a
	// Notify that called Targets would deadlock here.
	var mu sync.Mutex
	n := New(Options{
		Targets: func(string) Target {
			mu.Lock()
			defer mu.Unlock()
			return Target{Command: []string{"/bin/true"}}
		},
		QueueSize: 1, Recorder: rec, Logger: quiet(),
	})
	mu.Lock()
	// No Run yet: nothing drains the queue, so the second event must be
	// dropped, not waited on.
	n.Notify(event())
	n.Notify(event())
	mu.Unlock()
	if rec.get("any/dropped") != 1 {
		t.Errorf("dropped = %v, want 1", rec.n)
	}
	run(t, n)
	rec.wait(t, "command/success", 1)

	// A virtual server with no targets queues nothing for the sinks.
	n2 := New(Options{Recorder: rec})
	n2.route(event())
	if len(n2.commands)+len(n2.webhooks) != 0 {
		t.Error("event queued without a target")
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://hooks.example.com/x", "https://hooks.example.com/x"},
		{"https://hooks.example.com/x?token=s3cret", "https://hooks.example.com/x?…"},
		{"https://user:pw@hooks.example.com/x", "https://…@hooks.example.com/x"},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDropsAreCountedButLoggedOnce: a burst of drops is one log line, and
// every drop is still counted.
func TestDropsAreCountedButLoggedOnce(t *testing.T) {
	rec := &counts{}
	var logs bytes.Buffer
	n := New(Options{QueueSize: 1, Recorder: rec, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 1001 { // no Run: the first fills the queue, the rest are dropped
		n.Notify(event())
	}
	if got := rec.get("any/dropped"); got != 1000 {
		t.Errorf("dropped = %v, want 1000", got)
	}
	if lines := strings.Count(logs.String(), "events dropped"); lines != 1 {
		t.Errorf("%d log lines for 1000 drops, want 1:\n%s", lines, logs.String())
	}
}
