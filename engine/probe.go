package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lvsdirector/director/checks"
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

	// parent is the context every runner shares (Run's); a run's own
	// context, and one for a wait on a full inbox, are made from it and
	// cancelled by stop through runCancel. No context of its own per
	// runner: at 20,000 servers each was a cancelCtx, its done channel
	// and a children map its runs came and went through, ~300 bytes a
	// runner on the usual path (docs/performance.md, "Memory per real
	// server").
	parent context.Context
	out    *inbox // results go there, schedule counts to its sched
	key    string
	// due is the planned start of the next run, as nanoseconds since
	// runnerEpoch (monotonic): 16 bytes less than a time.Time. Touched
	// only by the run in flight (dueAt, setDue).
	due int64
	// failures counts consecutive failed results; touched only by the
	// run in flight. The grid's spacing toward due follows from it
	// (step). int32 beside stopped: the runner is one size class
	// smaller (docs/performance.md, "Memory, second pass").
	failures int32
	stopped  bool       // guarded by mu
	mu       sync.Mutex // guards stopped, slow and its timer and runCancel against stop
	// slow holds what only a run on a goroutine needs: made by start on
	// the usual path, and on the loop only when a result waits for room
	// in a full inbox (FastDone). Out of line, the runner on the loop
	// (the default) is 352 bytes, not 384 (docs/performance.md).
	slow *runnerSlow

	// loop, when set and able to run the prober, runs the check instead
	// of a runtime timer and a goroutine per run (probe_fast.go).
	loop     *checks.FastLoop
	fastNext checks.FastTimer // the next run, armed again for each; the loop's goroutine only
	fastRun  *checks.FastRun  // the run in flight; the loop's goroutine only

	// feeds is the first of the servers' checks its results go to, in
	// config order, chained by serverCheck.next (adoptConfig). The
	// engine loop's only.
	feeds *serverCheck
}

// fed is how many servers' checks the runner feeds.
func (p *probeRunner) fed() int {
	n := 0
	for c := p.feeds; c != nil; c = c.next {
		n++
	}
	return n
}

// runnerSlow is the part of a runner that only its runs on goroutines
// use (probeRunner.slow).
type runnerSlow struct {
	inflight  sync.WaitGroup     // the run in flight, if any
	timer     *time.Timer        // the usual path's; guarded by the runner's mu
	runCancel context.CancelFunc // cancels the run in flight, or its wait for the inbox; nil between; guarded by mu
}

// runnerEpoch is what the runners' due times count from; set once, with
// the monotonic clock, so that wall-clock steps do not move them.
var runnerEpoch = time.Now()

// dueAt is due as a time.
func (p *probeRunner) dueAt() time.Time { return runnerEpoch.Add(time.Duration(p.due)) }

// setDue sets due to t.
func (p *probeRunner) setDue(t time.Time) { p.due = int64(t.Sub(runnerEpoch)) }

// start schedules the check until stop. The first run waits a random part
// of the interval so that a thousand checks do not all fire at the same
// instant. After that, runs are planned on a fixed grid (the last planned
// start + k × step), so lateness never accumulates into drift; a run that
// is a whole interval late is dropped and counted rather than run twice. A run
// never overlaps the previous one: when one lasts past the next slot (a
// timeout not shorter than the interval), the next starts at the first
// slot after it ended, and the slots passed are counted as dropped. The
// step is the retry interval after a failure, until fall failures in a row
// (runStep).
func (p *probeRunner) start(parent context.Context, out *inbox) {
	p.parent = parent
	p.out = out
	if p.key == "" { // buildProbers sets it
		p.key = p.spec.Key()
	}
	p.setDue(time.Now().Add(time.Duration(rand.Int64N(int64(p.spec.Interval)))))
	if p.onLoop() {
		p.fastNext.Init(p.fireFast)
		p.loop.Do(p.scheduleFast)
		return
	}
	p.mu.Lock()
	p.slow = &runnerSlow{}
	p.slow.timer = time.AfterFunc(time.Until(p.dueAt()), p.fire)
	p.mu.Unlock()
}

// fire is one run, in the timer's goroutine.
func (p *probeRunner) fire() {
	if !p.enter() {
		return
	}
	defer p.slow.inflight.Done()

	p.starting(time.Now())
	pctx, pcancel := context.WithTimeout(p.parent, p.spec.Timeout)
	p.mu.Lock()
	p.slow.runCancel = pcancel
	p.mu.Unlock()
	res := p.prober.Probe(pctx)
	p.mu.Lock()
	p.slow.runCancel = nil
	p.mu.Unlock()
	pcancel()
	if p.isStopped() || p.parent.Err() != nil {
		return // stopped mid-check: the result belongs to nobody now
	}
	if !p.send(probeResult{key: p.key, result: res}) {
		return
	}
	p.planNext(res)
	p.mu.Lock()
	if !p.stopped {
		p.slow.timer.Reset(time.Until(p.dueAt()))
	}
	p.mu.Unlock()
}

