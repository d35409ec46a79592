package health

import (
	"math"
	"testing"
	"time"
)

func TestDamper(t *testing.T) {
	p := DampingParams{Penalty: 1000, Suppress: 2000, Reuse: 750, HalfLife: time.Minute, MaxSuppress: 10 * time.Minute}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.01 }

	type step struct {
		at         time.Duration // since t0
		flap       bool          // Flap, else Update
		want       float64       // penalty after the step
		suppressed bool
		changed    bool // Flap: became suppressed; Update: released
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"one flap decays", []step{
			{0, true, 1000, false, false},
			{time.Minute, false, 500, false, false},
			{2 * time.Minute, false, 250, false, false},
		}},
		{"two quick flaps reach the threshold but not above it", []step{
			{0, true, 1000, false, false},
			{0, true, 2000, false, false},
		}},
		{"three quick flaps suppress; released below reuse", []step{
			{0, true, 1000, false, false},
			{0, true, 2000, false, false},
			{0, true, 3000, true, true},
			{time.Minute, false, 1500, true, false},
			{2 * time.Minute, false, 750, true, false}, // not below reuse yet
			{2*time.Minute + time.Second, false, 741.4, false, true},
		}},
		{"flaps spread out never suppress", []step{
			{0, true, 1000, false, false},
			{2 * time.Minute, true, 1250, false, false},
			{4 * time.Minute, true, 1312.5, false, false},
			{6 * time.Minute, true, 1328.1, false, false},
		}},
		{"penalty is capped at the ceiling", []step{
			{0, true, 1000, false, false}, {0, true, 2000, false, false}, {0, true, 3000, true, true},
			{0, true, 4000, true, false}, {0, true, 5000, true, false},
			{0, true, 6000, true, false}, {0, true, 7000, true, false},
			// 750 * 2^10 = 768000: far above; keep flapping 1000 times
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d Damper
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var changed bool
				if s.flap {
					changed = d.Flap(p, now)
				} else {
					changed = d.Update(p, now)
				}
				if got := d.Penalty(p, now); !near(got, s.want) && math.Abs(got-s.want) > 0.1 {
					t.Errorf("step %d: penalty %.2f, want %.2f", i, got, s.want)
				}
				if d.Suppressed() != s.suppressed || changed != s.changed {
					t.Errorf("step %d: suppressed %v changed %v, want %v %v", i, d.Suppressed(), changed, s.suppressed, s.changed)
				}
			}
		})
	}
}

func TestDamperCeilingAndReuseAt(t *testing.T) {
	p := DampingParams{Penalty: 1000, Suppress: 2000, Reuse: 750, HalfLife: time.Minute, MaxSuppress: 3 * time.Minute}
	if got := p.Ceiling(); got != 6000 {
		t.Fatalf("ceiling = %v, want 750*2^3 = 6000", got)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var d Damper
	for range 100 {
		d.Flap(p, t0)
	}
	if got := d.Penalty(p, t0); got != 6000 {
		t.Errorf("penalty after 100 flaps = %v, want the ceiling 6000", got)
	}
	at := d.ReuseAt(p)
	if want := t0.Add(3 * time.Minute); at.Sub(want).Abs() > time.Millisecond {
		t.Errorf("ReuseAt = %v, want %v (max_suppress after the last flap)", at, want)
	}
	if d.Update(p, at.Add(-time.Second)) {
		t.Errorf("released a second before ReuseAt")
	}
	if !d.Update(p, at) {
		t.Errorf("not released at ReuseAt")
	}
	if !d.ReuseAt(p).IsZero() {
		t.Errorf("ReuseAt of a server not suppressed is not zero")
	}
	d.Flap(p, t0)
	d.Reset()
	if d.Penalty(p, t0) != 0 || d.Suppressed() {
		t.Errorf("Reset left a penalty")
	}
}
