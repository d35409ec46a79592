package main

import "testing"

func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		env  string
		fast bool
		pct  int
		set  bool
		note string
	}{
		{"", true, 25, true, "event loops: a quarter of the live heap"},
		{"", false, 50, true, "goroutine path: its collections need more room"},
		{"100", true, 0, false, "GOGC set: the runtime already read it"},
		{"off", false, 0, false, "GOGC=off is the operator's to choose"},
	} {
		pct, set := gcPercent(c.env, c.fast)
		if pct != c.pct || set != c.set {
			t.Errorf("%s: gcPercent(%q, %v) = %d, %v; want %d, %v", c.note, c.env, c.fast, pct, set, c.pct, c.set)
		}
	}
}

// GOMAXPROCS in the environment is the operator's: the engine is given no
// way to change the Ps then.
func TestSetProcsLeavesGOMAXPROCSAlone(t *testing.T) {
	if setProcs("4") != nil {
		t.Error("GOMAXPROCS=4 set, yet the engine may change the Ps")
	}
	if setProcs("") == nil {
		t.Error("no GOMAXPROCS, yet the engine may not size the Ps to its loops")
	}
}
