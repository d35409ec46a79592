package engine

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/metrics"
)

// slowProber takes longer than the interval, and notes overlapping runs.
type slowProber struct {
	took    time.Duration
	running atomic.Int32
	overlap atomic.Bool
	runs    atomic.Int32
}

func (p *slowProber) Probe(ctx context.Context) checks.Result {
	if p.running.Add(1) > 1 {
		p.overlap.Store(true)
	}
	defer p.running.Add(-1)
	p.runs.Add(1)
	select {
	case <-time.After(p.took):
	case <-ctx.Done():
	}
	return checks.Result{OK: true}
}

func TestRunnerDropsRunsItCannotMake(t *testing.T) {
	m := metrics.New(metrics.Build{})
	prober := &slowProber{took: 50 * time.Millisecond}
	p := &probeRunner{
		spec:   checks.Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:1"), Interval: 20 * time.Millisecond, Timeout: time.Second},
		prober: prober,
	}
	out := &inboxReader{in: newInbox(inboxLimit, m.Schedule)}
	p.start(context.Background(), out.in)
	results := 0
	for results < 4 {
		out.mustNext(t)
		results++
	}
	p.stop()
	if prober.overlap.Load() {
		t.Error("a check started while its previous run was still going")
	}
	if skipped := testutil.ToFloat64(m.Schedule.SkippedCounter()); skipped < 1 {
		t.Errorf("runs of 50ms every 20ms: skipped = %v, want > 0", skipped)
	}
	if started := testutil.ToFloat64(m.Schedule.StartedCounter()); int(started) != int(prober.runs.Load()) {
		t.Errorf("started counter %v, prober ran %d times", started, prober.runs.Load())
	}
}

func TestRunnerStopEndsGoroutine(t *testing.T) {
	m := metrics.New(metrics.Build{})
	prober := &slowProber{took: time.Hour}
	p := &probeRunner{
		spec:   checks.Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:1"), Interval: time.Millisecond, Timeout: time.Hour},
		prober: prober,
	}
	p.start(context.Background(), newInbox(inboxLimit, m.Schedule))
	for prober.runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { p.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not end a runner whose check hangs")
	}
}
