package engine

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// eventRecorder is an OnTransition hook that keeps what it is given.
type eventRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *eventRecorder) add(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *eventRecorder) list() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func TestStatusHistoryEventsAndHook(t *testing.T) {
	up, down := newBackend(t), newBackend(t)
	down.stop()
	cfg := testConfig("quiesce", up, down)
	cfg.SHA256 = "abc123"
	rec := &eventRecorder{}
	m := metrics.New(metrics.Build{Version: "test"})
	e, err := New(cfg, Options{
		Table: ipvs.NewMemory(), Metrics: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTransition: rec.add, HistoryLength: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Wait for a full history, so its bound is tested too.
	st := waitStatus(t, e, "up server up, down server down with a full history", func(st Status) bool {
		u, d := serverIn(st, up.addr.String()), serverIn(st, down.addr.String())
		return st.Ready && u.State == health.Up && d.State == health.Down && len(d.History) == 3 && d.ProgrammedWeight == 0
	})
	if st.ConfigSHA256 != "abc123" || st.ConfigPath != "test.toml" {
		t.Errorf("config identity = %q %q", st.ConfigPath, st.ConfigSHA256)
	}
	vs := st.VirtualServers[0]
	if vs.Name != "web" || !vs.InKernel || vs.Service.Key != webKey || vs.Service.Scheduler != "wrr" {
		t.Errorf("virtual server = %+v", vs)
	}
	d := serverIn(st, down.addr.String())
	if d.Last == nil || d.Last.OK || d.Last.Reason != "refused" || d.ConsecutiveFailures < 3 || !d.LastSuccess.IsZero() || d.LastFailure.IsZero() {
		t.Errorf("down server = %+v, last %+v", d, d.Last)
	}
	if d.ConfiguredWeight != 100 || d.Check == "" {
		t.Errorf("down server weights/check = %d %q", d.ConfiguredWeight, d.Check)
	}
	u := serverIn(st, up.addr.String())
	if u.ProgrammedWeight != 100 || u.Last == nil || !u.Last.OK || u.LastSuccess.IsZero() {
		t.Errorf("up server = %+v", u)
	}
	// The snapshot is a copy: changing it does not change the engine.
	d.History[0].Reason = "scribbled"
	if again := serverIn(e.Status(), down.addr.String()); again.History[0].Reason == "scribbled" {
		t.Error("Status shares its history slice with the engine")
	}

	// Bring the down server back: down -> up is a flap; unknown -> x is not.
	down.start()
	waitStatus(t, e, "restarted server up", func(st Status) bool {
		return serverIn(st, down.addr.String()).State == health.Up
	})
	var seen []string
	for _, ev := range rec.list() {
		if ev.RealServer == down.addr {
			seen = append(seen, ev.From.String()+">"+ev.To.String()+":"+ev.Reason)
			if len(ev.Recent) == 0 || ev.VirtualServer != "web" || ev.Check == "" || ev.Time.IsZero() {
				t.Errorf("event lacks detail: %+v", ev)
			}
		}
	}
	want := []string{"unknown>down:refused", "down>up:check passed"}
	if len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("hook saw %q, want %q", seen, want)
	}
	if got := e.Status().Events; len(got) < 3 { // up's unknown>up, and down's two
		t.Errorf("status events = %+v", got)
	}
	h := &harness{t: t, metrics: m}
	if v := h.metric("director_real_server_flaps_total", "web", down.addr, ""); v != 1 {
		t.Errorf("flaps_total = %v, want 1", v)
	}
	if v := h.metric("director_real_server_consecutive_failures", "web", down.addr, ""); v != 0 {
		t.Errorf("consecutive_failures after recovery = %v, want 0", v)
	}
	if names := e.ServiceNames(); names[webKey] != "web" || len(names) != 1 {
		t.Errorf("ServiceNames = %v", names)
	}
}
