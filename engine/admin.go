package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/policy/damping"
	"github.com/lvsdirector/director/policy/override"
	"github.com/lvsdirector/director/policy/panicguard"
)

// Operator overrides, flap damping, the panic guard and quorum, as the
// engine applies them: the decisions are the policy packages'; here they
// become log lines, metrics, notifications and state-file writes.

// Override is an operator's hold on one real server (policy/override).
type Override = override.Override

// Override kinds and sources, as Status and the API name them.
const (
	OverrideDrain     = override.Drain
	OverrideDisable   = override.Disable
	SourceAPI         = override.SourceAPI
	SourceMaintenance = override.SourceMaintenance
	MaxReasonLength   = override.MaxReasonLength
)

// CheckReason returns why a reason is unacceptable, or "".
func CheckReason(reason string, required bool) string { return override.CheckReason(reason, required) }

// Errors of operator requests. The API maps them to status codes.
var (
	// ErrNotFound: no such virtual server or real server in the running config.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is malformed (reason missing, expiry in the past).
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the request cannot apply in the current state.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the engine is not running or busy, or saving the state failed.
	ErrUnavailable = errors.New("unavailable")
)

// request is an operator request, run on the loop.
type request struct {
	do    func(ctx context.Context, now time.Time) (any, bool, error) // bool: the table may change
	reply chan reply
}

type reply struct {
	v   any
	err error
}

