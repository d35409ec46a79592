package panicguard

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

func TestPanicTrips(t *testing.T) {
	for _, tt := range []struct {
		down, total int
		threshold   float64
		want        bool
	}{
		{3, 4, 0.5, true}, {2, 4, 0.5, false}, {1, 1, 0.5, false}, {2, 2, 0.5, true},
		{2, 3, 0.5, true}, {10, 10, 0, false}, {5, 10, 0.49, true},
	} {
		if got := Trips(tt.down, tt.total, tt.threshold); got != tt.want {
			t.Errorf("Trips(%d, %d, %v) = %v, want %v", tt.down, tt.total, tt.threshold, got, tt.want)
		}
	}
}

// Real servers are named by letter: a is 10.0.0.1:80, b 10.0.0.2:80 ...
func addr(letter byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, letter - 'a' + 1}), 80)
}

func letters(addrs []netip.AddrPort) string {
	var b strings.Builder
	for _, a := range addrs {
		b.WriteByte('a' + a.Addr().As4()[3] - 1)
	}
	return b.String()
}

var t0 = time.Unix(1000, 0)

// webConfig is virtual server "web" with n real servers and a check round
// (the window) of 12s.
func webConfig(n int, threshold float64) *config.Config {
	vs := config.VirtualServer{Name: "web", PanicThreshold: threshold,
		Checks: []config.Check{{Interval: 10 * time.Second, Timeout: 2 * time.Second}}}
	for i := range n {
		vs.RealServers = append(vs.RealServers, config.RealServer{Address: addr(byte('a' + i)), Weight: 1})
	}
	return &config.Config{VirtualServers: []config.VirtualServer{vs}}
}

// render is events compactly: type, then ":" and the servers, then "@"
// and the second the panic began (panic_end).
func render(evs []Event) []string {
	var out []string
	for _, e := range evs {
		s := e.Type
		if len(e.RealServers) > 0 {
			s += ":" + letters(e.RealServers)
		}
		if !e.Since.IsZero() {
			s += fmt.Sprintf("@%d", e.Since.Sub(t0)/time.Second)
		}
		out = append(out, s)
	}
	return out
}

// A step happens at second at: "down x" (x fails: Down), "up x" (x
// recovers), "eval" (Evaluate: "changed" or "same", then the events),
// "clear" (Clear: the event or "none"), "follow off|gone|same" (Follow
// with the guard turned off, web removed, or the config unchanged: the
// events, then "forgot:" and the names forgotten). want is what the step
// returned; kept the servers Kept reports after it; panic whether web is
// in panic after it.
type step struct {
	at    int
	do    string
	want  string
	kept  string
	panic bool
}

