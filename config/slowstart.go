package config

import (
	"slices"
	"time"
)

// MaxSlowStart is the longest slow_start accepted: a ramp of a day is
// already far past what warming a server up takes.
const MaxSlowStart = 24 * time.Hour

// weightBlindSchedulers ignore weights other than 0, so a slow start
// changes nothing for them.
var weightBlindSchedulers = []string{"rr", "lc", "dh"}

// slowStart reads slow_start: 0 (off) up to MaxSlowStart.
func (l *loader) slowStart(t table) (time.Duration, bool) {
	v, n, ok := t.duration("slow_start")
	switch {
	case !ok:
		return 0, false
	case v < 0:
		l.errorf(n, "must not be negative; \"0s\" turns slow start off")
		return 0, false
	case v > MaxSlowStart:
		l.errorf(n, "%s is longer than the %s a slow start may take", v, MaxSlowStart)
		return 0, false
	}
	return v, true
}

// vsSlowStart sets a virtual server's slow_start, [director]'s unless set
// here, and warns where it can have no effect.
func (l *loader) vsSlowStart(t table, d Director, vs *VirtualServer) {
	vs.SlowStart = d.SlowStart
	if v, ok := l.slowStart(t); ok {
		vs.SlowStart = v
	}
	if vs.SlowStart > 0 && t.has("slow_start") && slices.Contains(weightBlindSchedulers, vs.Scheduler) {
		l.warnf(t.n.child("slow_start"), "has no effect with scheduler %q, which ignores weights (other than 0); use %q for a ramp that matters",
			vs.Scheduler, map[string]string{"rr": "wrr", "lc": "wlc", "dh": "sh"}[vs.Scheduler])
	}
}
