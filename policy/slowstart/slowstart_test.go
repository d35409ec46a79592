package slowstart

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
)

func TestSteps(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{500 * time.Millisecond, 1}, {time.Second, 1}, {1999 * time.Millisecond, 1}, {2 * time.Second, 2},
		{10 * time.Second, 10}, {20 * time.Second, 20}, {30 * time.Second, 20}, {time.Hour, 20},
	} {
		if got := Steps(c.d); got != c.want {
			t.Errorf("Steps(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestWeight(t *testing.T) {
	for _, c := range []struct {
		target  uint32
		elapsed time.Duration
		d       time.Duration
		want    uint32
	}{
		// Off, over, or nothing to ramp: the full weight.
		{100, 0, 0, 100},
		{100, 30 * time.Second, 30 * time.Second, 100},
		{100, time.Hour, 30 * time.Second, 100},
		{0, time.Second, 30 * time.Second, 0},
		// 10s: ten steps of 1s, 10% each; step 0 is the floor of 1, never 0.
		{100, 0, 10 * time.Second, 1},
		{100, 999 * time.Millisecond, 10 * time.Second, 1},
		{100, time.Second, 10 * time.Second, 10},
		{100, 4 * time.Second, 10 * time.Second, 40},
		{100, 4500 * time.Millisecond, 10 * time.Second, 40},
		{100, 9999 * time.Millisecond, 10 * time.Second, 90},
		// A clock that went back counts as the start.
		{100, -time.Second, 10 * time.Second, 1},
		// 30s: twenty steps of 1.5s, 5% each.
		{100, 1500 * time.Millisecond, 30 * time.Second, 5},
		{100, 1499 * time.Millisecond, 30 * time.Second, 1},
		{100, 15 * time.Second, 30 * time.Second, 50},
		{100, 29 * time.Second, 30 * time.Second, 95},
		// Small weights round to the nearest and stay at least 1.
		{3, 0, 10 * time.Second, 1},
		{3, 2 * time.Second, 10 * time.Second, 1},
		{3, 5 * time.Second, 10 * time.Second, 2},
		{3, 9 * time.Second, 10 * time.Second, 3},
		{1, 0, 10 * time.Second, 1},
		// Shorter than MinStep: one step at weight 1, then the full weight.
		{50, 400 * time.Millisecond, 500 * time.Millisecond, 1},
		{50, 500 * time.Millisecond, 500 * time.Millisecond, 50},
		// The largest weight does not overflow.
		{65535, 12 * time.Hour, config.MaxSlowStart, 32768},
	} {
		if got := Weight(c.target, c.elapsed, c.d); got != c.want {
			t.Errorf("Weight(%d, %v, %v) = %d, want %d", c.target, c.elapsed, c.d, got, c.want)
		}
	}
}

// Next walks a whole ramp: every step it names changes the weight (or
// ends the ramp), and the weight never changes between two of them.
func TestNext(t *testing.T) {
	for _, c := range []struct {
		target uint32
		d      time.Duration
		want   string // the steps: "elapsed=weight ..."
	}{
		{100, 5 * time.Second, "0s=1 1s=20 2s=40 3s=60 4s=80 5s=100"},
		{100, 30 * time.Second, "0s=1 1.5s=5 3s=10 4.5s=15 6s=20 7.5s=25 9s=30 10.5s=35 12s=40 13.5s=45 15s=50 16.5s=55 18s=60 19.5s=65 21s=70 22.5s=75 24s=80 25.5s=85 27s=90 28.5s=95 30s=100"},
		// Steps that would not change the weight are skipped.
		{3, 10 * time.Second, "0s=1 5s=2 9s=3 10s=3"},
		// Weight 1 cannot ramp; the ramp still ends at d.
		{1, 10 * time.Second, "0s=1 10s=1"},
		{2, 3 * time.Second, "0s=1 3s=2"},
		{0, 10 * time.Second, "0s=0"},
		{100, 0, "0s=100"},
	} {
		var steps []string
		at := time.Duration(0)
		for i := 0; ; i++ {
			steps = append(steps, fmt.Sprintf("%v=%d", at, Weight(c.target, at, c.d)))
			next, ok := Next(c.target, at, c.d)
			if !ok {
				break
			}
			if next <= at || i > 100 {
				t.Fatalf("target %d over %v: Next(%v) = %v, not later", c.target, c.d, at, next)
			}
			// Nothing changes before the step it names.
			if w, before := Weight(c.target, at, c.d), Weight(c.target, next-1, c.d); w != before {
				t.Errorf("target %d over %v: weight %d at %v but %d just before the next step %v", c.target, c.d, w, at, before, next)
			}
			at = next
		}
		if got := strings.Join(steps, " "); got != c.want {
			t.Errorf("target %d over %v:\n got %s\nwant %s", c.target, c.d, got, c.want)
		}
	}
}

func TestResume(t *testing.T) {
	for _, c := range []struct {
		current, target uint32
		d               time.Duration
		want            time.Duration
	}{
		{0, 100, 10 * time.Second, 0},
		{1, 100, 10 * time.Second, 0},
		{10, 100, 10 * time.Second, time.Second},
		{40, 100, 10 * time.Second, 4 * time.Second},
		{41, 100, 10 * time.Second, 5 * time.Second}, // the first step at or above it
		{100, 100, 10 * time.Second, 10 * time.Second},
		{150, 100, 10 * time.Second, 10 * time.Second},
		{5, 100, 0, 0},
	} {
		got := Resume(c.current, c.target, c.d)
		if got != c.want {
			t.Errorf("Resume(%d, %d, %v) = %v, want %v", c.current, c.target, c.d, got, c.want)
		}
		// Resuming never lowers the weight below what the kernel holds.
		if c.d > 0 && c.current <= c.target && Weight(c.target, got, c.d) < c.current {
			t.Errorf("Resume(%d, %d, %v) = %v, where the weight is %d", c.current, c.target, c.d, got, Weight(c.target, got, c.d))
		}
	}
}

var t0 = time.Unix(1000, 0)

func id(n byte) config.ServerID {
	return config.ServerID{VirtualServer: "web", RealServer: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, n}), 80)}
}

