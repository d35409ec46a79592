package engine

import (
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/slowstart"
)

// Slow start as the engine applies it: policy/slowstart decides who ramps
// and the weight at each moment; here the ramps are fed what the servers
// do, their steps are scheduled on the loop (Run's ramp timer), and they
// become log lines, metrics and status.

// SlowStart is a real server's ramp in progress, for Status.
type SlowStart struct {
	Since, Until time.Time
	Weight       uint32 // the ramp's weight now
	Target       uint32 // the weight it ramps to: configured, or its check's
}

// rampTrigger is the reconcile trigger of a slow start's step.
const rampTrigger = "slow_start"

// viewAt is view with the server's slow start, as ramps has it at now.
func (e *Engine) viewAt(id config.ServerID, state health.State, ramps slowstart.Set, now time.Time) desired.View {
	v := e.view(id, state)
	if v.Serving() {
		v.RampElapsed, v.Ramp = ramps.Serving(id, now)
	}
	return v
}

// seedRamps tells ramps about the servers of cfg that isNew accepts (all
// of them at start; at a reload, those it adds): one the kernel holds
// with a weight serves (mid-ramp when its weight is below its configured
// one: a previous run stopped there); one that does not, in a service
// whose kernel pool already serves, is out, so that its coming up ramps;
// any other starts with its pool and does not ramp.
func seedRamps(ramps slowstart.Set, cfg *config.Config, kernel map[desired.DestKey]ipvs.DestinationState,
	isNew func(config.ServerID) bool, now time.Time) {
	serving := map[ipvs.ServiceKey]bool{}
	for k, d := range kernel {
		if d.Weight > 0 {
			serving[k.Service] = true
		}
	}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		if vs.SlowStart <= 0 {
			continue
		}
		key := desired.ServiceKey(vs)
		for _, rs := range vs.RealServers {
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			if _, known := ramps[id]; known || !isNew(id) {
				continue
			}
			d, ok := kernel[desired.Key(key, rs.Address)]
			switch {
			case ok && d.Weight > 0 && d.Weight < rs.Weight:
				ramps.Adopt(id, now.Add(-slowstart.Resume(d.Weight, rs.Weight, vs.SlowStart)))
			case ok && d.Weight > 0:
				ramps.Adopt(id, time.Time{})
			case serving[key.Normalize()]:
				ramps.Out(id)
			}
		}
	}
}

// observeRamps feeds ramps whether each server of cfg serves now (state
// gives its health) and returns those whose ramp begins. Servers of a
// virtual server without slow start are not followed (what is known of
// them is forgotten): a director without slow start pays nothing for it,
// and a reload that turns it on finds each server as it is then.
func (e *Engine) observeRamps(ramps slowstart.Set, cfg *config.Config, state func(config.ServerID) health.State, now time.Time) []config.ServerID {
	var started []config.ServerID
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		if vs.SlowStart <= 0 {
			if len(ramps) > 0 {
				for _, rs := range vs.RealServers {
					delete(ramps, config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address})
				}
			}
			continue
		}
		for _, rs := range vs.RealServers {
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			st := state(id)
			if ramps.Observe(id, st != health.Unknown, e.view(id, st).Serving(), now) {
				started = append(started, id)
			}
			ramps.Settle(id, vs.SlowStart, now)
		}
	}
	return started
}

// rampsStarted logs the ramps that begin.
func (e *Engine) rampsStarted(started []config.ServerID) {
	for _, id := range started {
		vs := e.cfg.Find(id.VirtualServer)
		if vs == nil {
			continue
		}
		target := e.targetWeight(vs, id)
		e.log.Info("real server in slow start: its weight ramps up", "virtual_server", id.VirtualServer,
			"real_server", id.RealServer.String(), "slow_start", vs.SlowStart, "weight", slowstart.Weight(target, 0, vs.SlowStart),
			"target_weight", target, "steps", slowstart.Steps(vs.SlowStart))
	}
}

// targetWeight is the weight id ramps to: its check's, else its configured one.
func (e *Engine) targetWeight(vs *config.VirtualServer, id config.ServerID) uint32 {
	for _, rs := range vs.RealServers {
		if rs.Address == id.RealServer {
			return e.view(id, health.Up).ServingWeight(rs.Weight)
		}
	}
	return 0
}

// rampsNow lists the servers in slow start at now with their ramp.
func (e *Engine) rampsNow(now time.Time) map[config.ServerID]SlowStart {
	out := map[config.ServerID]SlowStart{}
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		if vs.SlowStart <= 0 {
			continue
		}
		for _, rs := range vs.RealServers {
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			elapsed, ok := e.ramps.Ramping(id, vs.SlowStart, now)
			if !ok {
				continue
			}
			v := e.view(id, e.stateOf(id))
			if !v.Serving() {
				continue
			}
			target := v.ServingWeight(rs.Weight)
			since := now.Add(-elapsed)
			out[id] = SlowStart{Since: since, Until: since.Add(vs.SlowStart), Weight: slowstart.Weight(target, elapsed, vs.SlowStart), Target: target}
		}
	}
	return out
}

// reportRamps sets the slow start series of the servers ramping at now,
// removes those whose ramp ended (logging each), and returns how long
// until the next step of any ramp; ok is false when none is ramping.
func (e *Engine) reportRamps(now time.Time) (next time.Duration, ok bool) {
	ramps := e.rampsNow(now)
	for id, r := range ramps {
		ratio := 1.0
		if r.Target > 0 {
			ratio = float64(r.Weight) / float64(r.Target)
		}
		e.policyMetrics.SlowStart(id.VirtualServer, id.RealServer.String(), ratio, true)
		vs := e.cfg.Find(id.VirtualServer)
		elapsed := now.Sub(r.Since)
		at, more := slowstart.Next(r.Target, elapsed, vs.SlowStart)
		if more && (!ok || at-elapsed < next) {
			next, ok = at-elapsed, true
		}
	}
	for id := range e.ramping {
		if _, still := ramps[id]; still {
			continue
		}
		delete(e.ramping, id)
		e.policyMetrics.SlowStart(id.VirtualServer, id.RealServer.String(), 0, false)
		if vs := e.cfg.Find(id.VirtualServer); vs != nil && e.view(id, e.stateOf(id)).Serving() {
			e.log.Info("real server slow start over: it has its full weight", "virtual_server", id.VirtualServer,
				"real_server", id.RealServer.String(), "weight", e.targetWeight(vs, id))
		}
	}
	for id := range ramps {
		e.ramping[id] = true
	}
	return next, ok
}
