package engine

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
)

// Operator overrides. An operator can take a real server out without
// editing the config, through the API (persisted in the state file) or a
// file in maintenance_dir:
//
//   - "drain": weight 0, kept in the table (no new connections, the
//     established ones go on) until the override ends;
//   - "disable": removed from the table now (connections are cut, as
//     with on_failure = "remove").
//
// Health checks go on meanwhile; when the override ends the server gets
// what its health says. Where both apply, disable wins over drain.

// overrideKind is what an override does to the table.
type overrideKind uint8

const (
	overrideNone overrideKind = iota
	overrideDrain
	overrideDisable
)

// Override kinds and sources, as Status and the API name them.
const (
	OverrideDrain   = "drain"
	OverrideDisable = "disable"

	SourceAPI         = "api"
	SourceMaintenance = "maintenance_dir"
)

// MaxReasonLength bounds an override's reason.
const MaxReasonLength = 256

// Override is an operator's hold on one real server.
type Override struct {
	Kind    string    // OverrideDrain or OverrideDisable
	Reason  string    // why, as the operator said
	Source  string    // SourceAPI or SourceMaintenance
	By      string    // API: the client's address; maintenance: the file
	Since   time.Time // when it was set (maintenance: the file's modification time)
	Expires time.Time // zero: until removed
}

func (o Override) kind() overrideKind {
	switch o.Kind {
	case OverrideDrain:
		return overrideDrain
	case OverrideDisable:
		return overrideDisable
	}
	return overrideNone
}

// effectiveOverrideLocked is the override in force for id: the stronger
// of the API's and the maintenance directory's (disable over drain; the
// API's when equal). Callers hold mu.
func (e *Engine) effectiveOverrideLocked(id serverID) (Override, bool) {
	a, aok := e.adm.api[id]
	m, mok := e.adm.maint[id]
	switch {
	case aok && mok:
		if m.kind() > a.kind() {
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

// OverrideRequest asks for a drain or disable through the API.
type OverrideRequest struct {
	VirtualServer string
	RealServer    netip.AddrPort
	Kind          string // OverrideDrain or OverrideDisable
	Reason        string
	Expires       time.Time // zero: until enabled again
	By            string    // who asked (the client's address), for the log
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

// SetOverride drains or disables a real server until Expires (or until
// EnableServer). It replaces an earlier API override of the server, is
// saved to the state file before it takes effect, and has been applied to
// the kernel table (or a reconcile attempted) when it returns.
func (e *Engine) SetOverride(ctx context.Context, req OverrideRequest) (Override, error) {
	if req.Kind != OverrideDrain && req.Kind != OverrideDisable {
		return Override{}, fmt.Errorf("%w: unknown override %q; use drain or disable", ErrInvalid, req.Kind)
	}
	if msg := CheckReason(req.Reason, true); msg != "" {
		return Override{}, fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	v, err := e.submit(ctx, func(now time.Time) (any, bool, error) {
		if !req.Expires.IsZero() && !req.Expires.After(now) {
			return nil, false, fmt.Errorf("%w: the expiry %s has already passed", ErrInvalid, req.Expires.UTC().Format(time.RFC3339))
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, err := e.findServerLocked(req.VirtualServer, req.RealServer); err != nil {
			return nil, false, err
		}
		id := serverID{req.VirtualServer, req.RealServer}
		o := Override{Kind: req.Kind, Reason: req.Reason, Source: SourceAPI, By: req.By, Since: now, Expires: req.Expires}
		prev, had := e.adm.api[id]
		e.adm.api[id] = o
		if err := e.saveStateLocked(); err != nil {
			if had {
				e.adm.api[id] = prev
			} else {
				delete(e.adm.api, id)
			}
			return nil, false, fmt.Errorf("%w: saving the state file %s failed, so the override was not set: %v", ErrUnavailable, e.opts.StateFile, err)
		}
		args := []any{"virtual_server", id.vs, "real_server", id.rs.String(), "kind", o.Kind, "reason", o.Reason, "source", SourceAPI, "by", o.By}
		if !o.Expires.IsZero() {
			args = append(args, "expires", o.Expires.UTC().Format(time.RFC3339))
		}
		e.log.Warn("real server override set", args...)
		e.adm.metrics.Override(id.vs, id.rs.String(), e.overrideKindLocked(id))
		eff, _ := e.effectiveOverrideLocked(id)
		return eff, true, nil
	})
	if err != nil {
		return Override{}, err
	}
	return v.(Override), nil
}

// EnableServer ends the API override of a real server and forgets its
// flap penalty. It fails with ErrConflict when a maintenance file still
// holds the server out (nothing is changed then), and when there is
// nothing to end.
func (e *Engine) EnableServer(ctx context.Context, vsName string, rs netip.AddrPort, reason, by string) error {
	if msg := CheckReason(reason, false); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	_, err := e.submit(ctx, func(now time.Time) (any, bool, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, err := e.findServerLocked(vsName, rs); err != nil {
			return nil, false, err
		}
		id := serverID{vsName, rs}
		if m, ok := e.adm.maint[id]; ok {
			return nil, false, fmt.Errorf("%w: the maintenance file %s holds %s out (%s); remove the file to enable it", ErrConflict, m.By, rs, m.Kind)
		}
		prev, had := e.adm.api[id]
		d := e.adm.dampers[id]
		suppressed := d != nil && d.Suppressed()
		if !had && !suppressed {
			return nil, false, fmt.Errorf("%w: %s of %q has no override and no flap damping to end", ErrConflict, rs, vsName)
		}
		if had {
			delete(e.adm.api, id)
			if err := e.saveStateLocked(); err != nil {
				e.adm.api[id] = prev
				return nil, false, fmt.Errorf("%w: saving the state file %s failed, so the server was not enabled: %v", ErrUnavailable, e.opts.StateFile, err)
			}
		}
		if d != nil {
			d.Reset()
			e.adm.metrics.Damping(id.vs, id.rs.String(), 0, false)
		}
		args := []any{"virtual_server", id.vs, "real_server", id.rs.String(), "source", SourceAPI, "by", by, "reason", reason}
		if had {
			args = append(args, "ended", prev.Kind, "override_reason", prev.Reason)
		}
		if suppressed {
			args = append(args, "flap_damping", "reset")
		}
		e.log.Warn("real server override ended; its health decides again", args...)
		e.adm.metrics.Override(id.vs, id.rs.String(), e.overrideKindLocked(id))
		return nil, true, nil
	})
	return err
}

// expireOverridesLocked ends API overrides whose expiry has passed.
// Callers hold mu.
func (e *Engine) expireOverridesLocked(now time.Time) bool {
	changed := false
	for id, o := range e.adm.api {
		if o.Expires.IsZero() || o.Expires.After(now) {
			continue
		}
		delete(e.adm.api, id)
		changed = true
		e.adm.dirty = true
		e.log.Warn("real server override expired; its health decides again", "virtual_server", id.vs,
			"real_server", id.rs.String(), "kind", o.Kind, "reason", o.Reason, "set_by", o.By)
		e.adm.metrics.Override(id.vs, id.rs.String(), e.overrideKindLocked(id))
	}
	return changed
}