func TestGuard(t *testing.T) {
	for _, tt := range []struct {
		name      string
		n         int
		threshold float64
		steps     []step
	}{
		{"three of four in one round: panic keeps the pool; recovery ends it listing those still down", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{1, "down b", "", "ab", false},
			{2, "down c", "", "abc", false},
			{3, "eval", "changed panic:abc", "abc", true},
			{4, "down d", "kept:d", "abcd", true},
			{5, "eval", "same", "abcd", true},
			{6, "up a", "", "abcd", true},
			{6, "eval", "same", "abcd", true}, // 3 of 4 still down
			{6, "up a", "", "abcd", true},
			{7, "up b", "", "abcd", true},
			{7, "eval", "changed panic_end:cd@3", "", false}, // 2 of 4 is no more than half
			{30, "eval", "same", "", false},
		}},
		{"a server failing again during the panic is reported once", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{0, "down b", "", "ab", false},
			{0, "down c", "", "abc", false},
			{1, "eval", "changed panic:abc", "abc", true},
			{2, "up a", "", "abc", true},
			{3, "down a", "", "abc", true},
			{4, "down d", "kept:d", "abcd", true},
			{5, "up d", "", "abcd", true},
			{6, "down d", "", "abcd", true},
		}},
		{"two of four is no panic; each failure is kept for the round after it", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{1, "down b", "", "ab", false},
			{2, "eval", "same", "ab", false},
			{12, "eval", "same", "ab", false}, // a's round ends at 12
			{13, "eval", "changed", "b", false},
			{14, "eval", "changed", "", false},
			{15, "eval", "same", "", false},
		}},
		{"a failure older than the window does not count", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{5, "down b", "", "ab", false},
			{13, "down c", "", "abc", false},
			{13, "eval", "changed", "bc", false},
		}},
		{"a server back up within the round does not count", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{1, "down b", "", "ab", false},
			{2, "down c", "", "abc", false},
			{3, "up c", "", "ab", false},
			{4, "eval", "same", "ab", false},
		}},
		{"two of three trip", 3, 0.5, []step{
			{0, "down a", "", "a", false},
			{0, "down b", "", "ab", false},
			{1, "eval", "changed panic:ab", "ab", true},
		}},
		{"two of two trip", 2, 0.5, []step{
			{0, "down b", "", "b", false},
			{0, "down a", "", "ab", false},
			{1, "eval", "changed panic:ab", "ab", true},
		}},
		{"one of one never trips: at least two", 1, 0.5, []step{
			{0, "down a", "", "a", false},
			{1, "eval", "same", "a", false},
		}},
		{"guard off: nothing recorded, nothing kept", 4, 0, []step{
			{0, "down a", "", "", false},
			{0, "down b", "", "", false},
			{0, "down c", "", "", false},
			{1, "eval", "same", "", false},
		}},
		{"clear ends the panic now, listing those still down; the failures are settled", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{0, "down b", "", "ab", false},
			{0, "down c", "", "abc", false},
			{1, "eval", "changed panic:abc", "abc", true},
			{2, "up a", "", "abc", true},
			{3, "clear", "panic_end:bc@1", "", false},
			{4, "clear", "none", "", false},
			{5, "eval", "same", "", false},
		}},
		{"follow: the guard turned off mid-panic says off and forgets", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{0, "down b", "", "ab", false},
			{0, "down c", "", "abc", false},
			{1, "eval", "changed panic:abc", "abc", true},
			{2, "follow off", "off forgot:web", "", false},
			{3, "down d", "", "", false},
			{4, "eval", "same", "", false},
		}},
		{"follow: a virtual server that left is forgotten without off", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{0, "down b", "", "ab", false},
			{0, "down c", "", "abc", false},
			{1, "eval", "changed panic:abc", "abc", true},
			{2, "follow gone", "forgot:web", "", false},
		}},
		{"follow: recent failures are forgotten too", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{1, "follow off", "forgot:web", "", false},
		}},
		{"follow: an unchanged config keeps everything", 4, 0.5, []step{
			{0, "down a", "", "a", false},
			{0, "down b", "", "ab", false},
			{0, "down c", "", "abc", false},
			{1, "eval", "changed panic:abc", "abc", true},
			{2, "follow same", "", "abc", true},
			{3, "down d", "kept:d", "abcd", true},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := webConfig(tt.n, tt.threshold)
			states := map[config.ServerID]health.State{}
			id := func(letter byte) config.ServerID {
				return config.ServerID{VirtualServer: "web", RealServer: addr(letter)}
			}
			for i := range tt.n {
				states[id(byte('a'+i))] = health.Up
			}
			state := func(id config.ServerID) health.State { return states[id] }
			g := New()
			for i, st := range tt.steps {
				now := t0.Add(time.Duration(st.at) * time.Second)
				verb, arg, _ := strings.Cut(st.do, " ")
				var got []string
				switch verb {
				case "down":
					states[id(arg[0])] = health.Down
					got = render(g.Down(cfg.Find("web"), id(arg[0]), "timeout", now))
				case "up":
					states[id(arg[0])] = health.Up
				case "eval":
					changed, evs := g.Evaluate(cfg, state, now)
					got = append([]string{map[bool]string{true: "changed", false: "same"}[changed]}, render(evs)...)
				case "clear":
					ev, ok := g.Clear("web", "operator cleared it", state)
					got = []string{"none"}
					if ok {
						got = render([]Event{ev})
						if ev.Reason != "operator cleared it" {
							t.Errorf("step %d: reason %q, want the operator's", i, ev.Reason)
						}
					}
				case "follow":
					next := webConfig(tt.n, tt.threshold)
					switch arg {
					case "off":
						next.VirtualServers[0].PanicThreshold = 0
					case "gone":
						next.VirtualServers[0].Name = "other"
					}
					off, forgotten := g.Follow(next)
					got = render(off)
					if forgotten != nil {
						got = append(got, "forgot:"+strings.Join(forgotten, ","))
					}
					cfg = next
				default:
					t.Fatalf("step %d: unknown %q", i, st.do)
				}
				if s := strings.Join(got, " "); s != st.want {
					t.Errorf("step %d at %ds %q: got %q, want %q", i, st.at, st.do, s, st.want)
				}
				var kept []netip.AddrPort
				for l := range tt.n {
					if g.Kept(id(byte('a'+l)), states[id(byte('a'+l))]) {
						kept = append(kept, addr(byte('a'+l)))
					}
				}
				if letters(kept) != st.kept {
					t.Errorf("step %d at %ds %q: kept %q, want %q", i, st.at, st.do, letters(kept), st.kept)
				}
				if inPanic := g.InPanic("web") != nil; inPanic != st.panic {
					t.Errorf("step %d at %ds %q: in panic %v, want %v", i, st.at, st.do, inPanic, st.panic)
				}
			}
		})
	}
}

