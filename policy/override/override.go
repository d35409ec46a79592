// Package override holds operator overrides. An operator can take a real
// server out without editing the config, through the API (persisted in
// the state file) or a file in maintenance_dir:
//
//   - "drain": weight 0, kept in the table (no new connections, the
//     established ones go on) until the override ends;
//   - "disable": removed from the table now (connections are cut, as
//     with on_failure = "remove").
//
// Health checks go on meanwhile; when the override ends the server gets
// what its health says. Where both apply, disable wins over drain. It is
// pure: file contents and times are passed in.
package override

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
)

// Kinds and sources, as the status and the API name them.
const (
	Drain   = "drain"
	Disable = "disable"

	SourceAPI         = "api"
	SourceMaintenance = "maintenance_dir"
)

// MaxReasonLength bounds an override's reason.
const MaxReasonLength = 256

// Override is an operator's hold on one real server.
type Override struct {
	Kind    string    // Drain or Disable
	Reason  string    // why, as the operator said
	Source  string    // SourceAPI or SourceMaintenance
	By      string    // API: the client's address; maintenance: the file
	Since   time.Time // when it was set (maintenance: the file's modification time)
	Expires time.Time // zero: until removed
}

// Hold is what the override does to the table.
func (o Override) Hold() desired.Hold {
	switch o.Kind {
	case Drain:
		return desired.HoldDrain
	case Disable:
		return desired.HoldDisable
	}
	return desired.HoldNone
}

// CheckReason returns why a reason is unacceptable, or "".
func CheckReason(reason string, required bool) string {
	switch {
	case strings.TrimSpace(reason) == "" && required:
		return "a reason is required: say why, for the next operator"
	case len(reason) > MaxReasonLength:
		return fmt.Sprintf("the reason is %d bytes; at most %d", len(reason), MaxReasonLength)
	case strings.IndexFunc(reason, unicode.IsControl) >= 0:
		return "the reason must be one line of text without control characters"
	}
	return ""
}

// Set is the overrides in force, by source.
type Set struct {
	API   map[config.ServerID]Override // set through the API; persisted
	Maint map[config.ServerID]Override // from maintenance_dir files
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{API: map[config.ServerID]Override{}, Maint: map[config.ServerID]Override{}}
}

// Effective is the override in force for id: the stronger of the API's
// and the maintenance directory's (disable over drain; the API's when equal).
func (s *Set) Effective(id config.ServerID) (Override, bool) {
	a, aok := s.API[id]
	m, mok := s.Maint[id]
	switch {
	case aok && mok:
		if m.Hold() > a.Hold() {
			return m, true
		}
		return a, true
	case aok:
		return a, true
	case mok:
		return m, true
	}
	return Override{}, false
}

// KindOf is the kind of id's effective override, "" when none.
func (s *Set) KindOf(id config.ServerID) string {
	if o, ok := s.Effective(id); ok {
		return o.Kind
	}
	return ""
}

// Ended is an override that ended.
type Ended struct {
	ID config.ServerID
	Override
}

// Expire ends the API overrides whose expiry has passed at now.
func (s *Set) Expire(now time.Time) []Ended {
	var out []Ended
	for id, o := range s.API {
		if o.Expires.IsZero() || o.Expires.After(now) {
			continue
		}
		delete(s.API, id)
		out = append(out, Ended{id, o})
	}
	return out
}

// Follow drops the overrides of servers that left the config: the API's
// are returned (they were persisted; the caller logs and saves), the
// maintenance directory's are simply forgotten (the next scan finds what
// still applies).
func (s *Set) Follow(known map[config.ServerID]bool) []Ended {
	var out []Ended
	for id, o := range s.API {
		if !known[id] {
			delete(s.API, id)
			out = append(out, Ended{id, o})
		}
	}
	for id := range s.Maint {
		if !known[id] {
			delete(s.Maint, id)
		}
	}
	return out
}

// MaintChange is a maintenance override that started, changed or ended.
type MaintChange struct {
	ID    config.ServerID
	Set   bool // set or changed; false: ended
	Now   Override
	Ended Override
}

// ApplyMaintenance makes next the maintenance overrides and returns what
// changed; nothing changes when nothing did.
func (s *Set) ApplyMaintenance(next map[config.ServerID]Override) []MaintChange {
	var out []MaintChange
	for id, o := range next {
		prev, had := s.Maint[id]
		if had && prev.Kind == o.Kind && prev.Reason == o.Reason && prev.By == o.By {
			continue
		}
		out = append(out, MaintChange{ID: id, Set: true, Now: o})
	}
	for id, prev := range s.Maint {
		if _, still := next[id]; !still {
			out = append(out, MaintChange{ID: id, Ended: prev})
		}
	}
	if len(out) > 0 {
		if next == nil {
			next = map[config.ServerID]Override{}
		}
		s.Maint = next
	}
	return out
}
