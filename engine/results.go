package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/health"
)

// observeAll feeds a batch of results, in order, and reports whether any
// server changed state.
func (e *Engine) observeAll(batch []probeResult) bool {
	changed := false
	for _, r := range batch {
		changed = e.observe(r) || changed
	}
	return changed
}

// observe feeds one check result to every server that uses the check and
// reports whether any of them changed state.
func (e *Engine) observe(r probeResult) bool {
	if r.result.Inconclusive {
		e.inconclusive(r)
		return false
	}
	p := e.probes[r.key]
	if p == nil {
		return false // its runner stopped meanwhile (a reload)
	}
	changed := false
	for c := p.feeds; c != nil; c = c.next {
		s := c.s
		id := &s.id
		t, moved := s.health.Observe(c.name, r.result.OK, r.result.Reason)
		e.noteResult(s, c, r.result)
		if r.result.OK && (r.result.HasWeight != c.hasWeight || r.result.Weight != c.weight) {
			// A new dynamic weight changes the table like a transition.
			c.hasWeight, c.weight = r.result.HasWeight, r.result.Weight
			changed = true
			e.built.staleVS(id.VirtualServer)
			e.changed(true)
			e.log.Info("real server weight reported by its check", "virtual_server", id.VirtualServer, "real_server", id.RealServer.String(),
				"weight", r.result.Weight, "reported", r.result.HasWeight, "check", c.spec().String())
		}
		if !moved {
			continue
		}
		changed = true
		e.built.staleVS(id.VirtualServer) // its health, and the policies' hold on it (flapped, guard)
		now := time.Now()
		s.lastAt = now.UnixNano()
		e.opts.Metrics.CountTransition(s.series, t.To)
		// The state series change with the state, not a reconcile later
		// (the weight series follow when the table has changed).
		s.reported.state = t.To
		e.opts.Metrics.SetState(s.series, t.To, s.reported.programmed, s.reported.configured)
		e.noteTransition(s, t)
		if t.From == health.Up && t.To == health.Down {
			e.flapped(*id, now)                                                                // flap damping (admin.go)
			e.guardEvents(e.guard.Down(e.cfg.Find(id.VirtualServer), *id, t.Reason, now), now) // panic guard
		}
		level := slog.LevelInfo
		if t.To == health.Down {
			level = slog.LevelWarn
		}
		e.log.Log(context.Background(), level, "real server "+t.To.String(),
			"virtual_server", id.VirtualServer, "real_server", id.RealServer.String(), "from", t.From.String(),
			"reason", t.Reason, "check", c.spec().String(), "latency", r.result.Duration.Round(time.Microsecond),
			"recent", s.history.summary())
	}
	if changed {
		e.changed(true)
	}
	return changed
}

// noteResult records a check result for Status and the detailed metrics.
func (e *Engine) noteResult(s *server, c *serverCheck, res checks.Result) {
	at := res.Start
	if at.IsZero() {
		at = time.Now()
	}
	cr := CheckResult{Time: at, OK: res.OK, Reason: res.Reason, Duration: res.Duration}
	if len(s.checks) > 1 {
		// A server's only check has the server's history (historyOf):
		// one history to keep per result, as before several checks.
		if c.history == nil {
			c.history = &history{}
		}
		c.history.add(cr, e.opts.HistoryLength)
		cr.Check = c.name
	}
	s.history.add(cr, e.opts.HistoryLength)
	e.opts.Metrics.Result(s.series, s.id.VirtualServer, s.checkLabel(), res.OK, res.Duration, res.Reason, at, int(s.history.failures))
	e.changed(false)
}

// inconclusive counts and logs a check the director could not make (its
// own fault: out of file descriptors, started after its deadline). It
// moves no server toward down, nor up. Logged once per cause, then with
// backoff, as kernel errors are.
func (e *Engine) inconclusive(r probeResult) {
	e.opts.Metrics.Inconclusive(r.result.Reason)
	log, suppressed := e.localErrors.note(r.result.Reason, time.Now())
	if !log {
		return
	}
	args := []any{"reason", r.result.Reason, "servers", e.fed(r.key), "hint", inconclusiveHint(r.result.Reason)}
	if suppressed > 0 {
		args = append(args, "repeats_not_logged", suppressed)
	}
	e.log.Error("health check could not be made; its result is ignored", args...)
}

// fed is how many servers' checks the runner of key feeds.
func (e *Engine) fed(key string) int {
	if p := e.probes[key]; p != nil {
		return p.fed()
	}
	return 0
}

// inconclusiveHint says what to do about an inconclusive check's cause.
// A check that ran late (it started after its deadline, or the director
// was starved past the deadline before it could send) is the director
// short of CPU, not of descriptors or memory.
func inconclusiveHint(reason string) string {
	if checks.RanLate(reason) {
		return "the director is short of CPU and ran checks past their deadlines (see director_check_schedule_lag_seconds; fast_checks = true costs less per check); the servers' health is unchanged"
	}
	return "the director itself is short of resources (raise LimitNOFILE, check memory and load); the servers' health is unchanged"
}
