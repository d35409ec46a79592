package engine

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/drain"
)

// reconcile brings the kernel table to the desired state and reports
// whether every operation succeeded.
func (e *Engine) reconcile(ctx context.Context, trigger string) bool {
	start := time.Now()
	defer e.changed(true)
	// A health transition plans against the table as the director last
	// knew it: reading ten thousand destinations back from the kernel for
	// each server that goes up or down is the cost that grows with scale.
	// Every other trigger (start, resync, retry, reload, drain) reads the
	// kernel, so drift made behind our back is still found and repaired;
	// so does a transition after a failed reconcile, when what the
	// director last knew may be wrong.
	e.rampsStarted(e.observeRamps(e.ramps, e.cfg, e.stateOf, start))
	var reuse *builtTable
	if trigger == "transition" {
		reuse = &e.built
	}
	e.built = e.build(start, reuse)
	table, retired := e.withDrains(e.built.services)
	e.recordOwned(ctx) // retries a failed write before anything is created
	// A slow start's step changes weights the director itself set a
	// moment ago: like a transition, it needs no fresh read.
	known := (trigger == "transition" || trigger == rampTrigger) && e.actual != nil && e.reconciled

	ctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	var report ipvs.Report
	var err error
	if known {
		report.Actual = e.actual
		report.Ops = ipvs.Plan(e.unplanned(table), report.Actual, retired)
		report.Errors = ipvs.Apply(ctx, e.opts.Table, report.Ops)
	} else {
		report, err = ipvs.Reconcile(ctx, e.opts.Table, table, retired)
	}
	if err != nil {
		e.planned = nil
		e.opts.Metrics.Reconcile(trigger, err, time.Since(start))
		e.ipvsFailed(trigger, err)
		return false
	}
	e.recordOps(trigger, report.Ops, report.Errors, e.ipvsFailed)
	ok := len(report.Errors) == 0
	e.planned = nil
	if ok {
		e.planned = byKey(table)
	}
	var runErr error
	if !ok {
		runErr = errors.New("operations failed")
	}
	e.opts.Metrics.Reconcile(trigger, runErr, time.Since(start))

	var after []ipvs.ServiceState
	var readErr error
	// touched: the services whose destinations may have changed, when
	// only the plan's can have (nil: any, after a read of the kernel).
	var touched map[ipvs.ServiceKey]bool
	if known && ok {
		touched = touchedBy(report.Ops)
		after, readErr = applied(ctx, report, touched)
	} else {
		after, readErr = e.readTable(ctx)
	}
	if readErr == nil {
		e.actual = after
	} else if known {
		e.actual = nil // unknown now: the next reconcile reads the kernel
		touched = nil
	}
	if ok {
		for _, k := range retired {
			delete(e.retired, k)
		}
		e.recordOwned(ctx) // the deleted ones leave the state file
	}
	e.ipvsSettled(ok)
	if touched != nil && !changesServices(report.Ops) {
		e.recordApplied(report.Ops)
	} else {
		e.recordProgrammed(touched)
	}
	return ok
}

// changesServices reports whether ops create or delete a service.
func changesServices(ops []ipvs.Op) bool {
	return slices.ContainsFunc(ops, func(op ipvs.Op) bool {
		return op.Kind == ipvs.OpCreateService || op.Kind == ipvs.OpDeleteService
	})
}

// destIndex finds the virtual and real server cfg declares behind a
// normalized destination key: the virtual servers by service key, then
// the real server by binary search in the virtual server's own list of
// its real servers' indexes, sorted by address. Four bytes a real server:
// a map by destination key was about 140 (docs/performance.md, "Memory,
// second pass: records").
type destIndex struct {
	cfg      *config.Config
	services map[ipvs.ServiceKey][]int // the virtual servers of each key, in config order
	byAddr   [][]int32                 // of each virtual server: its real servers' indexes, by address
}

type destOf struct {
	vs *config.VirtualServer
	rs *config.RealServer
}

// destAddr is a real server's address as a DestKey holds it.
func destAddr(rs *config.RealServer) netip.AddrPort {
	return desired.Key(ipvs.ServiceKey{}, rs.Address).Addr
}

// find is the config's real server behind destination k, for cfg. When
// cfg declares one destination twice, the last one is found.
func (x *destIndex) find(cfg *config.Config, k desired.DestKey) (destOf, bool) {
	if x.cfg != cfg {
		x.build(cfg)
	}
	vss := x.services[k.Service]
	for i := len(vss) - 1; i >= 0; i-- {
		vs := &cfg.VirtualServers[vss[i]]
		order := x.byAddr[vss[i]]
		// The last of equal addresses is first in order (build).
		j, found := slices.BinarySearchFunc(order, k.Addr, func(j int32, a netip.AddrPort) int {
			return destAddr(&vs.RealServers[j]).Compare(a)
		})
		if found {
			return destOf{vs, &vs.RealServers[order[j]]}, true
		}
	}
	return destOf{}, false
}

