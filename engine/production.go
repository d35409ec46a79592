package engine

import (
	"context"

	"github.com/lvsdirector/director/metrics"
)

// production is the engine state behind graceful drain, kernel failure
// handling and the service manager's watchdog. It sits in one field of
// Engine so that these features stay out of engine.go. drains is guarded
// by Engine.mu; errors is only used by the Run goroutine.
type production struct {
	metrics *metrics.Production
	drains  map[destKey]*drain
	errors  errorLog
	// started is closed once Run has made its first reconcile attempt.
	started chan struct{}
	// pings carries watchdog round trips through the Run loop.
	pings chan chan struct{}
}

func newProduction(opts Options) production {
	return production{
		metrics: metrics.NewProduction(opts.Metrics),
		drains:  map[destKey]*drain{},
		started: make(chan struct{}),
		pings:   make(chan chan struct{}),
	}
}

// Started is closed once Run has read the kernel table, started the checks
// and made its first reconcile attempt (successful or not): the moment to
// tell a service manager the director is up.
func (e *Engine) Started() <-chan struct{} { return e.prod.started }

// Ping returns once the Run loop has answered, or with ctx's error. A
// watchdog that pings through it notices a wedged engine, not only a dead
// process.
func (e *Engine) Ping(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case e.prod.pings <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
