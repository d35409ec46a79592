package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// A reload is a transaction. Before anything changes, the new config's
// checks are built and the kernel table is read; the new desired table is
// computed from the new config and the health the director already knows
// and applied as one diff. If any operation fails, the previous desired
// table is applied again (services the reload created are deleted) and
// the engine keeps the previous config, checks and state: a reload either
// happens completely or not at all. Only then does the engine switch.

// applyReload runs one reload on the Run goroutine. A nil error means the
// new config runs and the kernel matches it.
func (e *Engine) applyReload(ctx context.Context, cfg *config.Config, probeCtx context.Context) error {
	e.mu.Lock()
	fresh, err := e.buildProbers(cfg)
	e.mu.Unlock()
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
	kernel := indexStates(actual)
	e.mu.Lock()
	old := e.cfg
	oldDesired, oldRetired := e.desiredLocked()
	drains, restored := nextDrains(old, cfg, e.prod.drains, e.servers, kernel, now)
	known := map[serverID]health.State{}
	for id, s := range e.servers {
		known[id] = s.machine.State()
	}
	for _, d := range restored {
		if d.machine != nil {
			if _, ok := known[d.id]; !ok {
				known[d.id] = d.machine.State()
			}
		}
	}
	states := plannedStates(cfg, known, kernel)
	desired := withDrains(buildTable(cfg, tableInput{
		view:       func(id serverID) serverView { return e.viewLocked(id, states[id]) }, // overrides survive reloads
		quorumLost: e.quorumInputLocked(false),
	}), drains)
	retired := maps.Clone(e.retired)
	for k := range e.managed {
		retired[k] = true
	}
	adding := make([]ipvs.ServiceKey, 0, len(cfg.VirtualServers))
	for i := range cfg.VirtualServers {
		delete(retired, serviceKey(&cfg.VirtualServers[i]))
		adding = append(adding, serviceKey(&cfg.VirtualServers[i]))
	}
	// The new services are recorded before they are created, so that a
	// director killed during the reload still answers for them (ownership.go).
	e.recordOwnedLocked(adding...)
	e.mu.Unlock()

	ops := ipvs.Plan(desired, actual, retiredExcept(retired, desired))
	actx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	errs := ipvs.Apply(actx, e.opts.Table, ops)
	cancel()
	e.logOps("reload", ops, errs)
	if len(errs) > 0 {
		return e.rollback(ctx, cfg, ops, errs, oldDesired, oldRetired)
	}

	e.mu.Lock()
	before := len(e.servers)
	e.actual = actual
	e.adoptConfig(cfg, fresh, probeCtx)
	e.startDrainsLocked(drains, restored, kernel)
	e.mu.Unlock()

	ch := diffConfigs(old, cfg)
	e.log.Info("config reloaded", "path", cfg.Path, "kernel_changes", len(ops),
		"virtual_servers", len(cfg.VirtualServers), "real_servers", countServers(cfg), "real_servers_before", before,
		"virtual_servers_added", ch.addedVS, "virtual_servers_removed", ch.removedVS, "virtual_servers_changed", ch.changedVS,
		"real_servers_added", ch.addedRS, "real_servers_removed", ch.removedRS, "checks_started", len(fresh))
	if cfg.Director.Listen != old.Director.Listen {
		e.log.Warn("director.listen changed; it takes effect on restart", "listen", cfg.Director.Listen)
	}
	return nil
}

