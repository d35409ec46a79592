package engine

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/metrics"
)

func TestRunStep(t *testing.T) {
	const interval, retry = 5 * time.Second, time.Second
	for _, tt := range []struct {
		name           string
		retry          time.Duration
		failures, fall int
		want           time.Duration
	}{
		{"passing", retry, 0, 3, interval},
		{"first failure: retry", retry, 1, 3, retry},
		{"second failure: retry", retry, 2, 3, retry},
		{"fall reached: down, back to the interval", retry, 3, 3, interval},
		{"still failing after fall", retry, 7, 3, interval},
		{"fall 1: the first failure decides", retry, 1, 1, interval},
		{"no retry_interval", 0, 1, 3, interval},
	} {
		if got := runStep(interval, tt.retry, tt.failures, tt.fall); got != tt.want {
			t.Errorf("%s: runStep = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestNextSlot(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	for _, tt := range []struct {
		name        string
		took, step  time.Duration
		want        time.Duration // after t0
		wantDropped int
	}{
		{"short run: the next slot", 30 * ms, 100 * ms, 100 * ms, 0},
		{"ends exactly on the next slot", 100 * ms, 100 * ms, 100 * ms, 0},
		{"lasts past one slot: the one after it ended", 150 * ms, 100 * ms, 200 * ms, 1},
		{"timeout of 3 intervals", 300*ms + 1, 100 * ms, 400 * ms, 3},
		{"retry step", 10 * ms, 20 * ms, 20 * ms, 0},
	} {
		next, dropped := nextSlot(t0, t0.Add(tt.took), tt.step)
		if next.Sub(t0) != tt.want || dropped != tt.wantDropped {
			t.Errorf("%s: nextSlot = +%s, %d dropped; want +%s, %d", tt.name, next.Sub(t0), dropped, tt.want, tt.wantDropped)
		}
	}
}

// failingProber fails every run and records when each started.
type failingProber struct {
	mu     sync.Mutex
	starts []time.Time
}

func (p *failingProber) Probe(context.Context) checks.Result {
	p.mu.Lock()
	p.starts = append(p.starts, time.Now())
	p.mu.Unlock()
	return checks.Result{Reason: "refused"}
}

// With retry_interval, a failing check is run again after the retry
// interval until fall failures in a row, then at the interval again.
func TestRunnerRetriesSooner(t *testing.T) {
	m := metrics.New(metrics.Build{})
	prober := &failingProber{}
	const interval, retry, fall = 400 * time.Millisecond, 5 * time.Millisecond, 3
	p := &probeRunner{
		spec: checks.Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:1"), Interval: interval, Timeout: retry,
			RetryInterval: retry, Fall: fall},
		prober: prober,
	}
	out := &inboxReader{in: newInbox(inboxLimit, m.Schedule)}
	p.start(context.Background(), out.in)
	for range fall + 1 {
		out.mustNext(t)
	}
	p.stop()
	prober.mu.Lock()
	defer prober.mu.Unlock()
	s := prober.starts
	// Two retries in far less than an interval (a generous bound: a busy
	// machine delays timers), then a wait of a whole interval, less the
	// third run's own lateness.
	if gap := s[fall-1].Sub(s[0]); gap >= interval/2 {
		t.Errorf("%d failures took %s with retry_interval %s and interval %s", fall, gap, retry, interval)
	}
	if gap := s[fall].Sub(s[fall-1]); gap < interval/2 {
		t.Errorf("after %d failures (fall) the next run came after %s, want the interval %s", fall, gap, interval)
	}
}

// A check whose runs outlast its interval (timeout not shorter than the
// interval) never overlaps itself, and each run drops the slots that
// passed while it went on.
func TestRunnerLongRunsKeepTheGrid(t *testing.T) {
	m := metrics.New(metrics.Build{})
	prober := &slowProber{took: 50 * time.Millisecond}
	p := &probeRunner{
		spec:   checks.Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:1"), Interval: 20 * time.Millisecond, Timeout: time.Second},
		prober: prober,
	}
	out := &inboxReader{in: newInbox(inboxLimit, m.Schedule)}
	p.start(context.Background(), out.in)
	const runs = 4
	for range runs {
		out.mustNext(t)
	}
	p.stop()
	if prober.overlap.Load() {
		t.Error("a check started while its previous run was still going")
	}
	// Each run of at least 50ms from its slot passes at least two 20ms slots.
	if skipped := testutil.ToFloat64(m.Schedule.SkippedCounter()); skipped < 2*runs {
		t.Errorf("skipped = %v after %d runs of 50ms every 20ms, want at least %d", skipped, runs, 2*runs)
	}
}

// slowFailingProber fails after took.
type slowFailingProber struct{ took time.Duration }

func (p slowFailingProber) Probe(ctx context.Context) checks.Result {
	select {
	case <-time.After(p.took):
	case <-ctx.Done():
	}
	return checks.Result{Reason: "timeout"}
}

// A failed run that outlasts retry_interval (a timeout longer than the
// retry) drops no planned run: the retry follows when it ends, and only
// the interval's slots count as skipped.
func TestRetryAfterLongFailureSkipsNothing(t *testing.T) {
	m := metrics.New(metrics.Build{})
	p := &probeRunner{
		spec: checks.Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:1"), Interval: time.Second, Timeout: time.Second,
			RetryInterval: 5 * time.Millisecond, Fall: 3},
		prober: slowFailingProber{took: 30 * time.Millisecond},
	}
	out := &inboxReader{in: newInbox(inboxLimit, m.Schedule)}
	p.start(context.Background(), out.in)
	for range 3 {
		out.mustNext(t)
	}
	p.stop()
	if skipped := testutil.ToFloat64(m.Schedule.SkippedCounter()); skipped != 0 {
		t.Errorf("skipped = %v after failed runs of 30ms with retry_interval 5ms, want 0", skipped)
	}
}
