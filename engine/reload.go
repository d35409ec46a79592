package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/drain"
)

// A reload is a transaction. Before anything changes, the new config's
// checks are built and the kernel table is read; the new desired table is
// computed from the new config and the health the director already knows
// and applied as one diff. If any operation fails, the previous desired
// table is applied again (services the reload created are deleted) and
// the engine keeps the previous config, checks and state: a reload either
// happens completely or not at all. Only then does the engine switch.

// applyReload runs one reload. A nil error means the new config runs and
// the kernel matches it.
func (e *Engine) applyReload(ctx context.Context, cfg *config.Config, probeCtx context.Context) error {
	fresh, err := e.buildProbers(cfg)
	if err != nil {
		e.log.Error("config reload refused; the running config stays", "path", cfg.Path, "err", err)
		return err
	}
	actual, err := e.readTable(ctx)
	if err != nil {
		e.logIPVSError("reload", err)
		err = fmt.Errorf("%s: reload refused: reading the IPVS table: %w; the running config stays, reload again once the kernel answers", cfg.Path, err)
		e.log.Error("config reload refused; the running config stays", "path", cfg.Path, "err", err)
		return err
	}

	now := time.Now()
	kernel := desired.Index(actual)
	old := e.cfg
	oldDesired, oldRetired := e.desired()
	drains, restored := drain.Next(old, cfg, e.drains, e.healthOf, kernel, now)
	known := map[config.ServerID]health.State{}
	for id, s := range e.servers.all() {
		known[id] = s.health.State()
	}
	for _, d := range restored {
		if d.Health != nil {
			if _, ok := known[d.ID]; !ok {
				known[d.ID] = d.Health.State()
			}
		}
	}
	states := desired.PlannedStates(cfg, known, kernel)
	// Slow start as it will be under cfg: servers it adds to a pool that
	// serves, and draining ones it restores, ramp from this table on.
	ramps := e.ramps.Clone()
	ramps.Keep(func(id config.ServerID) bool { _, ok := states[id]; return ok })
	seedRamps(ramps, cfg, kernel, func(id config.ServerID) bool { return e.servers.get(id) == nil }, now)
	rampsStarted := e.observeRamps(ramps, cfg, func(id config.ServerID) health.State { return states[id] }, now)
	table := drain.With(desired.Build(cfg, desired.Input{
		View: func(id config.ServerID) desired.View { return e.viewAt(id, states[id], ramps, now) }, // overrides survive reloads
		QuorumLost: func(vs *config.VirtualServer, healthy uint64) bool {
			return e.quorum.Peek(vs.Name, healthy, desired.QuorumOf(vs), vs.Hysteresis)
		},
	}), drains)
	retired := maps.Clone(e.retired)
	for k := range e.managed {
		retired[k] = true
	}
	adding := make([]ipvs.ServiceKey, 0, len(cfg.VirtualServers))
	for i := range cfg.VirtualServers {
		delete(retired, desired.ServiceKey(&cfg.VirtualServers[i]))
		adding = append(adding, desired.ServiceKey(&cfg.VirtualServers[i]))
	}
	// The new services are recorded before they are created, so that a
	// director killed during the reload still answers for them.
	e.recordOwned(ctx, adding...)

	ops := ipvs.Plan(table, actual, drain.RetiredExcept(retired, table))
	actx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	errs := ipvs.Apply(actx, e.opts.Table, ops)
	cancel()
	e.recordOps("reload", ops, errs, e.logIPVSError)
	if len(errs) > 0 {
		return e.rollback(ctx, cfg, ops, errs, oldDesired, oldRetired)
	}

	before := e.servers.len()
	e.actual = actual
	e.planned = nil
	e.adoptConfig(cfg, fresh, probeCtx)
	e.switchDrains(drains, restored, kernel)
	e.ramps = ramps
	e.rampsStarted(rampsStarted)
	if err := e.syncDataPath(ctx, cfg); err != nil {
		e.log.Error("data-path checks: their probe namespaces could not be set up; those checks are inconclusive until a reload succeeds",
			"path", cfg.Path, "err", err)
	}

	ch := config.Diff(old, cfg)
	e.log.Info("config reloaded", "path", cfg.Path, "kernel_changes", len(ops),
		"virtual_servers", len(cfg.VirtualServers), "real_servers", cfg.CountRealServers(), "real_servers_before", before,
		"virtual_servers_added", ch.AddedVS, "virtual_servers_removed", ch.RemovedVS, "virtual_servers_changed", ch.ChangedVS,
		"real_servers_added", ch.AddedRS, "real_servers_removed", ch.RemovedRS, "real_servers_reweighted", ch.ReweightedRS,
		"real_servers_rechecked", ch.RecheckedRS,
		"checks_started", len(fresh))
	if cfg.Director.Listen != old.Director.Listen {
		e.log.Warn("director.listen changed; it takes effect on restart", "listen", cfg.Director.Listen)
	}
	return nil
}