// rollback puts the previous desired table back after a reload failed
// part-way, deleting the services the reload created.
func (e *Engine) rollback(ctx context.Context, cfg *config.Config, ops []ipvs.Op, errs []error,
	oldDesired []ipvs.DesiredService, oldRetired []ipvs.ServiceKey) error {
	e.mu.Lock()
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
	e.mu.Unlock()
	applied := ipvs.Report{Ops: ops, Errors: errs}.Applied()
	applyErr := errors.Join(errs...)

	// A fresh deadline: the reload's may be what ran out.
	rctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	report, rerr := ipvs.Reconcile(rctx, e.opts.Table, oldDesired, oldRetired)
	if rerr == nil {
		e.logOps("rollback", report.Ops, report.Errors)
		rerr = errors.Join(report.Errors...)
	}
	e.prod.metrics.Rollback(rerr)
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

// logOps logs and counts the operations of one apply (reload, rollback);
// a failure is logged once per cause.
func (e *Engine) logOps(trigger string, ops []ipvs.Op, errs []error) {
	e.recordOps(trigger, ops, errs, e.logIPVSError)
}

// recordOps logs each applied operation, counts every operation by kind
// and result (and, on a resync, as drift repaired), and hands each error
// to onErr.
func (e *Engine) recordOps(trigger string, ops []ipvs.Op, errs []error, onErr func(trigger string, err error)) {
	failed := map[string]bool{}
	for _, err := range errs {
		var oe *ipvs.OpError
		var stopped *ipvs.StoppedError
		switch {
		case errors.As(err, &oe):
			failed[oe.Op.String()] = true
		case errors.As(err, &stopped):
			for _, op := range ops[max(0, len(ops)-stopped.Remaining):] {
				failed[op.String()] = true
			}
		}
		onErr(trigger, err)
	}
	msg := "ipvs table changed"
	if e.opts.DryRun {
		msg = "dry-run: ipvs table changed (in memory only)"
	}
	for _, op := range ops {
		desc := op.String()
		if failed[desc] {
			e.opts.Metrics.IPVSOp(op.Kind.String(), errors.New("failed"))
			continue
		}
		e.opts.Metrics.IPVSOp(op.Kind.String(), nil)
		if trigger == "resync" {
			e.opts.Metrics.DriftRepaired(op.Kind.String())
		}
		e.log.Info(msg, "op", desc, "trigger", trigger)
	}
}

// plannedStates is the health each real server of cfg starts with: what
// the director knows of it (known), else the adoption rule: a destination
// in the kernel with weight above 0 is up, anything else unknown. It is
// pure, and shared by reloads and `director plan`.
func plannedStates(cfg *config.Config, known map[serverID]health.State, kernel map[destKey]ipvs.DestinationState) map[serverID]health.State {
	out := map[serverID]health.State{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for _, rs := range vs.RealServers {
			id := serverID{vs.Name, rs.Address}
			if st, ok := known[id]; ok {
				out[id] = st
				continue
			}
			out[id] = health.Unknown
			if d, ok := kernel[normKey(serviceKey(vs), rs.Address)]; ok && d.Weight > 0 {
				out[id] = health.Up
			}
		}
	}
	return out
}

// configChange is what a reload changed, for the log.
type configChange struct {
	addedVS, removedVS, changedVS []string
	addedRS, removedRS            []string // "virtual_server/ip:port"
}

// diffConfigs compares two configs by virtual server name and real server
// address. A virtual server is changed when any of its own settings or
// its check differ. It is pure.
func diffConfigs(old, next *config.Config) configChange {
	var c configChange
	prev := map[string]*config.VirtualServer{}
	for i := range old.VirtualServers {
		prev[old.VirtualServers[i].Name] = &old.VirtualServers[i]
	}
	seen := map[string]bool{}
	for i := range next.VirtualServers {
		vs := &next.VirtualServers[i]
		seen[vs.Name] = true
		o := prev[vs.Name]
		if o == nil {
			c.addedVS = append(c.addedVS, vs.Name)
			for _, rs := range vs.RealServers {
				c.addedRS = append(c.addedRS, vs.Name+"/"+rs.Address.String())
			}
			continue
		}
		if !sameSettings(*o, *vs) {
			c.changedVS = append(c.changedVS, vs.Name)
		}
		had := map[netip.AddrPort]bool{}
		for _, rs := range o.RealServers {
			had[rs.Address] = true
		}
		has := map[netip.AddrPort]bool{}
		for _, rs := range vs.RealServers {
			has[rs.Address] = true
			if !had[rs.Address] {
				c.addedRS = append(c.addedRS, vs.Name+"/"+rs.Address.String())
			}
		}
		for _, rs := range o.RealServers {
			if !has[rs.Address] {
				c.removedRS = append(c.removedRS, vs.Name+"/"+rs.Address.String())
			}
		}
	}
	for i := range old.VirtualServers {
		vs := &old.VirtualServers[i]
		if !seen[vs.Name] {
			c.removedVS = append(c.removedVS, vs.Name)
			for _, rs := range vs.RealServers {
				c.removedRS = append(c.removedRS, vs.Name+"/"+rs.Address.String())
			}
		}
	}
	for _, l := range []*[]string{&c.addedVS, &c.removedVS, &c.changedVS, &c.addedRS, &c.removedRS} {
		slices.Sort(*l)
	}
	return c
}

// sameSettings compares two virtual servers without their real servers
// and line numbers (moving a block in the file changes nothing).
func sameSettings(a, b config.VirtualServer) bool {
	a.RealServers, b.RealServers = nil, nil
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}

func countServers(cfg *config.Config) int {
	n := 0
	for _, vs := range cfg.VirtualServers {
		n += len(vs.RealServers)
	}
	return n
}
