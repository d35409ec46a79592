package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/metrics"
)

// Admin state: operator overrides (override.go, maintenance.go,
// statefile.go), flap damping (damping.go), the panic guard (panic.go) and
// quorum (quorum.go). It sits in one field of Engine, guarded by
// Engine.mu, so that these features stay out of engine.go.
type adminState struct {
	metrics *metrics.Admin
	// requests carries operator requests (API) through the Run loop.
	requests chan adminRequest

	api      map[serverID]Override // set through the API; persisted
	maint    map[serverID]Override // from maintenance_dir files
	maintErr string                // the last maintenance_dir read error, logged once
	warned   map[string]bool       // maintenance file names already warned about
	dirty    bool                  // api changed without being saved (a reload pruned it)

	dampers map[serverID]*health.Damper
	panics  map[string]*panicState // by virtual server name; nil entry: not in panic
	downs   map[string][]downEvent // recent up -> down transitions, by virtual server
	quorum  map[string]bool        // by virtual server name: quorum lost, as last evaluated
}

func newAdminState(opts Options) adminState {
	return adminState{
		metrics:  metrics.NewAdmin(opts.Metrics),
		requests: make(chan adminRequest),
		api:      map[serverID]Override{},
		maint:    map[serverID]Override{},
		warned:   map[string]bool{},
		dampers:  map[serverID]*health.Damper{},
		panics:   map[string]*panicState{},
		downs:    map[string][]downEvent{},
		quorum:   map[string]bool{},
	}
}

// Errors of operator requests. The API maps them to status codes.
var (
	// ErrNotFound: no such virtual server or real server in the running config.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is malformed (reason missing, expiry in the past).
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the request cannot apply in the current state.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the engine is not running, or saving the state failed.
	ErrUnavailable = errors.New("unavailable")
)

type adminRequest struct {
	do    func(now time.Time) (any, bool, error) // runs on the Run goroutine; bool: the table may change
	reply chan adminReply
}

type adminReply struct {
	v   any
	err error
}