// healthOf is a server's health and checks, for drain.Next.
func (e *Engine) healthOf(id config.ServerID) (*health.Group, string) {
	if s := e.servers.get(id); s != nil {
		return s.health, s.checksKey()
	}
	return nil, ""
}

// rollback puts the previous desired table back after a reload failed
// part-way, deleting the services the reload created.
func (e *Engine) rollback(ctx context.Context, cfg *config.Config, ops []ipvs.Op, errs []error,
	oldDesired []ipvs.DesiredService, oldRetired []ipvs.ServiceKey) error {
	managed := map[ipvs.ServiceKey]bool{}
	for k := range e.managed {
		managed[k.Normalize()] = true
	}
	for _, op := range ops {
		if op.Kind == ipvs.OpCreateService {
			oldRetired = append(oldRetired, op.Service.Key)
			// Retired too, so that later reconciles delete any the
			// rollback could not, and the state file drops them after.
			if k := op.Service.Key.Normalize(); !managed[k] {
				e.retired[k] = true
			}
		}
	}
	applied := ipvs.Report{Ops: ops, Errors: errs}.Applied()
	applyErr := errors.Join(errs...)

	// A fresh deadline: the reload's may be what ran out.
	rctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	report, rerr := ipvs.Reconcile(rctx, e.opts.Table, oldDesired, oldRetired)
	if rerr == nil {
		e.recordOps("rollback", report.Ops, report.Errors, e.logIPVSError)
		rerr = errors.Join(report.Errors...)
	}
	e.tableMetrics.Rollback(rerr)
	if rerr != nil {
		e.ipvsFailed("rollback", rerr)
		e.log.Error("config reload failed part-way and rolling the kernel table back failed too; the previous config stays and the director keeps repairing the table to it",
			"path", cfg.Path, "changes_made", applied, "changes_planned", len(ops), "err", applyErr, "rollback_err", rerr)
		return fmt.Errorf("%s: reload failed after %d of %d kernel changes: %w (rolling back failed too: %v; the director keeps repairing the table to the previous config)",
			cfg.Path, applied, len(ops), applyErr, rerr)
	}
	e.log.Error("config reload failed part-way; the kernel table was rolled back and the previous config stays",
		"path", cfg.Path, "changes_made", applied, "changes_planned", len(ops), "changes_undone", len(report.Ops), "err", applyErr)
	return fmt.Errorf("%s: reload failed after %d of %d kernel changes, which were undone; the previous config stays: %w",
		cfg.Path, applied, len(ops), applyErr)
}