// The events say what happened in words an operator can act on.
func TestGuardReasons(t *testing.T) {
	cfg := webConfig(4, 0.5)
	vs := cfg.Find("web")
	states := map[config.ServerID]health.State{}
	state := func(id config.ServerID) health.State { return states[id] }
	g := New()
	for _, l := range "abc" {
		id := config.ServerID{VirtualServer: "web", RealServer: addr(byte(l))}
		states[id] = health.Down
		g.Down(vs, id, "connection refused", t0)
	}
	_, evs := g.Evaluate(cfg, state, t0.Add(time.Second))
	want := "3 of 4 real servers went down within 12s, more than panic_threshold 0.5: assuming the director's own network is at fault"
	if len(evs) != 1 || evs[0].VirtualServer != "web" || evs[0].Reason != want {
		t.Fatalf("panic events %+v, want one for web with reason %q", evs, want)
	}
	if p := g.InPanic("web"); p == nil || !p.Since.Equal(t0.Add(time.Second)) {
		t.Errorf("panic %+v, want since %v", p, t0.Add(time.Second))
	}
	d := config.ServerID{VirtualServer: "web", RealServer: addr('d')}
	states[d] = health.Down
	if evs := g.Down(vs, d, "connection refused", t0.Add(2*time.Second)); len(evs) != 1 || evs[0].Reason != "connection refused" || evs[0].VirtualServer != "web" {
		t.Errorf("kept events %+v, want one for web with the check's reason", evs)
	}
	for _, l := range "abc" {
		states[config.ServerID{VirtualServer: "web", RealServer: addr(byte(l))}] = health.Up
	}
	_, evs = g.Evaluate(cfg, state, t0.Add(3*time.Second))
	want = "checks recovered: 1 of 4 real servers down, no more than panic_threshold 0.5"
	if len(evs) != 1 || evs[0].Type != "panic_end" || evs[0].Reason != want {
		t.Errorf("end events %+v, want panic_end with reason %q", evs, want)
	}
	if evs := g.Down(nil, d, "x", t0); evs != nil {
		t.Errorf("Down without a virtual server = %v", evs)
	}
}
