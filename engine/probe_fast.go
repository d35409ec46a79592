package engine

import (
	"time"

	"github.com/lvsdirector/director/checks"
)

// A runner whose check the engine's FastLoop can run keeps the same grid,
// retry, skip and lag accounting as fire (starting, planNext), but its runs are the loop's timers and
// sockets: no runtime timer, goroutine or context per run, and its own
// timer (fastNext) armed again for each run. Its state (due, fastNext,
// fastRun) is touched only in the loop's goroutine.

// onLoop says the runner's check runs on the loop.
func (p *probeRunner) onLoop() bool { return p.loop != nil && p.loop.Supports(p.prober) }

func (p *probeRunner) isStopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// scheduleFast plans the next run at due. In the loop.
func (p *probeRunner) scheduleFast() {
	if !p.isStopped() {
		p.loop.Arm(&p.fastNext, p.dueAt())
	}
}

// fireFast is one run, started on the loop.
func (p *probeRunner) fireFast() {
	if p.isStopped() {
		return
	}
	now := time.Now()
	p.starting(now)
	timeout := p.spec.Timeout
	if timeout <= 0 {
		timeout = checks.DefaultTimeout
	}
	p.fastRun = p.loop.Start(p.prober, now.Add(timeout), p) // FastDone
}

// FastDone hands the result to the engine and plans the next run. In
// the loop, so it must not wait: when the engine's inbox is full (the
// engine stuck), a goroutine waits for room and only then plans the next
// run, so a runner never has more than one result waiting beyond the
// inbox's limit (as with fire).
func (p *probeRunner) FastDone(res checks.Result) {
	p.fastRun = nil
	r := probeResult{key: p.key, result: res}
	if p.out.tryPut(r) {
		p.planNext(res)
		p.scheduleFast()
		return
	}
	if !p.enter() {
		return
	}
	go func() {
		defer p.slow.inflight.Done()
		if !p.send(r) {
			return
		}
		p.loop.Do(func() {
			p.planNext(res)
			p.scheduleFast()
		})
	}()
}

// stopFast drops the next run and the one in flight. In the loop, after
// stopped is set.
func (p *probeRunner) stopFast() {
	p.loop.Stop(&p.fastNext)
	p.fastRun.Abort()
	p.fastRun = nil
}
