package health

import "slices"

// Group is the health of one real server under several checks, judged as
// keepalived does: each check has a Machine of its own (its own rise and
// fall), and the server is Up only while every check is Up, Down as soon
// as any check is Down, and Unknown otherwise (a check without a verdict
// yet). With one check it behaves as that check's Machine. The zero value
// is not usable: use NewGroup.
type Group struct {
	names    []string // in the order the checks were added
	machines []*Machine
	state    State
}

// NewGroup returns a group without checks in the initial state (see New).
func NewGroup(initial State) *Group { return &Group{state: initial} }

// State returns the server's state.
func (g *Group) State() State { return g.state }

// Names lists the group's checks in the order they were added.
func (g *Group) Names() []string { return slices.Clone(g.names) }

// Check returns the machine of the check name, or nil.
func (g *Group) Check(name string) *Machine {
	if i := slices.Index(g.names, name); i >= 0 {
		return g.machines[i]
	}
	return nil
}

// Set gives the check name the thresholds rise and fall, adding it if
// the group lacks it. An added check starts from the server's state, so
// that a check added to a serving server takes it out only after failing
// fall times, and one added to a failed server brings it back only after
// rise successes: the verdict stands until the new check overturns it.
func (g *Group) Set(name string, rise, fall int) {
	if m := g.Check(name); m != nil {
		m.SetThresholds(rise, fall)
		return
	}
	g.names = append(g.names, name)
	g.machines = append(g.machines, New(rise, fall, g.state))
}

// Restart replaces the check name (its spec changed) with a fresh machine
// that starts from the state the old one had, or from the server's state
// when there was none.
func (g *Group) Restart(name string, rise, fall int) {
	initial := g.state
	if m := g.Check(name); m != nil {
		initial = m.State()
	}
	g.Keep(slices.DeleteFunc(g.Names(), func(n string) bool { return n == name }))
	g.names = append(g.names, name)
	g.machines = append(g.machines, New(rise, fall, initial))
}

// Keep drops every check not in names. The server's state stays until
// the next result: dropping a failing check brings the server back at
// its other checks' next result, not in the middle of a reload.
func (g *Group) Keep(names []string) {
	for i := len(g.names) - 1; i >= 0; i-- {
		if !slices.Contains(names, g.names[i]) {
			g.names = slices.Delete(g.names, i, i+1)
			g.machines = slices.Delete(g.machines, i, i+1)
		}
	}
}

// Combine is the server's state given its checks' states: Down if any is
// Down, Up if all are Up (and there is at least one), Unknown otherwise.
func Combine(states ...State) State {
	switch {
	case slices.Contains(states, Down):
		return Down
	case len(states) > 0 && !slices.ContainsFunc(states, func(s State) bool { return s != Up }):
		return Up
	}
	return Unknown
}

// combined is Combine over the checks' states, without allocating: it
// runs for every result.
func (g *Group) combined() State {
	all := len(g.machines) > 0
	for _, m := range g.machines {
		switch m.State() {
		case Down:
			return Down
		case Up:
		default:
			all = false
		}
	}
	if all {
		return Up
	}
	return Unknown
}

// Observe feeds one result of the check name (ignored if the group lacks
// it). It returns the server's transition, if the result caused one: its
// reason is the check's, prefixed with the check's name when the server
// has several ("admin: status 503").
func (g *Group) Observe(name string, ok bool, reason string) (Transition, bool) {
	m := g.Check(name)
	if m == nil {
		return Transition{}, false
	}
	m.Observe(ok, reason)
	to := g.combined()
	if to == g.state {
		return Transition{}, false
	}
	t := Transition{From: g.state, To: to, Reason: "check passed"}
	if len(g.names) > 1 {
		t.Reason = "all checks passed"
	}
	if to != Up {
		// The check that keeps the server out: this one when it is down,
		// else the first that is down, else the first without a verdict.
		i := slices.Index(g.names, name)
		if m.State() != Down {
			i = slices.IndexFunc(g.machines, func(m *Machine) bool { return m.State() == Down })
		}
		if i < 0 {
			i = slices.IndexFunc(g.machines, func(m *Machine) bool { return m.State() != Up })
		}
		t.Reason = g.machines[i].LastReason()
		if t.Reason == "" {
			t.Reason = "no verdict yet"
		}
		if len(g.names) > 1 {
			t.Reason = g.names[i] + ": " + t.Reason
		}
	}
	g.state = to
	return t, true
}