// submit runs do on the Run loop, then reconciles if it asks to, and
// returns its result. It fails with ErrUnavailable when ctx ends first.
func (e *Engine) submit(ctx context.Context, do func(now time.Time) (any, bool, error)) (any, error) {
	req := adminRequest{do: do, reply: make(chan adminReply, 1)}
	select {
	case e.adm.requests <- req:
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

// adminTick runs every Options.AdminPoll on the Run goroutine: it reads
// the maintenance directory, ends expired overrides, releases servers
// whose flap penalty has decayed, ends panics whose servers recovered and
// saves the state file if a reload pruned it. It reports whether the
// desired table may have changed.
func (e *Engine) adminTick(now time.Time) bool {
	e.mu.Lock()
	dir := e.cfg.Director.MaintenanceDir
	e.mu.Unlock()
	files, readErr := readMaintenance(dir) // file I/O outside the lock

	e.mu.Lock()
	changed := e.applyMaintenanceLocked(dir, files, readErr, now)
	changed = e.expireOverridesLocked(now) || changed
	changed = e.releaseDampedLocked(now) || changed
	changed = e.evaluatePanicsLocked(now) || changed
	dirty := e.adm.dirty
	e.mu.Unlock()
	if dirty {
		if err := e.saveState(); err != nil {
			e.log.Error("saving the override state file failed; overrides are kept in memory and saving is retried", "path", e.opts.StateFile, "err", err)
		}
	}
	return changed
}

// afterResults runs after a batch of check results on the Run goroutine;
// it reports whether the panic guard changed the desired table.
func (e *Engine) afterResults(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evaluatePanicsLocked(now)
}

// noteAdminTransition feeds a state change to flap damping and the panic
// guard. Callers hold mu.
func (e *Engine) noteAdminTransition(id serverID, t health.Transition, now time.Time) {
	if t.From != health.Up || t.To != health.Down {
		return
	}
	e.dampFlapLocked(id, now)
	if vs := findVS(e.cfg, id.vs); vs != nil && vs.PanicThreshold > 0 {
		e.adm.downs[id.vs] = append(e.adm.downs[id.vs], downEvent{id: id, at: now})
	}
	if p := e.adm.panics[id.vs]; p != nil && !p.held[id] {
		p.held[id] = true
		e.log.Warn("panic guard: keeping a failed real server in while the virtual server is in panic", "virtual_server", id.vs,
			"real_server", id.rs.String(), "reason", t.Reason)
	}
}

// viewLocked is how the desired table sees a server now. Callers hold mu.
func (e *Engine) viewLocked(id serverID, state health.State) serverView {
	v := serverView{state: state}
	if o, ok := e.effectiveOverrideLocked(id); ok {
		v.override = o.kind()
	}
	if d := e.adm.dampers[id]; d != nil {
		v.suppressed = d.Suppressed()
	}
	if p := e.adm.panics[id.vs]; p != nil {
		v.held = p.held[id]
	}
	// With the panic guard on, a server that just failed waits out one
	// check round before it is taken out, so the guard can see whether
	// others fail with it (panic.go).
	if !v.held && state == health.Down {
		for _, d := range e.adm.downs[id.vs] {
			if d.id == id {
				v.held = true
				break
			}
		}
	}
	return v
}

// adoptAdminLocked follows a new config: state of servers and virtual
// servers that left it is dropped (overrides too, with a log line).
// Callers hold mu.
func (e *Engine) adoptAdminLocked(cfg *config.Config) {
	known := map[serverID]bool{}
	names := map[string]bool{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		names[vs.Name] = true
		for _, rs := range vs.RealServers {
			known[serverID{vs.Name, rs.Address}] = true
		}
	}
	for id, o := range e.adm.api {
		if !known[id] {
			delete(e.adm.api, id)
			e.adm.dirty = true
			e.log.Info("override dropped: the real server left the config", "virtual_server", id.vs,
				"real_server", id.rs.String(), "kind", o.Kind, "reason", o.Reason)
		}
	}
	for id := range e.adm.maint {
		if !known[id] {
			delete(e.adm.maint, id) // the next scan finds what still applies
		}
	}
	for id := range e.adm.dampers {
		if !known[id] || !cfg.Director.Damping.Enabled {
			delete(e.adm.dampers, id)
			if known[id] {
				e.adm.metrics.Damping(id.vs, id.rs.String(), 0, false)
			}
		}
	}
	for name := range e.adm.panics {
		vs := findVS(cfg, name)
		if vs == nil || vs.PanicThreshold == 0 {
			if e.adm.panics[name] != nil && vs != nil {
				e.log.Warn("panic guard turned off by a reload; the virtual server's failed real servers are taken out", "virtual_server", name)
			}
			delete(e.adm.panics, name)
			delete(e.adm.downs, name)
			e.adm.metrics.Panic(name, false)
		}
	}
	for name := range e.adm.quorum {
		if !names[name] {
			delete(e.adm.quorum, name)
			e.adm.metrics.ForgetVirtualServer(name)
		}
	}
	for id := range known {
		e.adm.metrics.Override(id.vs, id.rs.String(), e.overrideKindLocked(id))
	}
}

func (e *Engine) overrideKindLocked(id serverID) string {
	if o, ok := e.effectiveOverrideLocked(id); ok {
		return o.Kind
	}
	return ""
}

func findVS(cfg *config.Config, name string) *config.VirtualServer {
	for i := range cfg.VirtualServers {
		if cfg.VirtualServers[i].Name == name {
			return &cfg.VirtualServers[i]
		}
	}
	return nil
}

// findServer finds a real server of the running config by virtual server
// name and address. Callers hold mu.
func (e *Engine) findServerLocked(vsName string, rs netip.AddrPort) (*config.VirtualServer, error) {
	vs := findVS(e.cfg, vsName)
	if vs == nil {
		return nil, fmt.Errorf("%w: no virtual server %q in the running config", ErrNotFound, vsName)
	}
	for _, r := range vs.RealServers {
		if r.Address == rs {
			return vs, nil
		}
	}
	return nil, fmt.Errorf("%w: virtual server %q has no real server %s in the running config", ErrNotFound, vsName, rs)
}