func (x *destIndex) build(cfg *config.Config) {
	x.cfg, x.services = cfg, map[ipvs.ServiceKey][]int{}
	x.byAddr = make([][]int32, len(cfg.VirtualServers))
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		key := desired.ServiceKey(vs).Normalize()
		x.services[key] = append(x.services[key], i)
		order := make([]int32, len(vs.RealServers))
		for j := range order {
			order[j] = int32(j)
		}
		slices.SortFunc(order, func(a, b int32) int {
			if c := destAddr(&vs.RealServers[a]).Compare(destAddr(&vs.RealServers[b])); c != 0 {
				return c
			}
			return int(b - a) // the last declared first
		})
		x.byAddr[i] = order
	}
}

// recordApplied is recordProgrammed after a plan fully applied to the
// table as known, which changed only the destinations it names: each op
// sets its server's programmed weight, in order (the last op on a
// destination is what the kernel holds). ops create and delete no
// service.
func (e *Engine) recordApplied(ops []ipvs.Op) {
	for _, op := range ops {
		programmed := int64(-1)
		switch op.Kind {
		case ipvs.OpCreateDestination, ipvs.OpUpdateDestination:
			programmed = int64(op.Destination.Weight)
		case ipvs.OpDeleteDestination:
		default:
			continue
		}
		d, ok := e.byDest.find(e.cfg, desired.Key(op.Service.Key, op.Destination.Address))
		if !ok {
			continue // a fallback or a draining server: no real server of the config
		}
		if s := e.servers.get(config.ServerID{VirtualServer: d.vs.Name, RealServer: d.rs.Address}); s != nil {
			e.setProgrammed(d.vs, d.rs, s, programmed)
		}
	}
}

// unplanned is the services of table whose desired state differs from
// what the last reconcile brought the kernel to (all of them when that is
// not known). Only they can need a change in a table the director alone
// writes: one transition among 20,000 servers plans one service, not two
// hundred. Drift made behind the director's back is the full reconciles'
// to find (start, resync, retry, reload, drain), which read the kernel.
func (e *Engine) unplanned(table []ipvs.DesiredService) []ipvs.DesiredService {
	if e.planned == nil {
		return table
	}
	var out []ipvs.DesiredService
	for _, ds := range table {
		was, ok := e.planned[ds.Key.Normalize()]
		if !ok || was.Service != ds.Service || !sameDestinations(was.Destinations, ds.Destinations) {
			out = append(out, ds)
		}
	}
	return out
}

// sameDestinations compares two desired lists; an entry the build kept
// from the last reconcile is the same slice, and is not read through.
func sameDestinations(a, b []ipvs.Destination) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

// byKey indexes a desired table by normalized service key, the first of
// duplicates kept (as ipvs.Plan does).
func byKey(table []ipvs.DesiredService) map[ipvs.ServiceKey]ipvs.DesiredService {
	out := make(map[ipvs.ServiceKey]ipvs.DesiredService, len(table))
	for _, ds := range table {
		k := ds.Key.Normalize()
		if _, dup := out[k]; !dup {
			out[k] = ds
		}
	}
	return out
}

// touchedBy is the set of services ops change, by normalized key.
func touchedBy(ops []ipvs.Op) map[ipvs.ServiceKey]bool {
	out := make(map[ipvs.ServiceKey]bool, 1)
	for _, op := range ops {
		out[op.Service.Key.Normalize()] = true
	}
	return out
}

// desired is the table the kernel should hold now: the config with the
// servers' health and the policies' decisions, plus the draining servers;
// and the retired services to delete.
func (e *Engine) desired() ([]ipvs.DesiredService, []ipvs.ServiceKey) { return e.desiredAt(time.Now()) }

// desiredAt is desired with the slow starts as they are at now.
func (e *Engine) desiredAt(now time.Time) ([]ipvs.DesiredService, []ipvs.ServiceKey) {
	return e.withDrains(e.build(now, nil).services)
}

// withDrains is table with the draining servers, and the retired
// services to delete.
func (e *Engine) withDrains(table []ipvs.DesiredService) ([]ipvs.DesiredService, []ipvs.ServiceKey) {
	table = drain.With(table, e.drains)
	return table, drain.RetiredExcept(e.retired, table)
}

// builtTable is a desired table as desired.Build makes it (one entry per
// virtual server of cfg, in order), each virtual server's healthy weight
// as it was built, and the virtual servers whose servers' views may have
// changed since (stale).
type builtTable struct {
	cfg      *config.Config
	services []ipvs.DesiredService
	healthy  []uint64 // desired.HealthyWeight of each
	stale    map[string]bool
}

// healthyOf is the healthy weight of cfg's i-th virtual server as last
// built; false when that may be out of date.
func (b *builtTable) healthyOf(cfg *config.Config, i int) (uint64, bool) {
	if b.cfg != cfg || len(b.stale) > 0 || len(b.healthy) != len(cfg.VirtualServers) {
		return 0, false
	}
	return b.healthy[i], true
}

// staleVS notes that a server of the virtual server called name changed
// (its health, its check's weight, the policies' hold on it).
func (b *builtTable) staleVS(name string) {
	if b.stale == nil {
		b.stale = map[string]bool{}
	}
	b.stale[name] = true
}

