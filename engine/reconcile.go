package engine

import (
	"context"
	"errors"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/drain"
)

// reconcile brings the kernel table to the desired state and reports
// whether every operation succeeded.
func (e *Engine) reconcile(ctx context.Context, trigger string) bool {
	start := time.Now()
	defer e.changed(true)
	// A health transition plans against the table as the director last
	// knew it: reading ten thousand destinations back from the kernel for
	// each server that goes up or down is the cost that grows with scale.
	// Every other trigger (start, resync, retry, reload, drain) reads the
	// kernel, so drift made behind our back is still found and repaired;
	// so does a transition after a failed reconcile, when what the
	// director last knew may be wrong.
	e.rampsStarted(e.observeRamps(e.ramps, e.cfg, e.stateOf, start))
	table, retired := e.desiredAt(start)
	e.recordOwned(ctx) // retries a failed write before anything is created
	// A slow start's step changes weights the director itself set a
	// moment ago: like a transition, it needs no fresh read.
	known := (trigger == "transition" || trigger == rampTrigger) && e.actual != nil && e.reconciled

	ctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	var report ipvs.Report
	var err error
	if known {
		report.Actual = e.actual
		report.Ops = ipvs.Plan(table, report.Actual, retired)
		report.Errors = ipvs.Apply(ctx, e.opts.Table, report.Ops)
	} else {
		report, err = ipvs.Reconcile(ctx, e.opts.Table, table, retired)
	}
	if err != nil {
		e.opts.Metrics.Reconcile(trigger, err, time.Since(start))
		e.ipvsFailed(trigger, err)
		return false
	}
	e.recordOps(trigger, report.Ops, report.Errors, e.ipvsFailed)
	ok := len(report.Errors) == 0
	var runErr error
	if !ok {
		runErr = errors.New("operations failed")
	}
	e.opts.Metrics.Reconcile(trigger, runErr, time.Since(start))

	var after []ipvs.ServiceState
	var readErr error
	if known && ok {
		after, readErr = applied(ctx, report)
	} else {
		after, readErr = e.readTable(ctx)
	}
	if readErr == nil {
		e.actual = after
	} else if known {
		e.actual = nil // unknown now: the next reconcile reads the kernel
	}
	if ok {
		for _, k := range retired {
			delete(e.retired, k)
		}
		e.recordOwned(ctx) // the deleted ones leave the state file
	}
	e.ipvsSettled(ok)
	e.recordProgrammed()
	return ok
}

// desired is the table the kernel should hold now: the config with the
// servers' health and the policies' decisions, plus the draining servers;
// and the retired services to delete.
func (e *Engine) desired() ([]ipvs.DesiredService, []ipvs.ServiceKey) { return e.desiredAt(time.Now()) }

// desiredAt is desired with the slow starts as they are at now.
func (e *Engine) desiredAt(now time.Time) ([]ipvs.DesiredService, []ipvs.ServiceKey) {
	table := desired.Build(e.cfg, desired.Input{
		View:       func(id config.ServerID) desired.View { return e.viewAt(id, e.stateOf(id), e.ramps, now) },
		QuorumLost: e.evaluateQuorum,
	})
	table = drain.With(table, e.drains)
	return table, drain.RetiredExcept(e.retired, table)
}

// stateOf is id's health; unknown for a server the engine does not know.
func (e *Engine) stateOf(id config.ServerID) health.State {
	if s := e.servers[id]; s != nil {
		return s.health.State()
	}
	return health.Unknown
}

// view is how the desired table sees a server in state: its health and
// what the policies hold it out with or keep it in by.
func (e *Engine) view(id config.ServerID, state health.State) desired.View {
	v := desired.View{State: state, Suppressed: e.dampers.Suppressed(id), Kept: e.guard.Kept(id, state)}
	if s := e.servers[id]; s != nil {
		v.Weight, v.HasWeight = s.checkWeight()
	}
	if o, ok := e.overrides.Effective(id); ok {
		v.Hold = o.Hold()
	}
	return v
}

// applied is the table a fully successful report leaves behind: its plan
// applied to the table it was planned against, in memory.
func applied(ctx context.Context, r ipvs.Report) ([]ipvs.ServiceState, error) {
	scratch := ipvs.NewMemoryFrom(r.Actual)
	if errs := ipvs.Apply(ctx, scratch, r.Ops); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return scratch.Services(ctx)
}

// recordProgrammed updates each server's programmed weight from the last
// table read, and its metrics.
func (e *Engine) recordProgrammed() {
	kernel := desired.Index(e.actual)
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		key := desired.ServiceKey(vs)
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			s := e.servers[config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}]
			if s == nil {
				continue
			}
			s.programmed = -1
			if d, ok := kernel[desired.Key(key, rs.Address)]; ok {
				s.programmed = int64(d.Weight)
			}
			// Only what changed: with thousands of servers, setting every
			// series on every reconcile is most of a transition's cost.
			now := reported{s.health.State(), s.programmed, rs.Weight}
			if s.reported != now {
				s.reported = now
				e.opts.Metrics.RealServer(vs.Name, rs.Address.String(), now.state.String(), now.programmed, now.configured)
			}
		}
	}
}

// recordOps logs each applied operation, counts every operation by kind
// and result (and, on a resync, as drift repaired), and hands each error
// to onErr.
func (e *Engine) recordOps(trigger string, ops []ipvs.Op, errs []error, onErr func(trigger string, err error)) {
	failed := map[string]bool{}
	for _, err := range errs {
		var oe *ipvs.OpError
		var stopped *ipvs.StoppedError
		switch {
		case errors.As(err, &oe):
			failed[oe.Op.String()] = true
		case errors.As(err, &stopped):
			for _, op := range ops[max(0, len(ops)-stopped.Remaining):] {
				failed[op.String()] = true
			}
		}
		onErr(trigger, err)
	}
	msg := "ipvs table changed"
	if e.opts.DryRun {
		msg = "dry-run: ipvs table changed (in memory only)"
	}
	for _, op := range ops {
		desc := op.String()
		if failed[desc] {
			e.opts.Metrics.IPVSOp(op.Kind.String(), errors.New("failed"))
			continue
		}
		e.opts.Metrics.IPVSOp(op.Kind.String(), nil)
		if trigger == "resync" {
			e.opts.Metrics.DriftRepaired(op.Kind.String())
		}
		e.log.Info(msg, "op", desc, "trigger", trigger)
	}
}