// TestSet follows one server through a run: what it is seen doing, step
// by step, and whether a ramp starts and how far it is.
func TestSet(t *testing.T) {
	const d = 10 * time.Second
	type step struct {
		at      time.Duration // since t0
		do      string        // "unknown" (no verdict), "up", "out", "add" (Out), "adopt" (Adopt since t0-5s), "adopt-old" (Adopt, zero), "settle" (Settle with d), "settle-off" (Settle with 0)
		started bool
		ramp    string // "" not ramping; else the elapsed time
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"first verdict at start does not ramp", []step{
			{0, "unknown", false, ""}, {time.Second, "up", false, ""}, {5 * time.Second, "up", false, ""},
		}},
		{"down then up ramps, and the ramp ends", []step{
			{0, "up", false, ""}, {time.Second, "out", false, ""}, {3 * time.Second, "up", true, "0s"},
			{7 * time.Second, "up", false, "4s"}, {13 * time.Second, "up", false, ""},
		}},
		{"first verdict down, then up ramps", []step{
			{0, "out", false, ""}, {2 * time.Second, "up", true, "0s"}, {4 * time.Second, "up", false, "2s"},
		}},
		{"fails mid-ramp: the next start ramps from the beginning", []step{
			{0, "out", false, ""}, {time.Second, "up", true, "0s"}, {5 * time.Second, "out", false, ""},
			{6 * time.Second, "up", true, "0s"}, {8 * time.Second, "up", false, "2s"},
		}},
		{"unknown again changes nothing", []step{
			{0, "out", false, ""}, {time.Second, "up", true, "0s"}, {2 * time.Second, "unknown", false, "1s"},
		}},
		{"added to a serving pool ramps at its first verdict", []step{
			{0, "add", false, ""}, {time.Second, "unknown", false, ""}, {2 * time.Second, "up", true, "0s"},
		}},
		{"Out does not touch a known server", []step{
			{0, "up", false, ""}, {time.Second, "add", false, ""}, {2 * time.Second, "up", false, ""},
		}},
		{"adopted mid-ramp goes on", []step{
			{0, "adopt", false, "5s"}, {time.Second, "up", false, "6s"}, {5 * time.Second, "up", false, ""},
		}},
		{"settled after its ramp: a longer slow start does not ramp it again", []step{
			{0, "out", false, ""}, {time.Second, "up", true, "0s"}, {5 * time.Second, "settle", false, "4s"},
			{11 * time.Second, "settle", false, ""}, {12 * time.Second, "up", false, ""},
		}},
		{"slow start off: settled at once, turning it on later does not ramp it", []step{
			{0, "out", false, ""}, {time.Second, "up", true, "0s"}, {time.Second, "settle-off", false, ""},
			{2 * time.Second, "up", false, ""},
		}},
		{"adopted serving does not ramp", []step{
			{0, "adopt-old", false, ""}, {time.Second, "up", false, ""},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Set{}
			x := id(1)
			for _, st := range c.steps {
				now := t0.Add(st.at)
				started := false
				switch st.do {
				case "unknown":
					started = s.Observe(x, false, false, now)
				case "up":
					started = s.Observe(x, true, true, now)
				case "out":
					started = s.Observe(x, true, false, now)
				case "add":
					s.Out(x)
				case "adopt":
					s.Adopt(x, t0.Add(-5*time.Second))
				case "adopt-old":
					s.Adopt(x, time.Time{})
				case "settle":
					s.Settle(x, d, now)
				case "settle-off":
					s.Settle(x, 0, now)
				}
				if started != st.started {
					t.Errorf("at %v %s: started %v, want %v", st.at, st.do, started, st.started)
				}
				ramp := ""
				if e, ok := s.Ramping(x, d, now); ok {
					ramp = e.String()
				}
				if ramp != st.ramp {
					t.Errorf("at %v %s: ramping %q, want %q", st.at, st.do, ramp, st.ramp)
				}
			}
		})
	}
}

func TestSetKeepAndClone(t *testing.T) {
	s := Set{}
	s.Observe(id(1), true, false, t0)
	s.Observe(id(1), true, true, t0.Add(time.Second))
	s.Observe(id(2), true, true, t0)
	c := s.Clone()
	c.Observe(id(1), true, false, t0.Add(2*time.Second))
	if _, ok := s.Ramping(id(1), time.Minute, t0.Add(3*time.Second)); !ok {
		t.Error("changing a clone changed the set")
	}
	s.Keep(func(x config.ServerID) bool { return x == id(2) })
	if _, ok := s[id(1)]; ok || len(s) != 1 {
		t.Errorf("after Keep: %v, want only %v", s, id(2))
	}
	// Off (d = 0) never ramps.
	if _, ok := c.Ramping(id(2), 0, t0); ok {
		t.Error("ramping with slow start off")
	}
}