// submit runs do on the loop, which reconciles if it asks to, and returns
// its result. A loop that does not take the request or answer before ctx
// ends fails it with ErrUnavailable: a busy engine answers 503, it does
// not hold the caller.
func (e *Engine) submit(ctx context.Context, do func(ctx context.Context, now time.Time) (any, bool, error)) (any, error) {
	req := request{do: do, reply: make(chan reply, 1)}
	select {
	case e.requests <- req:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: the director's engine did not take the request in time (%v); retry", ErrUnavailable, ctx.Err())
	}
	select {
	case r := <-req.reply:
		return r.v, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: the director's engine did not answer in time (%v); check the status before retrying", ErrUnavailable, ctx.Err())
	}
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
	v, err := e.submit(ctx, func(ctx context.Context, now time.Time) (any, bool, error) {
		if !req.Expires.IsZero() && !req.Expires.After(now) {
			return nil, false, fmt.Errorf("%w: the expiry %s has already passed", ErrInvalid, req.Expires.UTC().Format(time.RFC3339))
		}
		if err := e.findServer(req.VirtualServer, req.RealServer); err != nil {
			return nil, false, err
		}
		id := config.ServerID{VirtualServer: req.VirtualServer, RealServer: req.RealServer}
		o := Override{Kind: req.Kind, Reason: req.Reason, Source: SourceAPI, By: req.By, Since: now, Expires: req.Expires}
		prev, had := e.overrides.API[id]
		e.overrides.API[id] = o
		if err := e.saveState(ctx); err != nil {
			if had {
				e.overrides.API[id] = prev
			} else {
				delete(e.overrides.API, id)
			}
			return nil, false, fmt.Errorf("%w: saving the state file %s failed, so the override was not set: %v", ErrUnavailable, e.opts.StateFile, err)
		}
		args := []any{"virtual_server", id.VirtualServer, "real_server", id.RealServer.String(), "kind", o.Kind, "reason", o.Reason, "source", SourceAPI, "by", o.By}
		if !o.Expires.IsZero() {
			args = append(args, "expires", o.Expires.UTC().Format(time.RFC3339))
		}
		e.log.Warn("real server override set", args...)
		e.policyMetrics.Override(id.VirtualServer, id.RealServer.String(), e.overrides.KindOf(id))
		eff, _ := e.overrides.Effective(id)
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
	_, err := e.submit(ctx, func(ctx context.Context, now time.Time) (any, bool, error) {
		if err := e.findServer(vsName, rs); err != nil {
			return nil, false, err
		}
		id := config.ServerID{VirtualServer: vsName, RealServer: rs}
		if m, ok := e.overrides.Maint[id]; ok {
			return nil, false, fmt.Errorf("%w: the maintenance file %s holds %s out (%s); remove the file to enable it", ErrConflict, m.By, rs, m.Kind)
		}
		prev, had := e.overrides.API[id]
		suppressed := e.dampers.Suppressed(id)
		if !had && !suppressed {
			return nil, false, fmt.Errorf("%w: %s of %q has no override and no flap damping to end", ErrConflict, rs, vsName)
		}
		if had {
			delete(e.overrides.API, id)
			if err := e.saveState(ctx); err != nil {
				e.overrides.API[id] = prev
				return nil, false, fmt.Errorf("%w: saving the state file %s failed, so the server was not enabled: %v", ErrUnavailable, e.opts.StateFile, err)
			}
		}
		if _, has := e.dampers[id]; has {
			e.dampers.Reset(id)
			e.policyMetrics.Damping(id.VirtualServer, id.RealServer.String(), 0, false)
		}
		args := []any{"virtual_server", id.VirtualServer, "real_server", id.RealServer.String(), "source", SourceAPI, "by", by, "reason", reason}
		if had {
			args = append(args, "ended", prev.Kind, "override_reason", prev.Reason)
		}
		if suppressed {
			args = append(args, "flap_damping", "reset")
		}
		e.log.Warn("real server override ended; its health decides again", args...)
		e.policyMetrics.Override(id.VirtualServer, id.RealServer.String(), e.overrides.KindOf(id))
		return nil, true, nil
	})
	return err
}

// ClearPanic ends a virtual server's panic now, as an operator asks: its
// real servers that are down are taken out. ErrNotFound: no such virtual
// server; ErrConflict: it is not in panic.
func (e *Engine) ClearPanic(ctx context.Context, name, by string) error {
	_, err := e.submit(ctx, func(_ context.Context, now time.Time) (any, bool, error) {
		if e.cfg.Find(name) == nil {
			return nil, false, fmt.Errorf("%w: no virtual server %q in the running config", ErrNotFound, name)
		}
		ev, ok := e.guard.Clear(name, "cleared by an operator ("+by+")", e.stateOf)
		if !ok {
			return nil, false, fmt.Errorf("%w: virtual server %q is not in panic", ErrConflict, name)
		}
		e.guardEvents([]panicguard.Event{ev}, now)
		return nil, true, nil
	})
	return err
}

// findServer checks that the running config has the real server.
func (e *Engine) findServer(vsName string, rs netip.AddrPort) error {
	vs := e.cfg.Find(vsName)
	if vs == nil {
		return fmt.Errorf("%w: no virtual server %q in the running config", ErrNotFound, vsName)
	}
	for _, r := range vs.RealServers {
		if r.Address == rs {
			return nil
		}
	}
	return fmt.Errorf("%w: virtual server %q has no real server %s in the running config", ErrNotFound, vsName, rs)
}

// adminTick runs every Options.AdminPoll: it ends expired overrides,
// releases servers whose flap penalty has decayed, ends panics whose
// servers recovered and saves the state file if something left unsaved.
// It reports whether the desired table may have changed.
func (e *Engine) adminTick(now time.Time) bool {
	changed := false
	for _, x := range e.overrides.Expire(now) {
		changed = true
		e.stateFile.dirty = true
		e.log.Warn("real server override expired; its health decides again", "virtual_server", x.ID.VirtualServer,
			"real_server", x.ID.RealServer.String(), "kind", x.Kind, "reason", x.Reason, "set_by", x.By)
		e.policyMetrics.Override(x.ID.VirtualServer, x.ID.RealServer.String(), e.overrides.KindOf(x.ID))
	}
	if dc := e.cfg.Director.Damping; dc.Enabled {
		for _, p := range e.dampers.Decay(damping.Params(dc), now) {
			if p.Changed {
				changed = true
				e.log.Info("real server released by flap damping: its penalty decayed; its health decides again",
					"virtual_server", p.ID.VirtualServer, "real_server", p.ID.RealServer.String(), "penalty", int(p.Penalty))
			}
			e.policyMetrics.Damping(p.ID.VirtualServer, p.ID.RealServer.String(), p.Penalty, p.Suppressed)
		}
	}
	changed = e.evaluatePanics(now) || changed
	if e.stateFile.dirty {
		if err := e.saveState(context.Background()); err != nil {
			e.log.Error("saving the override state file failed; overrides are kept in memory and saving is retried", "path", e.opts.StateFile, "err", err)
		}
	}
	if changed {
		e.changed(true)
	}
	return changed
}

// flapped adds a flap to id's penalty (an up -> down transition).
func (e *Engine) flapped(id config.ServerID, now time.Time) {
	dc := e.cfg.Director.Damping
	if !dc.Enabled {
		return
	}
	p := e.dampers.Flap(id, damping.Params(dc), now)
	if p.Changed {
		e.log.Warn("real server suppressed by flap damping: held out until its penalty decays, even while its checks pass",
			"virtual_server", id.VirtualServer, "real_server", id.RealServer.String(), "penalty", int(p.Penalty),
			"suppress", dc.Suppress, "reuse", dc.Reuse, "until", p.Until.UTC().Format(time.RFC3339),
			"fix", "fix the server; or enable it through the API to end the suppression now")
	}
	e.policyMetrics.Damping(id.VirtualServer, id.RealServer.String(), p.Penalty, p.Suppressed)
}

// evaluatePanics enters and ends panics; it reports whether the desired
// table may have changed.
func (e *Engine) evaluatePanics(now time.Time) bool {
	changed, events := e.guard.Evaluate(e.cfg, e.stateOf, now)
	e.guardEvents(events, now)
	return changed
}

// guardEvents turns the panic guard's events into log lines, metrics and
// notifications.
func (e *Engine) guardEvents(events []panicguard.Event, now time.Time) {
	for _, ev := range events {
		switch ev.Type {
		case "kept":
			e.log.Warn("panic guard: keeping a failed real server in while the virtual server is in panic", "virtual_server", ev.VirtualServer,
				"real_server", ev.RealServers[0].String(), "reason", ev.Reason)
		case "panic":
			e.log.Error("panic guard tripped: keeping the pool as it is", "virtual_server", ev.VirtualServer, "reason", ev.Reason,
				"real_servers", joinAddrs(ev.RealServers), "fix", "check the director's network; the panic ends when the checks recover, or clear it: POST /api/v1/virtual_servers/"+ev.VirtualServer+"/panic/clear")
			e.policyMetrics.Panic(ev.VirtualServer, true)
			e.policyMetrics.PanicTripped(ev.VirtualServer)
			e.virtualServerEvent(VirtualServerEvent{Time: now, Type: "panic", VirtualServer: ev.VirtualServer, Reason: ev.Reason, RealServers: ev.RealServers})
		case "panic_end":
			e.log.Warn("panic guard ended: normal handling resumes; real servers still down are taken out", "virtual_server", ev.VirtualServer,
				"reason", ev.Reason, "in_panic_for", now.Sub(ev.Since).Round(time.Second), "still_down", joinAddrs(ev.RealServers))
			e.policyMetrics.Panic(ev.VirtualServer, false)
			e.virtualServerEvent(VirtualServerEvent{Time: now, Type: "panic_end", VirtualServer: ev.VirtualServer, Reason: ev.Reason, RealServers: ev.RealServers})
		case "off":
			e.log.Warn("panic guard turned off by a reload; the virtual server's failed real servers are taken out", "virtual_server", ev.VirtualServer)
		}
	}
	if len(events) > 0 {
		e.changed(true)
	}
}

// evaluateQuorum is desired.Input's QuorumLost for the table to apply:
// evaluated against the state kept from the last evaluation, kept, and
// its changes logged and counted.
func (e *Engine) evaluateQuorum(vs *config.VirtualServer, healthy uint64) bool {
	lost, change := e.quorum.Evaluate(vs.Name, healthy, desired.QuorumOf(vs), vs.Hysteresis, e.anyUnknown(vs))
	e.policyMetrics.Quorum(vs.Name, !lost, healthy)
	if change == nil {
		return lost
	}
	args := []any{"virtual_server", vs.Name, "healthy_weight", healthy, "quorum", desired.QuorumOf(vs), "hysteresis", vs.Hysteresis}
	switch {
	case lost && vs.Fallback.IsValid():
		e.log.Warn("quorum lost: the fallback takes new connections; the remaining real servers get weight 0", append(args, "fallback", vs.Fallback.String())...)
	case lost:
		e.log.Warn("quorum lost (no fallback configured: the table is unchanged)", args...)
	default:
		e.log.Info("quorum regained: the real servers take new connections again", args...)
	}
	return lost
}

// anyUnknown reports whether a real server of vs has no verdict yet.
func (e *Engine) anyUnknown(vs *config.VirtualServer) bool {
	for _, rs := range vs.RealServers {
		if e.stateOf(config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}) == health.Unknown {
			return true
		}
	}
	return false
}

// followConfig drops the policies' state of servers and virtual servers
// that left cfg (overrides too, with a log line).
func (e *Engine) followConfig(cfg *config.Config) {
	known := map[config.ServerID]bool{}
	for _, id := range cfg.ServerIDs() {
		known[id] = true
	}
	for _, x := range e.overrides.Follow(known) {
		e.stateFile.dirty = true
		e.log.Info("override dropped: the real server left the config", "virtual_server", x.ID.VirtualServer,
			"real_server", x.ID.RealServer.String(), "kind", x.Kind, "reason", x.Reason)
	}
	for id := range e.dampers {
		if !known[id] || !cfg.Director.Damping.Enabled {
			delete(e.dampers, id)
			if known[id] {
				e.policyMetrics.Damping(id.VirtualServer, id.RealServer.String(), 0, false)
			}
		}
	}
	off, forgotten := e.guard.Follow(cfg)
	e.guardEvents(off, time.Now())
	for _, name := range forgotten {
		e.policyMetrics.Panic(name, false)
	}
	for _, name := range e.quorum.Keep(func(name string) bool { return cfg.Find(name) != nil }) {
		e.policyMetrics.ForgetVirtualServer(name)
	}
	for id := range known {
		e.policyMetrics.Override(id.VirtualServer, id.RealServer.String(), e.overrides.KindOf(id))
	}
}

// applyMaintenance makes the files read from the maintenance directory
// the maintenance overrides, logging each change, and reports whether
// any changed.
func (e *Engine) applyMaintenance(read maintRead, now time.Time) bool {
	if read.err != nil {
		if msg := read.err.Error(); msg != e.maint.lastErr {
			e.maint.lastErr = msg
			e.log.Error("maintenance_dir: reading it failed; the servers in maintenance stay as they were until it can be read",
				"dir", read.dir, "err", read.err, "fix", "make the directory readable by the director's user")
		}
		return false
	}
	if read.dir != e.cfg.Director.MaintenanceDir {
		return false // read before a reload moved the directory; the next read counts
	}
	if e.maint.lastErr != "" {
		e.maint.lastErr = ""
		e.log.Info("maintenance_dir: readable again", "dir", read.dir)
	}
	e.maint.warnSkipped(e.log, read.skipped)
	servers := e.cfg.ServerIDs()
	next, unmatched := override.MatchMaintenance(read.files, servers)
	e.maint.warnUnmatched(e.log, unmatched)
	changes := e.overrides.ApplyMaintenance(next)
	for _, c := range changes {
		if c.Set {
			e.log.Warn("real server override set", "virtual_server", c.ID.VirtualServer, "real_server", c.ID.RealServer.String(),
				"kind", c.Now.Kind, "reason", c.Now.Reason, "source", SourceMaintenance, "file", c.Now.By)
		} else {
			e.log.Warn("real server override ended; its health decides again", "virtual_server", c.ID.VirtualServer,
				"real_server", c.ID.RealServer.String(), "source", SourceMaintenance, "file", c.Ended.By, "ended", c.Ended.Kind)
		}
	}
	if len(changes) == 0 {
		return false
	}
	for _, id := range servers {
		e.policyMetrics.Override(id.VirtualServer, id.RealServer.String(), e.overrides.KindOf(id))
	}
	e.changed(true)
	return true
}

// VirtualServerEvent is a change of a whole virtual server: the panic
// guard tripping ("panic") or ending ("panic_end").
type VirtualServerEvent struct {
	Time          time.Time
	Type          string // "panic" | "panic_end"
	VirtualServer string
	Reason        string
	RealServers   []netip.AddrPort // the servers concerned
}

func (e *Engine) virtualServerEvent(ev VirtualServerEvent) {
	if e.opts.OnVirtualServerEvent != nil {
		e.opts.OnVirtualServerEvent(ev)
	}
}

func joinAddrs(a []netip.AddrPort) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}
