// Package slowstart ramps the weight of a real server that starts serving
// again (what gorb and HAProxy call ramp-up or slowstart): from a small
// weight to its full one in steps over slow_start, so that lc and wlc,
// which send every new connection to the server with the fewest, do not
// flood a cold server the moment it is back. It is pure: times are passed
// in.
//
// Which servers ramp: one that joins a pool already serving. That is a
// server the director saw out (down, or held out by an operator's drain or
// disable or by flap damping) that serves again, and one a reload adds to
// a pool that serves. A pool that starts
// whole does not ramp: at director start, each server's first verdict,
// like a new virtual server's, gives it its weight at once, since every
// server starts from no connections together and shares would only be
// distorted by rounding.
package slowstart

import (
	"time"

	"github.com/lvsdirector/director/config"
)

// MaxSteps bounds the steps of one ramp: each is a kernel write per
// ramping server, and 5% of the weight is as fine as a share of new
// connections can be told apart.
const MaxSteps = 20

// MinStep is the shortest time between two steps: a scheduler needs a
// moment of traffic at a weight before the next one means anything, and
// a busy director should not rewrite the table many times a second.
const MinStep = time.Second

// Steps is how many steps a ramp over d takes: one every MinStep, at most
// MaxSteps, at least one.
func Steps(d time.Duration) int64 {
	return min(max(int64(d/MinStep), 1), MaxSteps)
}

// Weight is the weight of a server whose full weight is target, elapsed
// after it started serving, in a slow start of d. The ramp is linear in
// Steps(d) steps: from step k's start (k·d/n) it is target·k/n, rounded,
// but never below 1, since weight 0 would quiesce the server. From d on,
// and when d is 0 (off), it is target.
func Weight(target uint32, elapsed, d time.Duration) uint32 {
	if d <= 0 || elapsed >= d || target == 0 {
		return target
	}
	n := Steps(d)
	return level(target, stepAt(max(elapsed, 0), d, n), n)
}

// Next is the elapsed time after elapsed at which the ramp next changes
// the weight, or ends (d): the moment to apply the next step. ok is false
// once the ramp is over.
func Next(target uint32, elapsed, d time.Duration) (at time.Duration, ok bool) {
	if d <= 0 || elapsed >= d || target == 0 {
		return 0, false
	}
	n := Steps(d)
	k := stepAt(max(elapsed, 0), d, n)
	cur := level(target, k, n)
	for k++; k < n; k++ {
		if level(target, k, n) != cur {
			return stepStart(k, d, n), true
		}
	}
	return d, true
}

// Resume is the elapsed time at which a ramp to target over d reaches
// current: where a director that finds a server at current in the kernel
// (a previous run stopped mid-ramp) picks the ramp up. At or above target
// the ramp is over (d).
func Resume(current, target uint32, d time.Duration) time.Duration {
	if d <= 0 || current >= target {
		return max(d, 0)
	}
	n := Steps(d)
	for k := int64(0); k < n; k++ {
		if level(target, k, n) >= current {
			return stepStart(k, d, n)
		}
	}
	return d
}

// level is the weight of step k of n.
func level(target uint32, k, n int64) uint32 {
	w := (uint64(target)*uint64(k) + uint64(n)/2) / uint64(n)
	return uint32(max(w, 1))
}

// stepAt is the step elapsed falls in: the largest k with k·d/n <= elapsed.
func stepAt(elapsed, d time.Duration, n int64) int64 {
	return min(int64(elapsed)*n/int64(d), n)
}

// stepStart is when step k begins: the first nanosecond at or after k·d/n.
func stepStart(k int64, d time.Duration, n int64) time.Duration {
	return time.Duration((k*int64(d) + n - 1) / n)
}

// Server is what the director has seen of one real server.
type Server struct {
	// Serving: it is in the pool with its weight (health up, nothing
	// holding it out); false: it was seen out.
	Serving bool
	// Since is when it started serving, as the director saw it; zero when
	// it served before the director knew it (no ramp).
	Since time.Time
}

// Set holds what the director has seen of each real server. A server
// absent from it has had no verdict since the director started: its first
// start of service does not ramp.
type Set map[config.ServerID]Server

// Out records id as out of the pool, so that its next start of service
// ramps: a server a reload adds to a pool that serves. A server already
// known keeps what is known of it.
func (s Set) Out(id config.ServerID) {
	if _, ok := s[id]; !ok {
		s[id] = Server{}
	}
}

// Adopt records id as serving since since (zero: since before the
// director knew it, no ramp), unless it is already known.
func (s Set) Adopt(id config.ServerID, since time.Time) {
	if _, ok := s[id]; !ok {
		s[id] = Server{Serving: true, Since: since}
	}
}

// Observe records whether id serves now; verdict is false while its
// health is unknown, which changes nothing. It reports whether id started
// serving now after being seen out: its ramp begins.
func (s Set) Observe(id config.ServerID, verdict, serving bool, now time.Time) (started bool) {
	if !verdict {
		return false
	}
	cur, known := s[id]
	switch {
	case !serving:
		s[id] = Server{}
	case !known:
		s[id] = Server{Serving: true} // its first verdict: no ramp
	case !cur.Serving:
		s[id] = Server{Serving: true, Since: now}
		return true
	}
	return false
}

// Settle ends id's ramp for good once it is over under a slow start of d
// (at once when d is 0, off): a slow start that a reload lengthens or
// turns on later does not take a server at its full weight back down.
func (s Set) Settle(id config.ServerID, d time.Duration, now time.Time) {
	if cur := s[id]; cur.Serving && !cur.Since.IsZero() && (d <= 0 || now.Sub(cur.Since) >= d) {
		s[id] = Server{Serving: true}
	}
}

// Serving is how long ago id started serving, when the director saw it
// start; ok is false when it is not serving or served before the director
// knew it.
func (s Set) Serving(id config.ServerID, now time.Time) (elapsed time.Duration, ok bool) {
	cur := s[id]
	if !cur.Serving || cur.Since.IsZero() {
		return 0, false
	}
	return max(now.Sub(cur.Since), 0), true
}

// Ramping reports whether id is in a slow start of d at now, and how far.
func (s Set) Ramping(id config.ServerID, d time.Duration, now time.Time) (elapsed time.Duration, ok bool) {
	elapsed, ok = s.Serving(id, now)
	return elapsed, ok && d > 0 && elapsed < d
}

// Keep forgets the servers keep rejects (they left the config).
func (s Set) Keep(keep func(config.ServerID) bool) {
	for id := range s {
		if !keep(id) {
			delete(s, id)
		}
	}
}

// Clone returns a copy that can be changed without changing s.
func (s Set) Clone() Set {
	out := make(Set, len(s))
	for id, v := range s {
		out[id] = v
	}
	return out
}
