// Package quorum is keepalived's quorum and hysteresis: a virtual server
// has quorum while the healthy weight (the configured weights of its
// serving real servers, summed) is at least quorum. It loses quorum when
// the healthy weight drops below quorum - hysteresis and regains it at
// quorum + hysteresis; in between it stays as it was. Without quorum, a
// virtual server with a fallback sends new connections to the fallback
// only (desired.Build). quorum = 1, the default, is the plain rule: the
// fallback serves while no real server with a weight does. It is pure.
package quorum

// Lost is the quorum state after prev (known: there was one) with this
// healthy weight.
func Lost(prev, known bool, healthy, quorum, hysteresis uint64) bool {
	switch {
	case !known:
		return healthy < quorum
	case prev:
		return healthy < quorum+hysteresis
	}
	return healthy+hysteresis < quorum
}

// State is the quorum of each virtual server as last evaluated, by name:
// true when lost.
type State map[string]bool

// Change is a virtual server losing or regaining quorum.
type Change struct {
	VirtualServer string
	Lost          bool
	Healthy       uint64
}

// Peek evaluates without keeping the result.
func (s State) Peek(name string, healthy, quorum, hysteresis uint64) bool {
	prev, known := s[name]
	return Lost(prev, known, healthy, quorum, hysteresis)
}

// Evaluate evaluates and keeps the result; changed is set when the state
// flipped. While some of its servers have no verdict yet (unknown, at
// start), nothing is kept: there is no state to keep hysteresis from.
func (s State) Evaluate(name string, healthy, quorum, hysteresis uint64, unknown bool) (lost bool, changed *Change) {
	prev, known := s[name]
	lost = Lost(prev, known, healthy, quorum, hysteresis)
	if unknown {
		delete(s, name)
		return lost, nil
	}
	s[name] = lost
	if known && lost != prev {
		return lost, &Change{VirtualServer: name, Lost: lost, Healthy: healthy}
	}
	return lost, nil
}

// Keep forgets the virtual servers that keep does not name and returns
// their names.
func (s State) Keep(keep func(name string) bool) []string {
	var gone []string
	for name := range s {
		if !keep(name) {
			delete(s, name)
			gone = append(gone, name)
		}
	}
	return gone
}