// adoptConfig makes cfg the running config: servers that are new get a
// state machine (adopting the kernel's view), servers that are gone are
// forgotten, probes follow. fresh holds the probers for checks not yet
// running.
func (e *Engine) adoptConfig(cfg *config.Config, fresh map[string]*probeRunner, probeCtx context.Context) {
	kernel := desired.Index(e.actual)
	var next serverSet
	for _, p := range e.probes {
		p.feeds = nil // adoptChecks chains the checks each feeds anew
	}
	runnerOf := func(key string, spec checks.Spec) *probeRunner {
		if p := fresh[key]; p != nil {
			return p
		}
		if p := e.probes[key]; p != nil {
			return p
		}
		// No runner was built for it: tests that drive the loop
		// themselves adopt a config so. It stands in, never started, to
		// hold the spec and the checks its results would feed.
		p := &probeRunner{spec: spec, key: key}
		e.probes[key] = p
		return p
	}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		key := desired.ServiceKey(vs)
		e.managed[key] = true
		delete(e.retired, key)
		list := make([]*server, 0, len(vs.RealServers))
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			s := e.servers.get(id)
			if s == nil {
				// A new server starts from what the kernel shows, so a
				// destination that is serving keeps serving.
				initial := health.Unknown
				programmed := int64(-1)
				if d, ok := kernel[desired.Key(key, rs.Address)]; ok {
					programmed = int64(d.Weight)
					if d.Weight > 0 {
						initial = health.Up
					}
				}
				s = &server{
					id: id, health: health.NewGroup(initial), lastAt: time.Now().UnixNano(),
					programmed: programmed, reported: reported{state: initial, programmed: programmed, configured: rs.Weight},
				}
				s.series = e.opts.Metrics.RealServerSeries(vs.Name, rs.Address.String())
				e.opts.Metrics.SetState(s.series, initial, programmed, rs.Weight)
			}
			list = append(list, s)
			adoptChecks(s, vs, rs, runnerOf)
		}
		next.add(vs.Name, list)
	}
	for id, s := range e.servers.all() {
		if next.get(id) != s {
			e.opts.Metrics.ForgetRealServer(id.VirtualServer, id.RealServer.String())
		}
	}
	e.servers = next
	for key := range e.managed {
		if !slices.ContainsFunc(cfg.VirtualServers, func(vs config.VirtualServer) bool { return desired.ServiceKey(&vs) == key }) {
			delete(e.managed, key)
			e.retired[key] = true
		}
	}
	for key, p := range e.probes {
		if p.feeds == nil {
			p.stop()
			delete(e.probes, key)
		} else {
			p.feeds = inOrder(p.feeds)
		}
	}
	e.sizeLoops(e.checkRates(fresh))
	for key, p := range fresh {
		p.feeds = inOrder(p.feeds)
		e.probes[key] = p
		if len(e.fast) > 0 {
			p.loop = e.fast[e.nextLoop%e.loopsInUse]
			e.nextLoop++
		}
		p.start(probeCtx, e.results)
	}
	e.cfg = cfg
	e.setConfig(cfg)
	e.followConfig(cfg) // overrides, damping, panics of servers that left (admin.go)
	e.changed(true)
}

// adoptChecks gives s the checks the config gives rs, each chained to
// the runner of its key (runnerOf), which feeds it its results: the
// chain is built last first (inOrder puts it in config order). A check
// whose spec is unchanged keeps its health and history; a changed one
// restarts from the verdict it had; an added one starts from the
// server's (health.Group).
//
// A check's spec and key are its runner's: at 20,000 real servers a copy
// of the spec each was 4.6 MB. Equal keys describe equal checks.
func adoptChecks(s *server, vs *config.VirtualServer, rs *config.RealServer,
	runnerOf func(key string, spec checks.Spec) *probeRunner) {
	cs := vs.ChecksOf(rs)
	next := make([]*serverCheck, 0, len(cs))
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		spec := vs.CheckSpec(rs, &c)
		key := spec.Key()
		p := runnerOf(key, spec)
		names = append(names, c.Name)
		sc := s.check(c.Name)
		switch {
		case sc != nil && sc.key() == key:
			s.health.Set(c.Name, c.Rise, c.Fall)
		case sc != nil:
			s.health.Restart(c.Name, c.Rise, c.Fall)
			sc = nil
		default:
			s.health.Set(c.Name, c.Rise, c.Fall)
		}
		if sc == nil {
			sc = &serverCheck{name: c.Name, s: s}
		}
		sc.runner = p
		sc.next, p.feeds = p.feeds, sc
		next = append(next, sc)
	}
	s.health.Keep(names)
	s.checks = next
	s.label = s.typesLabel()
}

// inOrder reverses a chain of checks built last first.
func inOrder(c *serverCheck) *serverCheck {
	var out *serverCheck
	for c != nil {
		c.next, out, c = out, c, c.next
	}
	return out
}

