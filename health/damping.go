package health

import (
	"math"
	"time"
)

// DampingParams configure flap damping (BGP route flap damping, RFC 2439,
// applied to real servers): each fall from up to down adds Penalty; the
// penalty halves every HalfLife; above Suppress the server is held out
// even while its checks pass, until the penalty has decayed below Reuse.
// The penalty is capped at the value that takes MaxSuppress to decay to
// Reuse, so no server is held out longer than MaxSuppress after its last
// flap.
type DampingParams struct {
	Penalty, Suppress, Reuse float64
	HalfLife, MaxSuppress    time.Duration
}

// Ceiling is the highest penalty a server can reach.
func (p DampingParams) Ceiling() float64 {
	if p.HalfLife <= 0 {
		return p.Reuse
	}
	return p.Reuse * math.Exp2(float64(p.MaxSuppress)/float64(p.HalfLife))
}

// Damper is the flap penalty of one real server. The zero value has no
// penalty. It is pure: the caller passes the time.
type Damper struct {
	penalty    float64   // as of at
	at         time.Time // when penalty was last computed
	suppressed bool
}

// Penalty is the decayed penalty at now.
func (d *Damper) Penalty(p DampingParams, now time.Time) float64 {
	if d.penalty == 0 || p.HalfLife <= 0 {
		return d.penalty
	}
	dt := now.Sub(d.at)
	if dt <= 0 {
		return d.penalty
	}
	v := d.penalty * math.Exp2(-float64(dt)/float64(p.HalfLife))
	if v < 0.5 { // forget tiny remainders: the penalty is then exactly 0
		return 0
	}
	return v
}

// Flap records a fall from up to down at now. It reports whether the
// server became suppressed by it.
func (d *Damper) Flap(p DampingParams, now time.Time) (suppressedNow bool) {
	d.penalty = min(d.Penalty(p, now)+p.Penalty, p.Ceiling())
	d.at = now
	if !d.suppressed && d.penalty > p.Suppress {
		d.suppressed = true
		return true
	}
	return false
}

// Update lets the penalty decay to now and reports whether the server
// stopped being suppressed (its penalty fell below Reuse).
func (d *Damper) Update(p DampingParams, now time.Time) (released bool) {
	d.penalty = d.Penalty(p, now)
	d.at = now
	if d.suppressed && d.penalty < p.Reuse {
		d.suppressed = false
		return true
	}
	return false
}

// Suppressed reports whether the server is held out, as of the last Flap
// or Update.
func (d *Damper) Suppressed() bool { return d.suppressed }

// ReuseAt is when a suppressed server's penalty falls below Reuse; the
// zero time when it is not suppressed.
func (d *Damper) ReuseAt(p DampingParams) time.Time {
	if !d.suppressed || d.penalty <= 0 || p.HalfLife <= 0 {
		return time.Time{}
	}
	halvings := math.Log2(d.penalty / p.Reuse)
	if halvings <= 0 {
		return d.at
	}
	// A nanosecond later, the penalty is strictly below Reuse.
	return d.at.Add(time.Duration(halvings*float64(p.HalfLife)) + time.Nanosecond)
}

// Reset forgets the penalty (an operator re-enabled the server).
func (d *Damper) Reset() { *d = Damper{} }
