// Package damping keeps the flap penalties of real servers (see
// health.Damper). A server whose penalty rises above flap_suppress is held
// out like a failed one (weight 0 or removed, per on_failure) even while
// its checks pass, until the penalty has decayed below flap_reuse. An
// operator's enable ends it at once. It is pure: times are passed in.
package damping

import (
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

// Params converts the config's damping settings.
func Params(d config.Damping) health.DampingParams {
	return health.DampingParams{Penalty: d.Penalty, Suppress: d.Suppress, Reuse: d.Reuse, HalfLife: d.HalfLife, MaxSuppress: d.MaxSuppress}
}

// Penalty is one server's penalty after a change, for metrics and logs.
type Penalty struct {
	ID         config.ServerID
	Penalty    float64
	Suppressed bool
	// Changed: the server was suppressed (Flap) or released (Decay) now.
	Changed bool
	Until   time.Time // when a suppressed server's penalty will have decayed below reuse
}

// Set holds the dampers of the servers with a penalty.
type Set map[config.ServerID]*health.Damper

// Flap adds a flap to id's penalty.
func (s Set) Flap(id config.ServerID, p health.DampingParams, now time.Time) Penalty {
	d := s[id]
	if d == nil {
		d = &health.Damper{}
		s[id] = d
	}
	changed := d.Flap(p, now)
	return Penalty{ID: id, Penalty: d.Penalty(p, now), Suppressed: d.Suppressed(), Changed: changed, Until: d.ReuseAt(p)}
}

// Decay lets penalties decay, releases the servers whose penalty fell
// below reuse (Changed set) and forgets those with nothing left.
func (s Set) Decay(p health.DampingParams, now time.Time) []Penalty {
	out := make([]Penalty, 0, len(s))
	for id, d := range s {
		released := d.Update(p, now)
		pen := d.Penalty(p, now)
		out = append(out, Penalty{ID: id, Penalty: pen, Suppressed: d.Suppressed(), Changed: released})
		if pen == 0 && !d.Suppressed() {
			delete(s, id)
		}
	}
	return out
}

// Suppressed reports whether flap damping holds id out.
func (s Set) Suppressed(id config.ServerID) bool {
	d := s[id]
	return d != nil && d.Suppressed()
}

// Reset forgets id's penalty (an operator's enable) and reports whether
// it was suppressed.
func (s Set) Reset(id config.ServerID) bool {
	d := s[id]
	if d == nil {
		return false
	}
	was := d.Suppressed()
	delete(s, id)
	return was
}
