package lograte

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(time.Minute)
	type step struct {
		cause      string
		at         time.Duration
		log        bool
		suppressed int
	}
	for i, s := range []step{
		{"token", 0, true, 0},
		{"token", time.Second, false, 0},
		{"token", 2 * time.Second, false, 0},
		{"header", 3 * time.Second, true, 0}, // causes are independent
		{"token", 59 * time.Second, false, 0},
		{"token", 60 * time.Second, true, 3}, // one line a minute, with the count held back
		{"token", 61 * time.Second, false, 0},
		{"header", 10 * time.Minute, true, 0},
		{"token", 10 * time.Minute, true, 1},
	} {
		log, n := l.Allow(s.cause, t0.Add(s.at))
		if log != s.log || n != s.suppressed {
			t.Errorf("step %d (%s at %s): Allow = %v, %d; want %v, %d", i, s.cause, s.at, log, n, s.log, s.suppressed)
		}
	}
}
