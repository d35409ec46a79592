package damping

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

func TestParams(t *testing.T) {
	got := Params(config.Damping{Enabled: true, Penalty: 1, Suppress: 2, Reuse: 3, HalfLife: 4 * time.Second, MaxSuppress: 5 * time.Second})
	want := health.DampingParams{Penalty: 1, Suppress: 2, Reuse: 3, HalfLife: 4 * time.Second, MaxSuppress: 5 * time.Second}
	if got != want {
		t.Errorf("Params = %+v, want %+v", got, want)
	}
}

// Servers are named by letter: a is web/10.0.0.1:80, b web/10.0.0.2:80.
func id(letter byte) config.ServerID {
	return config.ServerID{VirtualServer: "web", RealServer: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, letter - 'a' + 1}), 80)}
}

func letterOf(id config.ServerID) string {
	return string(rune('a' + id.RealServer.Addr().As4()[3] - 1))
}

var t0 = time.Unix(1000, 0)

// render is a penalty compactly: rounded penalty, then "suppressed",
// "changed" and "until=" (from t0) when they apply.
func render(p Penalty) string {
	s := fmt.Sprintf("%.0f", p.Penalty)
	if p.Suppressed {
		s += " suppressed"
	}
	if p.Changed {
		s += " changed"
	}
	if !p.Until.IsZero() {
		s += " until=" + p.Until.Sub(t0).Round(time.Millisecond).String()
	}
	return s
}

func TestSet(t *testing.T) {
	// Penalty 1000 a flap, suppressed above 2000, reused below 750,
	// halved every minute.
	p := health.DampingParams{Penalty: 1000, Suppress: 2000, Reuse: 750, HalfLife: time.Minute, MaxSuppress: time.Hour}
	// A step at time at: "flap x" (its penalty), "decay" (each server's
	// penalty, sorted: "x:<penalty> ..."), "reset x" (whether x was
	// suppressed). suppressed and tracked are the servers Suppressed
	// reports and those the set holds, after the step.
	type step struct {
		at         time.Duration
		do         string
		want       string
		suppressed string
		tracked    string
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"three quick flaps suppress; decay releases below reuse, then forgets", []step{
			{0, "flap a", "1000", "", "a"},
			{0, "flap a", "2000", "", "a"}, // not above suppress
			{0, "flap a", "3000 suppressed changed until=2m0s", "a", "a"},
			{time.Minute, "decay", "a:1500 suppressed", "a", "a"},
			{2 * time.Minute, "decay", "a:750 suppressed", "a", "a"}, // not below reuse yet
			{2*time.Minute + time.Second, "decay", "a:741 changed", "", "a"},
			{3 * time.Minute, "decay", "a:375", "", "a"},
			{20 * time.Minute, "decay", "a:0", "", ""},
			{21 * time.Minute, "decay", "", "", ""},
		}},
		{"a flap while suppressed changes nothing but the penalty", []step{
			{0, "flap a", "1000", "", "a"},
			{0, "flap a", "2000", "", "a"},
			{0, "flap a", "3000 suppressed changed until=2m0s", "a", "a"},
			{0, "flap a", "4000 suppressed until=2m24.902s", "a", "a"},
		}},
		{"flaps spread out decay in between and never suppress", []step{
			{0, "flap a", "1000", "", "a"},
			{time.Minute, "flap a", "1500", "", "a"},
			{2 * time.Minute, "flap a", "1750", "", "a"},
			{4 * time.Minute, "flap a", "1438", "", "a"},
		}},
		{"servers decay apart and are forgotten one by one", []step{
			{0, "flap a", "1000", "", "a"},
			{0, "flap a", "2000", "", "a"},
			{0, "flap a", "3000 suppressed changed until=2m0s", "a", "a"},
			{0, "flap b", "1000", "a", "ab"},
			{time.Minute, "decay", "a:1500 suppressed b:500", "a", "ab"},
			{2*time.Minute + time.Second, "decay", "a:741 changed b:247", "", "ab"},
			{10 * time.Minute, "decay", "a:3 b:1", "", "ab"},
			{11 * time.Minute, "decay", "a:1 b:0", "", "a"},
		}},
		{"reset forgets and says whether the server was suppressed", []step{
			{0, "flap a", "1000", "", "a"},
			{0, "flap a", "2000", "", "a"},
			{0, "flap a", "3000 suppressed changed until=2m0s", "a", "a"},
			{0, "flap b", "1000", "a", "ab"},
			{time.Second, "reset a", "true", "", "b"},
			{time.Second, "reset a", "false", "", "b"},
			{time.Second, "reset b", "false", "", ""},
			{time.Second, "flap a", "1000", "", "a"}, // starts afresh
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := Set{}
			for i, st := range tt.steps {
				now := t0.Add(st.at)
				verb, arg, _ := strings.Cut(st.do, " ")
				var got string
				switch verb {
				case "flap":
					pen := s.Flap(id(arg[0]), p, now)
					if pen.ID != id(arg[0]) {
						t.Errorf("step %d: penalty of %s, want %s", i, pen.ID, id(arg[0]))
					}
					got = render(pen)
				case "decay":
					pens := s.Decay(p, now)
					slices.SortFunc(pens, func(a, b Penalty) int { return a.ID.RealServer.Compare(b.ID.RealServer) })
					var parts []string
					for _, pen := range pens {
						parts = append(parts, letterOf(pen.ID)+":"+render(pen))
					}
					got = strings.Join(parts, " ")
				case "reset":
					got = fmt.Sprint(s.Reset(id(arg[0])))
				default:
					t.Fatalf("step %d: unknown %q", i, st.do)
				}
				if got != st.want {
					t.Errorf("step %d at +%s %q: got %q, want %q", i, st.at, st.do, got, st.want)
				}
				var suppressed, tracked string
				for _, l := range "ab" {
					if s.Suppressed(id(byte(l))) {
						suppressed += string(l)
					}
					if s[id(byte(l))] != nil {
						tracked += string(l)
					}
				}
				if suppressed != st.suppressed || tracked != st.tracked || len(s) != len(tracked) {
					t.Errorf("step %d at +%s %q: suppressed %q tracked %q (%d), want %q %q", i, st.at, st.do, suppressed, tracked, len(s), st.suppressed, st.tracked)
				}
			}
		})
	}
}
