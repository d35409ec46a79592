package health

import (
	"fmt"
	"strings"
	"testing"
)

func TestCombine(t *testing.T) {
	for _, tt := range []struct {
		in   []State
		want State
	}{
		{nil, Unknown},
		{[]State{Up}, Up},
		{[]State{Down}, Down},
		{[]State{Unknown}, Unknown},
		{[]State{Up, Up, Up}, Up},
		{[]State{Up, Down, Up}, Down},
		{[]State{Up, Unknown}, Unknown},
		{[]State{Unknown, Down}, Down},
	} {
		if got := Combine(tt.in...); got != tt.want {
			t.Errorf("Combine(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// step is one result of one check: "app+" passes, "app-" fails.
type step string

func (s step) parse() (name string, ok bool) {
	return string(s[:len(s)-1]), s[len(s)-1] == '+'
}

func TestGroup(t *testing.T) {
	type check struct {
		name       string
		rise, fall int
	}
	two := []check{{"app", 2, 2}, {"ping", 1, 3}}
	for _, tt := range []struct {
		name    string
		initial State
		checks  []check
		steps   []step
		want    []string // the transitions, "from>to: reason"
		final   State
	}{
		{"one check is its machine", Unknown, []check{{"tcp", 2, 3}},
			[]step{"tcp+", "tcp-", "tcp-", "tcp-"},
			[]string{"unknown>up: check passed", "up>down: timeout"}, Down},
		{"all must pass to come up from unknown", Unknown, two,
			[]step{"app+", "ping+"},
			[]string{"unknown>up: all checks passed"}, Up},
		{"one failing check takes a serving server out after its own fall", Up, two,
			[]step{"ping-", "app+", "ping-", "app+", "ping-"},
			[]string{"up>down: ping: timeout"}, Down},
		{"each check counts its own failures in a row", Up, two,
			[]step{"app-", "ping-", "app+", "ping-", "app-", "ping+", "app-"},
			[]string{"up>down: app: timeout"}, Down},
		{"back up only when the failed check has risen", Up, two,
			[]step{"app-", "app-", "ping+", "ping+", "app+", "app+"},
			[]string{"up>down: app: timeout", "down>up: all checks passed"}, Up},
		{"the first verdict of one failing check decides at once", Unknown, two,
			[]step{"ping-", "app+"},
			[]string{"unknown>down: ping: timeout"}, Down},
		{"a result of a check the group lacks is ignored", Up, two,
			[]step{"gone-", "gone-", "gone-"},
			nil, Up},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGroup(tt.initial)
			for _, c := range tt.checks {
				g.Set(c.name, c.rise, c.fall)
			}
			var got []string
			for _, s := range tt.steps {
				name, ok := s.parse()
				if tr, moved := g.Observe(name, ok, "timeout"); moved {
					got = append(got, fmt.Sprintf("%v>%v: %s", tr.From, tr.To, tr.Reason))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") || g.State() != tt.final {
				t.Errorf("transitions %q, state %v; want %q, %v", got, g.State(), tt.want, tt.final)
			}
		})
	}
}

// Reloads: an added check starts from the server's verdict, a restarted
// one from its own, a dropped failing check lets the server back at the
// next result of the others.
func TestGroupReload(t *testing.T) {
	g := NewGroup(Up)
	g.Set("app", 1, 1)
	g.Set("ping", 1, 1)
	if _, moved := g.Observe("app", false, "status 503"); !moved || g.State() != Down {
		t.Fatalf("app failing did not take the server down: %v", g.State())
	}
	g.Set("extra", 1, 1) // added to a failed server: starts down
	if s := g.Check("extra").State(); s != Down {
		t.Errorf("added check starts %v, want down", s)
	}
	g.Keep([]string{"ping", "extra"})
	if g.State() != Down {
		t.Errorf("dropping a check moved the server to %v before any result", g.State())
	}
	if _, moved := g.Observe("ping", true, ""); moved {
		t.Errorf("came up while the added check is still down")
	}
	if tr, moved := g.Observe("extra", true, ""); !moved || tr.To != Up {
		t.Errorf("the added check's pass did not bring the server up: %+v", tr)
	}
	g.Restart("ping", 2, 2)
	if s := g.Check("ping").State(); s != Up {
		t.Errorf("restarted check starts %v, want its own verdict up", s)
	}
	if r, f := g.Check("ping").Thresholds(); r != 2 || f != 2 {
		t.Errorf("restarted check thresholds %d/%d", r, f)
	}
	if got := g.Names(); strings.Join(got, ",") != "extra,ping" {
		t.Errorf("names %q", got)
	}
}

// combined agrees with Combine.
func TestGroupCombinedIsCombine(t *testing.T) {
	for _, states := range [][]State{nil, {Up}, {Down}, {Unknown}, {Up, Unknown}, {Up, Down}, {Unknown, Down}, {Up, Up}} {
		g := NewGroup(Unknown)
		for i, s := range states {
			g.names = append(g.names, fmt.Sprint(i))
			g.machines = append(g.machines, New(1, 1, s))
		}
		if got, want := g.combined(), Combine(states...); got != want {
			t.Errorf("%v: combined %v, Combine %v", states, got, want)
		}
	}
}
