package health

import (
	"fmt"
	"strings"
	"testing"
)

// run feeds a result string ("+" success, "-" failure) and returns the
// states entered, one letter per transition: U(p), D(own).
func run(m *Machine, results string) string {
	var got strings.Builder
	for i, r := range results {
		t, moved := m.Observe(r == '+', fmt.Sprintf("fail %d", i))
		if moved {
			got.WriteString(strings.ToUpper(t.To.String()[:1]))
		} else {
			got.WriteByte('.')
		}
	}
	return got.String()
}

func TestObserve(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rise, fall int
		initial    State
		results    string
		want       string // per result: '.' no transition, 'U' to up, 'D' to down
		final      State
	}{
		{"unknown first success goes up", 2, 3, Unknown, "+", "U", Up},
		{"unknown first failure goes down", 2, 3, Unknown, "-", "D", Down},
		{"up survives fall-1 failures", 2, 3, Up, "--", "..", Up},
		{"up goes down at fall", 2, 3, Up, "---", "..D", Down},
		{"success resets failure count", 2, 3, Up, "--+--+--", "........", Up},
		{"down needs rise successes", 2, 3, Down, "+", ".", Down},
		{"down comes up at rise", 2, 3, Down, "++", ".U", Up},
		{"failure resets success count", 3, 1, Down, "++-++-++", "........", Down},
		{"failure resets, then rise", 3, 1, Down, "++-+++", ".....U", Up},
		{"fall 1 rise 1 flips each time", 1, 1, Up, "-+-+", "DUDU", Up},
		{"full cycle", 2, 2, Up, "--++--++", ".D.U.D.U", Up},
		{"extra failures while down are quiet", 2, 3, Up, "------", "..D...", Down},
		{"extra successes while up are quiet", 2, 3, Down, "+++++", ".U...", Up},
		{"thresholds below one act as one", 0, 0, Up, "-+", "DU", Up},
		{"adopted up then checks pass", 2, 3, Up, "+++", "...", Up},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.rise, tc.fall, tc.initial)
			if got := run(m, tc.results); got != tc.want {
				t.Errorf("transitions for %q = %q, want %q", tc.results, got, tc.want)
			}
			if m.State() != tc.final {
				t.Errorf("final state %v, want %v", m.State(), tc.final)
			}
		})
	}
}

func TestTransitionCarriesReason(t *testing.T) {
	m := New(1, 2, Up)
	m.Observe(false, "timeout")
	tr, moved := m.Observe(false, "refused")
	if !moved || tr.From != Up || tr.To != Down || tr.Reason != "refused" {
		t.Fatalf("got %+v moved=%v, want up->down with reason refused", tr, moved)
	}
	if m.LastReason() != "refused" {
		t.Errorf("LastReason = %q", m.LastReason())
	}
	tr, moved = m.Observe(true, "")
	if !moved || tr.To != Up || tr.Reason != "check passed" || m.LastReason() != "" {
		t.Fatalf("got %+v moved=%v last=%q", tr, moved, m.LastReason())
	}
}

func TestSetThresholdsKeepsStateAndCounts(t *testing.T) {
	m := New(2, 5, Up)
	m.Observe(false, "x")
	m.Observe(false, "x")
	m.SetThresholds(2, 3)
	if m.State() != Up {
		t.Fatalf("state changed on SetThresholds")
	}
	if _, f := m.Counts(); f != 2 {
		t.Fatalf("failures = %d, want 2 kept", f)
	}
	if tr, moved := m.Observe(false, "x"); !moved || tr.To != Down {
		t.Fatalf("third failure with new fall=3 should go down, got %+v %v", tr, moved)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := New(2, 3, Up)
	for i := 0; b.Loop(); i++ {
		m.Observe(i%7 != 0, "timeout")
	}
}
