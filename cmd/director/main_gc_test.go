package main

import "testing"

func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		env  string
		pct  int
		set  bool
		note string
	}{
		{"", daemonGCPercent, true, "no GOGC: the daemon's headroom"},
		{"100", 0, false, "GOGC set: the runtime already read it"},
		{"off", 0, false, "GOGC=off is the operator's to choose"},
	} {
		pct, set := gcPercent(c.env)
		if pct != c.pct || set != c.set {
			t.Errorf("%s: gcPercent(%q) = %d, %v; want %d, %v", c.note, c.env, pct, set, c.pct, c.set)
		}
	}
	if daemonGCPercent != 25 {
		t.Errorf("daemonGCPercent = %d; docs/performance.md measured 25", daemonGCPercent)
	}
}
