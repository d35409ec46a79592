// Package selfhealth decides whether the director itself is healthy
// enough to attract traffic: its engine loop turning, its kernel table
// reconciled, and (when asked) its pools above a watermark. What it
// decides goes to whoever steers traffic to this director: keepalived
// through the VRRP track file, or routers through BGP announcements.
//
// It is pure: the caller gathers the signals, with the time, and passes
// them in; Evaluate only decides.
package selfhealth

import (
	"fmt"
	"time"
)

// Signals are what the director knows about itself at one moment.
type Signals struct {
	Now time.Time
	// LastTurn is when the engine's loop last turned; zero before it
	// started.
	LastTurn time.Time
	// Reconciled: some reconcile has succeeded since start.
	Reconciled bool
	// UnreconciledSince is when the kernel table stopped being reconciled
	// (the first failed reconcile after a good one); zero while it is.
	UnreconciledSince time.Time
	// Pools are the virtual servers with their healthy weight.
	Pools []Pool
}

// Pool is one virtual server's real servers, by weight.
type Pool struct {
	Name string
	// Healthy is the configured weight of the serving real servers,
	// Total that of all of them.
	Healthy, Total uint64
}

// Limits say how much of each the director tolerates.
type Limits struct {
	// StuckAfter is how long the loop may stand still.
	StuckAfter time.Duration
	// UnreconciledAfter is how long the table may stay unreconciled (a
	// kernel hiccup retried at once should not move traffic).
	UnreconciledAfter time.Duration
	// MinPoolShare is the share of healthy weight (0 to 1) every pool
	// needs; 0 leaves pools out of it.
	MinPoolShare float64
}

// Cause is why the director is healthy or not, in one word (for metric
// labels and the status page).
type Cause string

const (
	CauseHealthy      Cause = "healthy"
	CauseStarting     Cause = "starting"       // no reconcile has succeeded yet
	CauseStuck        Cause = "loop_stuck"     // the engine loop stopped turning
	CauseUnreconciled Cause = "not_reconciled" // the kernel table has not been reconciled for too long
	CausePools        Cause = "pools_low"      // a pool is below MinPoolShare
)

// Verdict is the decision: Reason says it for people.
type Verdict struct {
	Healthy bool
	Cause   Cause
	Reason  string
}

// Evaluate decides from s within l. The checks go from the most basic
// up: a stuck loop makes every other signal stale.
func Evaluate(s Signals, l Limits) Verdict {
	if stood := s.Now.Sub(s.LastTurn); !s.LastTurn.IsZero() && l.StuckAfter > 0 && stood >= l.StuckAfter {
		return Verdict{Cause: CauseStuck, Reason: fmt.Sprintf("the engine loop has not turned for %s", stood.Round(time.Second))}
	}
	if !s.Reconciled {
		return Verdict{Cause: CauseStarting, Reason: "the kernel table has not been reconciled since start"}
	}
	if !s.UnreconciledSince.IsZero() {
		if failing := s.Now.Sub(s.UnreconciledSince); failing >= l.UnreconciledAfter {
			return Verdict{Cause: CauseUnreconciled, Reason: fmt.Sprintf("the kernel table has not been reconciled for %s", failing.Round(time.Second))}
		}
	}
	if l.MinPoolShare > 0 {
		for _, p := range s.Pools {
			if p.Total == 0 {
				continue // nothing configured to be healthy
			}
			if share := float64(p.Healthy) / float64(p.Total); share < l.MinPoolShare {
				return Verdict{Cause: CausePools, Reason: fmt.Sprintf("virtual server %q has %.0f%% of its weight healthy (%d of %d), below %.0f%%",
					p.Name, 100*share, p.Healthy, p.Total, 100*l.MinPoolShare)}
			}
		}
	}
	return Verdict{Healthy: true, Cause: CauseHealthy, Reason: "the engine loop turns and the kernel table is reconciled"}
}
