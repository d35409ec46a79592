package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/metrics"
)

// probeResult is one completed check, tagged with the check's identity.
type probeResult struct {
	key    string
	result checks.Result
}

// probeRunner runs one check on its schedule. Identical checks of several
// virtual servers share one runner; the engine fans its results out.
//
// A runner owns no goroutine between runs: each run is a runtime timer
// (time.AfterFunc) that fires on the check's grid, so ten thousand idle
// checks cost ten thousand timers, not ten thousand parked goroutines and
// their stacks.
type probeRunner struct {
	spec   checks.Spec
	prober checks.Prober

	ctx      context.Context
	cancel   context.CancelFunc
	out      chan<- probeResult
	sched    *metrics.Schedule
	key      string
	due      time.Time      // planned start of the next run; touched only by the run in flight
	inflight sync.WaitGroup // the run in flight, if any

	mu      sync.Mutex // guards timer and stopped against stop
	timer   *time.Timer
	stopped bool

	// loop, when set and able to run the prober, runs the check instead
	// of a runtime timer and a goroutine per run (probe_fast.go).
	loop     *checks.FastLoop
	fastNext *checks.FastTimer // the next run; the loop's goroutine only
	fastRun  *checks.FastRun   // the run in flight; the loop's goroutine only
}

// start schedules the check until stop. The first run waits a random part
// of the interval so that a thousand checks do not all fire at the same
// instant. After that, runs are planned on a fixed grid (first + k ×
// interval), so lateness never accumulates into drift; a run that is a
// whole interval late is dropped and counted rather than run twice, and a
// run never overlaps the previous one.
func (p *probeRunner) start(parent context.Context, out chan<- probeResult, sched *metrics.Schedule) {
	p.ctx, p.cancel = context.WithCancel(parent)
	p.out, p.sched, p.key = out, sched, p.spec.Key()
	p.due = time.Now().Add(time.Duration(rand.Int64N(int64(p.spec.Interval))))
	if p.onLoop() {
		p.loop.Do(p.scheduleFast)
		return
	}
	p.mu.Lock()
	p.timer = time.AfterFunc(time.Until(p.due), p.fire)
	p.mu.Unlock()
}

// fire is one run, in the timer's goroutine.
func (p *probeRunner) fire() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.inflight.Add(1) // under mu, so never after stop has begun to Wait
	p.mu.Unlock()
	defer p.inflight.Done()

	interval := p.spec.Interval
	now := time.Now()
	if behind := now.Sub(p.due); behind >= interval {
		missed := int(behind / interval)
		p.sched.Skipped(missed)
		p.due = p.due.Add(time.Duration(missed) * interval)
	}
	p.sched.Started(now.Sub(p.due))
	pctx, pcancel := context.WithTimeout(p.ctx, p.spec.Timeout)
	res := p.prober.Probe(pctx)
	pcancel()
	if p.ctx.Err() != nil {
		return // stopped mid-check: the result belongs to nobody now
	}
	select {
	case p.out <- probeResult{key: p.key, result: res}:
	case <-p.ctx.Done():
		return
	}
	p.due = p.due.Add(interval)
	p.mu.Lock()
	if !p.stopped {
		p.timer.Reset(time.Until(p.due))
	}
	p.mu.Unlock()
}

// stop ends the runner: no run starts after it, and it waits for a run in
// flight to notice the cancellation and return.
func (p *probeRunner) stop() {
	p.mu.Lock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
	if p.onLoop() {
		p.loop.Do(p.stopFast)
	}
	p.inflight.Wait()
}
