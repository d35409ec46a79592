package engine

import (
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/policy/selfhealth"
)

// selfHealth is what the loop last published about its own health, for
// SelfHealth: it is replaced whole after every reconcile, never changed.
type selfHealth struct {
	reconciled        bool      // some reconcile has succeeded
	unreconciledSince time.Time // zero while the last one succeeded
	pools             []selfhealth.Pool
}

// noteSelfHealth publishes the outcome of a reconcile and the pools'
// healthy weight, on the loop's goroutine.
func (e *Engine) noteSelfHealth(ok bool, now time.Time) {
	prev := e.selfHealth.Load()
	next := &selfHealth{}
	if prev != nil {
		*next = *prev
	}
	switch {
	case ok:
		next.reconciled, next.unreconciledSince = true, time.Time{}
	case next.unreconciledSince.IsZero():
		next.unreconciledSince = now
	}
	view := func(id config.ServerID) desired.View { return e.view(id, e.stateOf(id)) }
	next.pools = make([]selfhealth.Pool, 0, len(e.cfg.VirtualServers))
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		// As the reconcile that calls this just built it (20,000 views
		// asked again per reconcile otherwise).
		healthy, ok := e.built.healthyOf(e.cfg, i)
		if !ok {
			healthy = desired.HealthyWeight(vs, view)
		}
		p := selfhealth.Pool{Name: vs.Name, Healthy: healthy}
		for _, rs := range vs.RealServers {
			p.Total += uint64(rs.Weight)
		}
		next.pools = append(next.pools, p)
	}
	e.selfHealth.Store(next)
}

// SelfHealth returns the signals policy/selfhealth decides on, as of now:
// safe to call from any goroutine, and meaningful when the loop is stuck
// (its last turn ages).
func (e *Engine) SelfHealth(now time.Time) selfhealth.Signals {
	s := selfhealth.Signals{Now: now}
	if t := e.lastTurn.Load(); t != 0 { // zero before Run
		s.LastTurn = time.Unix(0, t)
	}
	if h := e.selfHealth.Load(); h != nil {
		s.Reconciled, s.UnreconciledSince, s.Pools = h.reconciled, h.unreconciledSince, h.pools
	}
	return s
}

// StuckAfter is how long the loop may stand still before Ready is false.
func (e *Engine) StuckAfter() time.Duration { return e.opts.StuckAfter }