// send hands r to the engine, waiting while its inbox is full; false
// when the runner stopped (or Run ended) first. Only a wait gets a
// context of its own, which stop cancels.
func (p *probeRunner) send(r probeResult) bool {
	if p.out.tryPut(r) {
		return true
	}
	ctx, cancel := context.WithCancel(p.parent)
	defer cancel()
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false
	}
	p.slow.runCancel = cancel // send runs after enter: slow is there
	p.mu.Unlock()
	ok := p.out.put(ctx, r)
	p.mu.Lock()
	p.slow.runCancel = nil
	p.mu.Unlock()
	return ok
}

// enter counts work in flight (call slow.inflight.Done when it ends)
// unless the runner is stopped; false when it is. It makes slow if the
// runner has none yet (a runner on the loop whose result waits).
func (p *probeRunner) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	if p.slow == nil {
		p.slow = &runnerSlow{}
	}
	p.slow.inflight.Add(1) // under mu, so never after stop has begun to Wait
	return true
}

// starting accounts for a run starting at now: a run a whole interval
// late is dropped and counted (a retry slot passed is not counted: the
// interval's runs are what was planned), and the lag is recorded.
func (p *probeRunner) starting(now time.Time) {
	due := p.dueAt()
	if behind := now.Sub(due); behind >= p.spec.Interval {
		p.out.sched.Skipped(int(behind / p.spec.Interval))
		step := p.step()
		due = due.Add(behind / step * step)
		p.setDue(due)
	}
	p.out.sched.Started(now.Sub(due))
}

// planNext sets due to the next run's slot after a run that ended now
// with res.
func (p *probeRunner) planNext(res checks.Result) {
	switch {
	case res.Inconclusive: // says nothing of the server: the count stands
	case res.OK:
		p.failures = 0
	case p.failures < math.MaxInt32: // saturates: it counts up to fall
		p.failures++
	}
	end, due := time.Now(), p.dueAt()
	next, _ := nextSlot(due, end, p.step())
	_, dropped := nextSlot(due, end, p.spec.Interval)
	p.out.sched.Skipped(dropped)
	p.setDue(next)
}

// step is the grid's spacing toward due: the interval, or the retry
// interval after a failure (runStep).
func (p *probeRunner) step() time.Duration {
	return runStep(p.spec.Interval, p.spec.RetryInterval, int(p.failures), p.spec.Fall)
}

// runStep is the spacing of a check's runs: retry (keepalived's
// delay_before_retry) after a failure while fewer than fall failures are
// in a row, so that a failure is confirmed or dismissed sooner; interval
// otherwise, and always when retry is 0. A runner may serve several
// servers, so it counts its own results rather than asking whether a
// server is up: a check that keeps failing goes back to the interval once
// fall failures would have taken any up server down.
func runStep(interval, retry time.Duration, failures, fall int) time.Duration {
	if retry > 0 && failures > 0 && failures < fall {
		return retry
	}
	return interval
}

// nextSlot is when the run after one planned for due that ended at end
// starts: due + step, or, when the run lasted past that, the first slot
// of the grid due + k × step not before end; dropped is how many slots
// passed while the run went on. The runner counts dropped runs on the
// interval's grid only: a failed run outlasting retry_interval drops
// nothing that was planned.
func nextSlot(due, end time.Time, step time.Duration) (next time.Time, dropped int) {
	next = due.Add(step)
	if !next.Before(end) {
		return next, 0
	}
	k := int64((end.Sub(due) + step - 1) / step)
	return due.Add(time.Duration(k) * step), int(k) - 1
}

// stop ends the runner: no run starts after it, and it waits for a run in
// flight to notice the cancellation and return.
func (p *probeRunner) stop() {
	p.mu.Lock()
	p.stopped = true
	slow := p.slow // none is made after stopped is set (enter)
	if slow != nil && slow.timer != nil {
		slow.timer.Stop()
	}
	if slow != nil && slow.runCancel != nil {
		slow.runCancel()
	}
	p.mu.Unlock()
	if p.onLoop() {
		p.loop.Do(p.stopFast)
	}
	if slow != nil {
		slow.inflight.Wait()
	}
}
