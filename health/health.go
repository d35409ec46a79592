// Package health is the rise/fall state machine of one real server. It is
// pure logic: results go in, transitions come out; no clocks, no I/O.
package health

import "fmt"

// State is a real server's health as the director judges it.
type State uint8

const (
	// Unknown: no verdict yet (a server the director has not checked, and
	// did not find serving in the kernel at start). Not given traffic.
	Unknown State = iota
	// Up: serving; gets its configured weight.
	Up
	// Down: failed fall checks in a row; quiesced or removed.
	Down
	// Draining: leaving (gone from the config): weight 0 until its
	// connections end or its drain timeout passes, then deleted. The
	// engine sets it; the machine never enters it.
	Draining
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Up:
		return "up"
	case Down:
		return "down"
	case Draining:
		return "draining"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// States lists every state, for metrics that export a one-hot state.
var States = [...]State{Unknown, Up, Down, Draining}

// Transition is a change of state and the result that caused it.
type Transition struct {
	From, To State
	Reason   string // the failing check's reason, or "check passed"
}

// Machine tracks one server. The zero value is not usable: use New.
type Machine struct {
	rise, fall int
	state      State
	successes  int // consecutive, counted while not Up
	failures   int // consecutive, counted while not Down
	lastReason string
}

// New returns a machine in the initial state. A server adopted from the
// kernel (present with weight > 0) starts Up, so a director restart does
// not disturb servers that are serving.
func New(rise, fall int, initial State) *Machine {
	m := &Machine{state: initial}
	m.SetThresholds(rise, fall)
	return m
}

// SetThresholds changes rise and fall (on reload) and keeps the state and
// the counts so far.
func (m *Machine) SetThresholds(rise, fall int) {
	m.rise, m.fall = max(rise, 1), max(fall, 1)
}

// Thresholds returns rise and fall.
func (m *Machine) Thresholds() (rise, fall int) { return m.rise, m.fall }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Counts returns the current consecutive successes and failures.
func (m *Machine) Counts() (successes, failures int) { return m.successes, m.failures }

// LastReason is the reason of the last failed result ("" after a success).
func (m *Machine) LastReason() string { return m.lastReason }

// Observe feeds one check result. It returns the transition it caused, if any.
//
// From Unknown the first result decides: nothing is being served yet, so
// waiting for rise or fall results would only delay the verdict. From Up it
// takes fall failures in a row to go Down; from Down, rise successes in a
// row to come Up.
func (m *Machine) Observe(ok bool, reason string) (Transition, bool) {
	if ok {
		m.lastReason = ""
		m.failures = 0
		m.successes++
		switch {
		case m.state == Unknown, m.state == Down && m.successes >= m.rise:
			return m.move(Up, "check passed"), true
		}
		return Transition{}, false
	}
	m.lastReason = reason
	m.successes = 0
	m.failures++
	switch {
	case m.state == Unknown, m.state == Up && m.failures >= m.fall:
		return m.move(Down, reason), true
	}
	return Transition{}, false
}

func (m *Machine) move(to State, reason string) Transition {
	t := Transition{From: m.state, To: to, Reason: reason}
	m.state = to
	m.successes, m.failures = 0, 0
	return t
}
