package quorum

import (
	"fmt"
	"slices"
	"testing"
)

func TestQuorumLost(t *testing.T) {
	for _, tt := range []struct {
		prev, known                 bool
		healthy, quorum, hysteresis uint64
		want                        bool
	}{
		{false, false, 0, 1, 0, true},
		{false, false, 1, 1, 0, false},
		{false, false, 150, 200, 50, true}, // first evaluation: no hysteresis
		{false, true, 150, 200, 50, false}, // had quorum: lost only below 150
		{false, true, 149, 200, 50, true},
		{true, true, 249, 200, 50, true}, // lost: regained only at 250
		{true, true, 250, 200, 50, false},
	} {
		if got := Lost(tt.prev, tt.known, tt.healthy, tt.quorum, tt.hysteresis); got != tt.want {
			t.Errorf("Lost(%+v) = %v, want %v", tt, got, tt.want)
		}
	}
}

// step is one evaluation of virtual server "web" (quorum 200, hysteresis
// 50): its healthy weight, whether some server has no verdict yet, and
// what Evaluate should return. change: "" none, else "lost <healthy>" or
// "regained <healthy>".
type step struct {
	healthy uint64
	unknown bool
	lost    bool
	change  string
}

func TestEvaluate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []step
		kept  string // what State holds for web after the last step: "lost", "has" or "none"
	}{
		{"first evaluation is the plain rule and reports no change",
			[]step{{150, false, true, ""}}, "lost"},
		{"lost: regained only at quorum + hysteresis",
			[]step{{150, false, true, ""}, {249, false, true, ""}, {250, false, false, "regained 250"}}, "has"},
		{"has: lost only below quorum - hysteresis",
			[]step{{300, false, false, ""}, {150, false, false, ""}, {199, false, false, ""}, {149, false, true, "lost 149"}}, "lost"},
		{"no change reported while the state stays",
			[]step{{100, false, true, ""}, {0, false, true, ""}, {240, false, true, ""}}, "lost"},
		{"full cycle reports each flip once",
			[]step{{300, false, false, ""}, {100, false, true, "lost 100"}, {100, false, true, ""}, {260, false, false, "regained 260"}, {260, false, false, ""}}, "has"},
		{"unknown servers: result computed, nothing kept",
			[]step{{300, false, false, ""}, {0, true, true, ""}}, "none"},
		{"after unknown the next evaluation is a first one: no change, no hysteresis",
			[]step{{300, false, false, ""}, {0, true, true, ""}, {180, false, true, ""}, {260, false, false, "regained 260"}}, "has"},
		{"unknown at start keeps nothing",
			[]step{{0, true, true, ""}, {0, true, true, ""}}, "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := State{}
			for i, st := range tt.steps {
				lost, ch := s.Evaluate("web", st.healthy, 200, 50, st.unknown)
				got := ""
				if ch != nil {
					if ch.VirtualServer != "web" || ch.Healthy != st.healthy || ch.Lost != lost {
						t.Errorf("step %d: change %+v does not match the evaluation (lost %v, healthy %d)", i, *ch, lost, st.healthy)
					}
					got = fmt.Sprintf("regained %d", ch.Healthy)
					if ch.Lost {
						got = fmt.Sprintf("lost %d", ch.Healthy)
					}
				}
				if lost != st.lost || got != st.change {
					t.Errorf("step %d (healthy %d unknown %v): lost %v change %q, want %v %q", i, st.healthy, st.unknown, lost, got, st.lost, st.change)
				}
			}
			prev, known := s["web"]
			kept := "none"
			if known {
				kept = map[bool]string{true: "lost", false: "has"}[prev]
			}
			if kept != tt.kept {
				t.Errorf("kept %q, want %q", kept, tt.kept)
			}
		})
	}
}

func TestPeekKeepsNothing(t *testing.T) {
	s := State{"web": true}
	if !s.Peek("web", 249, 200, 50) || s.Peek("web", 250, 200, 50) {
		t.Error("Peek does not apply hysteresis from the kept state")
	}
	if !s.Peek("new", 199, 200, 50) || s.Peek("new", 200, 200, 50) {
		t.Error("Peek of an unknown virtual server is not the plain rule")
	}
	if len(s) != 1 || !s["web"] {
		t.Errorf("Peek changed the state: %v", s)
	}
}

func TestKeep(t *testing.T) {
	s := State{"web": true, "mail": false, "dns": true}
	gone := s.Keep(func(name string) bool { return name == "web" })
	slices.Sort(gone)
	if fmt.Sprint(gone) != "[dns mail]" {
		t.Errorf("Keep returned %v, want [dns mail]", gone)
	}
	if len(s) != 1 || !s["web"] {
		t.Errorf("after Keep: %v, want only web (lost)", s)
	}
	if gone := s.Keep(func(string) bool { return true }); gone != nil {
		t.Errorf("Keep of everything returned %v", gone)
	}
}
