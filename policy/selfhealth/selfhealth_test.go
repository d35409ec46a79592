package selfhealth

import (
	"strings"
	"testing"
	"time"
)

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	limits := Limits{StuckAfter: 10 * time.Second, UnreconciledAfter: 5 * time.Second, MinPoolShare: 0.5}
	good := Signals{Now: now, LastTurn: now.Add(-time.Second), Reconciled: true,
		Pools: []Pool{{Name: "web", Healthy: 3, Total: 4}, {Name: "empty"}}}
	with := func(f func(*Signals)) Signals { s := good; f(&s); return s }
	for _, tt := range []struct {
		name   string
		s      Signals
		l      Limits
		cause  Cause
		reason string
	}{
		{"healthy", good, limits, CauseHealthy, "reconciled"},
		{"loop stuck", with(func(s *Signals) { s.LastTurn = now.Add(-12 * time.Second) }), limits, CauseStuck, "12s"},
		{"a stuck loop comes before what it last said", with(func(s *Signals) {
			s.LastTurn = now.Add(-time.Minute)
			s.Reconciled = false
		}), limits, CauseStuck, "1m0s"},
		{"just under the stuck limit", with(func(s *Signals) { s.LastTurn = now.Add(-9 * time.Second) }), limits, CauseHealthy, ""},
		{"starting", with(func(s *Signals) { s.Reconciled = false }), limits, CauseStarting, "since start"},
		{"unreconciled, within the grace", with(func(s *Signals) { s.UnreconciledSince = now.Add(-4 * time.Second) }), limits, CauseHealthy, ""},
		{"unreconciled too long", with(func(s *Signals) { s.UnreconciledSince = now.Add(-5 * time.Second) }), limits, CauseUnreconciled, "5s"},
		{"a pool below the share", with(func(s *Signals) { s.Pools = []Pool{{Name: "web", Healthy: 1, Total: 4}} }), limits, CausePools, `"web" has 25% of its weight healthy (1 of 4), below 50%`},
		{"a pool at the share", with(func(s *Signals) { s.Pools = []Pool{{Name: "web", Healthy: 2, Total: 4}} }), limits, CauseHealthy, ""},
		{"pools off", with(func(s *Signals) { s.Pools = []Pool{{Name: "web", Total: 4}} }), Limits{StuckAfter: time.Minute}, CauseHealthy, ""},
		{"stuck check off", with(func(s *Signals) { s.LastTurn = now.Add(-time.Hour) }), Limits{}, CauseHealthy, ""},
		{"the loop not started yet is not stuck", with(func(s *Signals) {
			s.LastTurn = time.Time{}
			s.Reconciled = false
		}), limits, CauseStarting, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.s, tt.l)
			if v.Cause != tt.cause || v.Healthy != (tt.cause == CauseHealthy) || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("got %+v, want cause %s with reason containing %q", v, tt.cause, tt.reason)
			}
		})
	}
}
