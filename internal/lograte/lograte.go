// Package lograte keeps events that clients can cause at will (refused
// requests, a full listener) from flooding the log: one line per cause per
// interval, with the number of events held back since the last line.
package lograte

import (
	"sync"
	"time"
)

// Limiter decides which events to log. It is safe for concurrent use.
// Causes must come from a fixed set chosen by the code (never from a
// request): the limiter keeps one entry per cause.
type Limiter struct {
	interval time.Duration

	mu     sync.Mutex
	causes map[string]*cause
}

type cause struct {
	next       time.Time // log again from then on
	suppressed int       // events not logged since the last one that was
}

// New returns a limiter that logs each cause at most once per interval.
func New(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, causes: map[string]*cause{}}
}

// Allow records an event of the given cause at now and reports whether to
// log it, with how many events of that cause went unlogged before it.
func (l *Limiter) Allow(key string, now time.Time) (log bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.causes[key]
	if c == nil {
		c = &cause{}
		l.causes[key] = c
	}
	if now.Before(c.next) {
		c.suppressed++
		return false, 0
	}
	suppressed, c.suppressed = c.suppressed, 0
	c.next = now.Add(l.interval)
	return true, suppressed
}