// forget drops the table: the next reconcile builds it whole. The loop
// calls it on the events that may change any server's view (a request, a
// reload, the admin tick, maintenance files, a panic's start or end);
// drains are added after the build (withDrains).
func (b *builtTable) forget() { *b = builtTable{} }

// build is the table desired.Build makes at now. With reuse (a table of
// the running config), only the virtual servers it marks stale, and those
// with slow start (whose weights change with time), are built again: a
// transition among 20,000 servers asks for the views of its own virtual
// server's, not all 20,000.
func (e *Engine) build(now time.Time, reuse *builtTable) builtTable {
	n := len(e.cfg.VirtualServers)
	whole := reuse == nil || reuse.cfg != e.cfg || len(reuse.services) != n || len(reuse.healthy) != n
	out := builtTable{cfg: e.cfg}
	if whole {
		out.services, out.healthy = make([]ipvs.DesiredService, n), make([]uint64, n)
	} else {
		out.services, out.healthy = slices.Clone(reuse.services), slices.Clone(reuse.healthy)
	}
	at := 0 // the virtual server being built
	in := desired.Input{
		View: func(id config.ServerID) desired.View { return e.viewAt(id, e.stateOf(id), e.ramps, now) },
		QuorumLost: func(vs *config.VirtualServer, healthy uint64) bool {
			out.healthy[at] = healthy
			return e.evaluateQuorum(vs, healthy)
		},
	}
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		if whole || vs.SlowStart > 0 || reuse.stale[vs.Name] {
			at = i
			out.services[i] = desired.BuildService(vs, in)
		}
	}
	return out
}

// stateOf is id's health; unknown for a server the engine does not know.
func (e *Engine) stateOf(id config.ServerID) health.State {
	if s := e.servers.get(id); s != nil {
		return s.health.State()
	}
	return health.Unknown
}

// view is how the desired table sees a server in state: its health and
// what the policies hold it out with or keep it in by.
func (e *Engine) view(id config.ServerID, state health.State) desired.View {
	v := desired.View{State: state, Suppressed: e.dampers.Suppressed(id), Kept: e.guard.Kept(id, state)}
	if s := e.servers.get(id); s != nil {
		v.Weight, v.HasWeight = s.checkWeight()
	}
	if o, ok := e.overrides.Effective(id); ok {
		v.Hold = o.Hold()
	}
	return v
}

// applied is the table a fully successful report leaves behind: its plan
// applied to the table it was planned against, in memory. Only the
// services the plan touches are copied and changed (one transition among
// 20,000 servers changes one service); the others are r.Actual's, shared,
// as a table read is never changed in place. Services are in key order.
func applied(ctx context.Context, r ipvs.Report, touched map[ipvs.ServiceKey]bool) ([]ipvs.ServiceState, error) {
	out := make([]ipvs.ServiceState, 0, len(r.Actual)+len(touched))
	var changing []ipvs.ServiceState
	for _, s := range r.Actual {
		if touched[s.Key.Normalize()] {
			changing = append(changing, s)
		} else {
			out = append(out, s)
		}
	}
	scratch := ipvs.NewMemoryFrom(changing)
	if errs := ipvs.Apply(ctx, scratch, r.Ops); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	changed, err := scratch.Services(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, changed...)
	slices.SortFunc(out, func(a, b ipvs.ServiceState) int { return a.Key.Compare(b.Key) })
	return out, nil
}

// recordProgrammed updates each server's programmed weight from the last
// table read, and its metrics: of the servers of the services in only,
// or of all when only is nil. A server's health state is not what calls
// for it (observe reports that at once); its programmed weight changes
// only with its service in the table.
func (e *Engine) recordProgrammed(only map[ipvs.ServiceKey]bool) {
	actual := e.actual
	if only != nil {
		if len(only) == 0 {
			return
		}
		actual = nil
		for _, s := range e.actual {
			if only[s.Key.Normalize()] {
				actual = append(actual, s)
			}
		}
	}
	kernel := desired.Index(actual)
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		key := desired.ServiceKey(vs)
		if only != nil && !only[key.Normalize()] {
			continue
		}
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			s := e.servers.get(config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address})
			if s == nil {
				continue
			}
			programmed := int64(-1)
			if d, ok := kernel[desired.Key(key, rs.Address)]; ok {
				programmed = int64(d.Weight)
			}
			e.setProgrammed(vs, rs, s, programmed)
		}
	}
}

// setProgrammed records s's programmed weight, and its series when they
// change: with thousands of servers, setting every series on every
// reconcile is most of a transition's cost.
func (e *Engine) setProgrammed(vs *config.VirtualServer, rs *config.RealServer, s *server, programmed int64) {
	s.programmed = programmed
	now := reported{state: s.health.State(), programmed: s.programmed, configured: rs.Weight}
	if s.reported != now {
		s.reported = now
		e.opts.Metrics.SetState(s.series, now.state, now.programmed, now.configured)
	}
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