// beginDrains adds drains that start now, logging and showing each.
func (e *Engine) beginDrains(drains drain.Set, kernel map[desired.DestKey]ipvs.DestinationState, reason string) {
	for _, k := range drains.Keys() {
		d := drains[k]
		if _, running := e.drains[k]; running {
			continue
		}
		e.drains[k] = d
		args := []any{"virtual_server", d.ID.VirtualServer}
		if d.Health == nil && d.ID.VirtualServer == d.Service.Key.String() {
			args = []any{"service", d.ID.VirtualServer} // its virtual server is unknown
		}
		e.log.Info("real server draining: weight 0 until its connections end", append(args,
			"real_server", d.ID.RealServer.String(), "connections", drain.Connections(kernel[k]), "drain_timeout", d.Timeout,
			"reason", reason)...)
		e.opts.Metrics.RealServer(d.ID.VirtualServer, d.ID.RealServer.String(), health.Draining.String(), 0, d.Configured)
	}
	e.changed(true)
}

// switchDrains makes drains the running set after a reload: it logs and
// shows the new ones, and gives restored servers their verdict back.
// Called after adoptConfig.
func (e *Engine) switchDrains(drains, restored drain.Set, kernel map[desired.DestKey]ipvs.DestinationState) {
	for _, d := range restored {
		s := e.servers.get(d.ID)
		if s != nil && d.Health != nil && s.checksKey() == d.CheckKey {
			// Same server, same checks: it keeps the verdict it had.
			for _, name := range s.health.Names() {
				rise, fall := s.health.Check(name).Thresholds()
				d.Health.Set(name, rise, fall)
			}
			s.health = d.Health
		}
		if s == nil {
			e.opts.Metrics.ForgetRealServer(d.ID.VirtualServer, d.ID.RealServer.String())
		}
		state := health.Unknown
		if s != nil {
			state = s.health.State()
		}
		e.log.Info("draining real server is back in the config; drain cancelled", "virtual_server", d.ID.VirtualServer,
			"real_server", d.ID.RealServer.String(), "state", state.String())
		e.tableMetrics.DrainEnded("restored")
	}
	running := e.drains
	e.drains = drain.Set{}
	for k, d := range drains {
		if _, ok := running[k]; ok {
			e.drains[k] = d
			delete(drains, k)
		}
	}
	e.beginDrains(drains, kernel, "left the config")
}

// strayDrains, at start: destinations the kernel holds with connections
// in a configured service that the config does not name.
func (e *Engine) strayDrains(now time.Time) {
	e.beginDrains(drain.Strays(e.cfg, e.actual, now), desired.Index(e.actual), "in the kernel table but not in the config")
}

// pollDrains reads the connection counts of draining servers and ends the
// drains that are over. It reports whether any ended, so that a reconcile
// deletes them. The table is read only while something drains.
func (e *Engine) pollDrains(ctx context.Context) bool {
	if len(e.drains) == 0 {
		return false
	}
	actual, err := e.readTable(ctx)
	if err != nil {
		e.logIPVSError("drain", err)
		return false
	}
	now := time.Now()
	e.actual = actual
	e.planned = nil // a transition plans against this read in full
	ends := drain.Ended(e.drains, desired.Index(actual), now)
	for _, end := range ends {
		d := e.drains[end.Key]
		delete(e.drains, end.Key)
		args := []any{"virtual_server", d.ID.VirtualServer, "real_server", d.ID.RealServer.String(), "result", end.Result,
			"drained_for", now.Sub(d.Since).Round(time.Second)}
		switch end.Result {
		case "timeout":
			e.log.Warn("real server drain timed out; deleting it with connections left", append(args,
				"connections", end.Conns, "drain_timeout", d.Timeout)...)
		case "gone":
			e.log.Info("draining real server is no longer in the kernel table", args...)
		default:
			e.log.Info("real server drained; deleting it", args...)
		}
		e.tableMetrics.DrainEnded(end.Result)
		if e.servers.get(d.ID) == nil {
			e.opts.Metrics.ForgetRealServer(d.ID.VirtualServer, d.ID.RealServer.String())
		}
	}
	e.changed(true)
	return len(ends) > 0
}
