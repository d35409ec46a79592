package engine

import (
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

// Flap damping (flap_damping = true): see health.Damper. A server whose
// penalty rises above flap_suppress is held out like a failed one (weight
// 0 or removed, per on_failure) even while its checks pass, until the
// penalty has decayed below flap_reuse. An operator's enable ends it at once.

func dampingParams(d config.Damping) health.DampingParams {
	return health.DampingParams{Penalty: d.Penalty, Suppress: d.Suppress, Reuse: d.Reuse, HalfLife: d.HalfLife, MaxSuppress: d.MaxSuppress}
}

// dampFlapLocked adds a flap to id's penalty. Callers hold mu.
func (e *Engine) dampFlapLocked(id serverID, now time.Time) {
	dc := e.cfg.Director.Damping
	if !dc.Enabled {
		return
	}
	p := dampingParams(dc)
	d := e.adm.dampers[id]
	if d == nil {
		d = &health.Damper{}
		e.adm.dampers[id] = d
	}
	if d.Flap(p, now) {
		e.log.Warn("real server suppressed by flap damping: held out until its penalty decays, even while its checks pass",
			"virtual_server", id.vs, "real_server", id.rs.String(), "penalty", int(d.Penalty(p, now)),
			"suppress", dc.Suppress, "reuse", dc.Reuse, "until", d.ReuseAt(p).UTC().Format(time.RFC3339),
			"fix", "fix the server; or enable it through the API to end the suppression now")
	}
	e.adm.metrics.Damping(id.vs, id.rs.String(), d.Penalty(p, now), d.Suppressed())
}

// releaseDampedLocked lets penalties decay and releases the servers whose
// penalty fell below flap_reuse. Callers hold mu.
func (e *Engine) releaseDampedLocked(now time.Time) bool {
	dc := e.cfg.Director.Damping
	if !dc.Enabled {
		return false
	}
	p := dampingParams(dc)
	changed := false
	for id, d := range e.adm.dampers {
		if d.Update(p, now) {
			changed = true
			e.log.Info("real server released by flap damping: its penalty decayed; its health decides again",
				"virtual_server", id.vs, "real_server", id.rs.String(), "penalty", int(d.Penalty(p, now)))
		}
		pen := d.Penalty(p, now)
		e.adm.metrics.Damping(id.vs, id.rs.String(), pen, d.Suppressed())
		if pen == 0 && !d.Suppressed() {
			delete(e.adm.dampers, id)
		}
	}
	return changed
}
