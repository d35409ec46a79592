package engine

import (
	"context"
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
type probeRunner struct {
	spec   checks.Spec
	prober checks.Prober
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// start runs the check until stop. The first run waits a random part of
// the interval so that a thousand checks do not all fire at the same instant.
func (p *probeRunner) start(parent context.Context, out chan<- probeResult) {
	ctx, cancel := context.WithCancel(parent)
	p.cancel = cancel
	key := p.spec.Key()
	p.done.Go(func() {
		delay := time.Duration(rand.Int64N(int64(p.spec.Interval)))
		timer := time.NewTimer(delay)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			// Schedule the next run from this start, not from the end, so the
			// interval is the period between checks whatever they take.
			timer.Reset(p.spec.Interval)
			pctx, pcancel := context.WithTimeout(ctx, p.spec.Timeout)
			res := p.prober.Probe(pctx)
			pcancel()
			if ctx.Err() != nil {
				return // stopped mid-check: the result belongs to nobody now
			}
			select {
			case out <- probeResult{key: key, result: res}:
			case <-ctx.Done():
				return
			}
		}
	})
}

// stop ends the runner and waits for its goroutine.
func (p *probeRunner) stop() {
	p.cancel()
	p.done.Wait()
}
