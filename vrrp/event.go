// Package vrrp joins the director to keepalived running VRRP only: it
// reads keepalived's notify_fifo to learn each VRRP instance's role,
// writes the track file that tells keepalived the director's health, and
// runs the kernel's connection sync daemon to match the role. It is the
// I/O edge; what to do is decided by policy/selfhealth and
// policy/syncdaemon.
package vrrp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// State is a VRRP instance's (or sync group's) state as keepalived names it.
type State string

const (
	Unknown State = ""       // nothing heard yet
	Master  State = "MASTER" // holds the VIPs
	Backup  State = "BACKUP"
	Fault   State = "FAULT" // keepalived put it out of the election (a tracked file or interface)
	Stop    State = "STOP"  // keepalived is stopping
)

func (s State) String() string {
	if s == Unknown {
		return "UNKNOWN"
	}
	return string(s)
}

// Event is one line of keepalived's notify_fifo.
type Event struct {
	// Group is set for a sync group's line (GROUP "name" ...), clear for
	// an instance's (INSTANCE "name" ...).
	Group bool
	Name  string
	// State is the state the line reports: for a priority change and for
	// MASTER_RX_LOWER_PRI, the state the instance is in.
	State    State
	Priority int
	// Kind says what happened: a state change, a priority change, or a
	// master that heard another master with a lower priority (two
	// masters: a split brain, or a peer that just came back).
	Kind Kind
}

// Kind is what an Event reports.
type Kind uint8

const (
	StateChange Kind = iota
	PriorityChange
	LowerPriorityMaster
)

func (e Event) String() string {
	what := "INSTANCE"
	if e.Group {
		what = "GROUP"
	}
	word := string(e.State)
	switch e.Kind {
	case PriorityChange:
		word += "_PRIORITY"
	case LowerPriorityMaster:
		word = "MASTER_RX_LOWER_PRI"
	}
	return fmt.Sprintf("%s %q %s %d", what, e.Name, word, e.Priority)
}

// ErrNotVRRP is a line that is not a VRRP event: the checker's VS/RS
// lines share the FIFO when both write to one, and anything else that
// wrote there.
var ErrNotVRRP = errors.New("not a keepalived VRRP event")

// ParseLine reads one notify_fifo line (without its newline), as
// keepalived writes it: TYPE "NAME" STATE PRIORITY, where TYPE is
// INSTANCE or GROUP and STATE is MASTER, BACKUP, FAULT, STOP,
// MASTER_PRIORITY, BACKUP_PRIORITY or MASTER_RX_LOWER_PRI.
func ParseLine(line string) (Event, error) {
	var ev Event
	kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch kind {
	case "INSTANCE":
	case "GROUP":
		ev.Group = true
	default:
		return ev, fmt.Errorf("%w: %q", ErrNotVRRP, line)
	}
	// The name is quoted and keepalived does not escape it: it ends at
	// the last quote.
	if !strings.HasPrefix(rest, `"`) {
		return ev, fmt.Errorf("%w: %q: the name is not quoted", ErrNotVRRP, line)
	}
	end := strings.LastIndex(rest, `"`)
	if end == 0 {
		return ev, fmt.Errorf("%w: %q: the name has no closing quote", ErrNotVRRP, line)
	}
	ev.Name = rest[1:end]
	fields := strings.Fields(rest[end+1:])
	if ev.Name == "" || len(fields) != 2 {
		return ev, fmt.Errorf("%w: %q: want TYPE \"NAME\" STATE PRIORITY", ErrNotVRRP, line)
	}
	switch fields[0] {
	case "MASTER", "BACKUP", "FAULT", "STOP":
		ev.State = State(fields[0])
	case "MASTER_PRIORITY":
		ev.State, ev.Kind = Master, PriorityChange
	case "BACKUP_PRIORITY":
		ev.State, ev.Kind = Backup, PriorityChange
	case "MASTER_RX_LOWER_PRI":
		ev.State, ev.Kind = Master, LowerPriorityMaster
	default:
		return ev, fmt.Errorf("%w: %q: unknown state %q", ErrNotVRRP, line, fields[0])
	}
	p, err := strconv.Atoi(fields[1])
	if err != nil || p < 0 || p > 255 {
		return ev, fmt.Errorf("%w: %q: priority %q is not 0-255", ErrNotVRRP, line, fields[1])
	}
	ev.Priority = p
	return ev, nil
}
