// Package engine ties the director together: it runs the checks the config
// asks for, feeds their results to each real server's health state machine,
// turns config and health into the desired IPVS table, and reconciles the
// kernel to it on every change and every resync interval.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// Options are the engine's collaborators.
type Options struct {
	Table   ipvs.Table
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// DryRun only changes how table changes are logged: the table is
	// expected to be an in-memory one.
	DryRun bool
	// NewProber builds a prober from a spec; checks.New when nil.
	NewProber func(checks.Spec) (checks.Prober, error)
	// ReconcileTimeout bounds one reconcile run; 30s when zero.
	ReconcileTimeout time.Duration
	// DrainPoll is how often draining servers' connection counts are
	// read; 2s when zero.
	DrainPoll time.Duration
	// OnTransition, when set, is called for every state change, with the
	// engine's lock held: it must return at once (queue, don't deliver).
	OnTransition func(Event)
	// HistoryLength is how many check results Status keeps per real
	// server, and how many transitions in total; DefaultHistoryLength when zero.
	HistoryLength int
	// StateFile keeps API overrides and the list of managed services
	// across restarts (statefile.go, ownership.go); "" keeps them in
	// memory only.
	StateFile string
	// AdminPoll is how often the maintenance directory is read and
	// override expiries, flap damping and panics are checked; 1s when zero.
	AdminPoll time.Duration
	// OnVirtualServerEvent, when set, is called when the panic guard
	// trips or ends, with the engine's lock held: it must return at once.
	OnVirtualServerEvent func(VirtualServerEvent)
}

// server is one real server of one virtual server, with its health.
type server struct {
	id       serverID
	checkKey string
	check    checks.Spec
	machine  *health.Machine
	last     checks.Result
	lastAt   time.Time // when the state last changed
	// programmed is the weight the last reconcile left in the kernel; -1 absent.
	programmed int64
	// reported is what the metrics show for it, to skip unchanged updates.
	reported reported
	status   serverStatus // recent results, for Status (status.go)
}

// resultsQueue lets a finished check hand its result over and end without
// waiting for the engine loop to be scheduled; results still queued when
// a check is stopped are dropped by observe (their check has no servers).
const resultsQueue = 256

// transitionSettle is how long a transition waits for others before the
// table is changed: short against fall × interval, long enough to batch a
// burst of failures into one reconcile.
const transitionSettle = 10 * time.Millisecond

// reported is a real server's series as last set in the metrics.
type reported struct {
	state      health.State
	programmed int64
	configured uint32
}

// Engine is the running director. Create it with New and start it with Run.
type Engine struct {
	opts Options
	log  *slog.Logger

	reloads chan reloadRequest
	results chan probeResult

	// mu guards everything below. Only the Run goroutine writes; Status
	// and Ready read from other goroutines.
	mu        sync.Mutex
	cfg       *config.Config
	servers   map[serverID]*server
	probes    map[string]*probeRunner
	listeners map[string][]serverID // check key -> the servers it feeds
	managed   map[ipvs.ServiceKey]bool
	retired   map[ipvs.ServiceKey]bool
	ready     bool
	actual    []ipvs.ServiceState // the kernel table as last read
	events    []Event             // recent transitions, oldest first (status.go)
	prod      production          // drains, error log, watchdog (production.go)
	adm       adminState          // overrides, damping, panic guard, quorum (admin.go)
	own       ownership           // the managed services as the state file lists them (ownership.go)
}

type reloadRequest struct {
	cfg   *config.Config
	reply chan error
}

// New validates that every check in cfg can be built and returns an engine
// ready to Run. Nothing runs and nothing touches the table until Run.
func New(cfg *config.Config, opts Options) (*Engine, error) {
	if opts.NewProber == nil {
		opts.NewProber = checks.New
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReconcileTimeout == 0 {
		opts.ReconcileTimeout = 30 * time.Second
	}
	if opts.DrainPoll == 0 {
		opts.DrainPoll = 2 * time.Second
	}
	if opts.AdminPoll == 0 {
		opts.AdminPoll = time.Second
	}
	if opts.HistoryLength <= 0 {
		opts.HistoryLength = DefaultHistoryLength
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(metrics.Build{Version: "test"})
	}
	e := &Engine{
		opts:      opts,
		log:       opts.Logger,
		reloads:   make(chan reloadRequest),
		results:   make(chan probeResult, resultsQueue),
		servers:   map[serverID]*server{},
		probes:    map[string]*probeRunner{},
		listeners: map[string][]serverID{},
		managed:   map[ipvs.ServiceKey]bool{},
		retired:   map[ipvs.ServiceKey]bool{},
		prod:      newProduction(opts),
		adm:       newAdminState(opts),
	}
	if _, err := e.buildProbers(cfg); err != nil {
		return nil, err
	}
	e.cfg = cfg
	return e, nil
}

// buildProbers builds a prober for every check in cfg that is not running
// yet, so that a reload can be refused before anything changes.
func (e *Engine) buildProbers(cfg *config.Config) (map[string]*probeRunner, error) {
	fresh := map[string]*probeRunner{}
	var errs []error
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for j := range vs.RealServers {
			spec := vs.CheckSpec(&vs.RealServers[j])
			key := spec.Key()
			if e.probes[key] != nil || fresh[key] != nil {
				continue
			}
			p, err := e.opts.NewProber(spec)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: virtual server %q, real server %s: check: %w",
					cfg.Path, vs.Name, vs.RealServers[j].Address, err))
				continue
			}
			fresh[key] = &probeRunner{spec: spec, prober: p}
		}
	}
	return fresh, errors.Join(errs...)
}

// Ready reports whether the first reconcile has completed without errors.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ready
}

// Reload replaces the configuration. Checks whose spec is unchanged keep
// their state and schedule. An error means nothing changed. It blocks until
// the running engine has applied the change, or ctx ends.
func (e *Engine) Reload(ctx context.Context, cfg *config.Config) error {
	req := reloadRequest{cfg: cfg, reply: make(chan error, 1)}
	select {
	case e.reloads <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run adopts what the kernel holds, starts the checks and keeps the kernel
// table right until ctx ends; then it stops the checks and, when the config
// says on_shutdown = "flush", removes the services it manages.
func (e *Engine) Run(ctx context.Context) error {
	actual, err := e.readTable(ctx)
	if err != nil {
		return fmt.Errorf("reading the IPVS table at start: %w", err)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()

	e.mu.Lock()
	e.actual = actual
	fresh, err := e.buildProbers(e.cfg)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.loadStateLocked(time.Now()) // API overrides of the last run (statefile.go)
	e.adoptConfig(e.cfg, fresh, probeCtx)
	e.retireRecordedLocked(time.Now()) // services of the last run the config dropped (ownership.go)
	e.drainStrays(time.Now())
	e.recordOwnedLocked() // before the first reconcile creates any
	e.mu.Unlock()
	defer e.stopAllProbes()

	resync := time.NewTicker(e.cfg.Director.ResyncInterval)
	defer resync.Stop()
	retry := newBackoff(time.Second, e.cfg.Director.ResyncInterval)
	defer retry.stop()

	reconcile := func(trigger string) {
		if e.reconcile(ctx, trigger) {
			retry.reset()
		} else {
			retry.schedule()
		}
	}
	e.adminTick(time.Now()) // maintenance files before the first reconcile (admin.go)
	reconcile("start")
	adminTick := time.NewTicker(e.opts.AdminPoll)
	defer adminTick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	settling := false
	close(e.prod.started)
	drainTick := time.NewTicker(e.opts.DrainPoll)
	defer drainTick.Stop()

	for {
		select {
		case <-ctx.Done():
			e.shutdown()
			return nil
		case r := <-e.results:
			changed := e.observe(r)
			// Drain results that are already waiting so that a burst of
			// transitions costs one reconcile, not one each.
			for drained := false; !drained; {
				select {
				case r := <-e.results:
					changed = e.observe(r) || changed
				default:
					drained = true
				}
			}
			changed = e.afterResults(time.Now()) || changed // panic guard (panic.go)
			// A burst of transitions (a switch dies, fifty servers fail
			// within milliseconds of each other) costs one reconcile, not
			// fifty: wait a moment for the rest before applying.
			if changed && !settling {
				settling = true
				settle.Reset(transitionSettle)
			}
		case <-settle.C:
			settling = false
			reconcile("transition")
		case <-resync.C:
			reconcile("resync")
		case <-retry.C():
			reconcile("retry")
		case <-drainTick.C:
			if e.pollDrains(ctx) {
				reconcile("drain")
			}
		case reply := <-e.prod.pings:
			close(reply)
		case <-adminTick.C:
			if e.adminTick(time.Now()) {
				reconcile("admin")
			}
		case req := <-e.adm.requests:
			v, changed, err := req.do(time.Now())
			if changed {
				reconcile("admin")
			}
			req.reply <- adminReply{v, err}
		case req := <-e.reloads:
			err := e.applyReload(ctx, req.cfg, probeCtx)
			req.reply <- err
			if err == nil {
				resync.Reset(req.cfg.Director.ResyncInterval)
				retry.max = req.cfg.Director.ResyncInterval
				reconcile("reload")
			}
		}
	}
}

func (e *Engine) readTable(ctx context.Context) ([]ipvs.ServiceState, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	return e.opts.Table.Services(ctx)
}

// adoptConfig makes cfg the running config: servers that are new get a
// state machine (adopting the kernel's view), servers that are gone are
// forgotten, probes follow. Callers hold mu; fresh holds the probers for
// checks not yet running.
func (e *Engine) adoptConfig(cfg *config.Config, fresh map[string]*probeRunner, probeCtx context.Context) {
	kernel := indexTable(e.actual)
	keep := map[serverID]bool{}
	listeners := map[string][]serverID{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		key := serviceKey(vs)
		e.managed[key] = true
		delete(e.retired, key)
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			id := serverID{vs.Name, rs.Address}
			spec := vs.CheckSpec(rs)
			ck := spec.Key()
			keep[id] = true
			listeners[ck] = append(listeners[ck], id)
			s := e.servers[id]
			if s != nil && s.checkKey == ck {
				s.machine.SetThresholds(vs.Check.Rise, vs.Check.Fall)
				continue
			}
			// A server whose check changed keeps its verdict until the new
			// check overturns it. A new server starts from what the kernel
			// shows, so a destination that is serving keeps serving.
			initial := health.Unknown
			programmed := int64(-1)
			if s != nil {
				initial, programmed = s.machine.State(), s.programmed
			} else if d, ok := kernel[destKey{key, rs.Address}]; ok {
				programmed = int64(d.Weight)
				if d.Weight > 0 {
					initial = health.Up
				}
			}
			e.servers[id] = &server{
				id: id, checkKey: ck, check: spec,
				machine:    health.New(vs.Check.Rise, vs.Check.Fall, initial),
				lastAt:     time.Now(),
				programmed: programmed,
				reported:   reported{initial, programmed, rs.Weight},
			}
			e.opts.Metrics.RealServer(vs.Name, rs.Address.String(), initial.String(), programmed, rs.Weight)
		}
	}
	for id := range e.servers {
		if !keep[id] {
			delete(e.servers, id)
			e.opts.Metrics.ForgetRealServer(id.vs, id.rs.String())
		}
	}
	for key := range e.managed {
		if !slices.ContainsFunc(cfg.VirtualServers, func(vs config.VirtualServer) bool { return serviceKey(&vs) == key }) {
			delete(e.managed, key)
			e.retired[key] = true
		}
	}
	for key, p := range e.probes {
		if _, used := listeners[key]; !used {
			p.stop()
			delete(e.probes, key)
		}
	}
	for key, p := range fresh {
		e.probes[key] = p
		p.start(probeCtx, e.results, e.opts.Metrics.Schedule)
	}
	e.listeners = listeners
	e.cfg = cfg
	e.adoptAdminLocked(cfg) // overrides, damping, panics of servers that left (admin.go)
}

// observe feeds one check result to every server that uses the check and
// reports whether any of them changed state.
func (e *Engine) observe(r probeResult) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed := false
	for _, id := range e.listeners[r.key] {
		s := e.servers[id]
		if s == nil {
			continue
		}
		s.last = r.result
		rs := id.rs.String()
		e.opts.Metrics.Check(id.vs, rs, s.check.Type, r.result.OK, r.result.Duration)
		t, moved := s.machine.Observe(r.result.OK, r.result.Reason)
		e.noteResult(s, r.result)
		if !moved {
			continue
		}
		changed = true
		s.lastAt = time.Now()
		e.opts.Metrics.Transition(id.vs, rs, t.To.String())
		// The state series change with the state, not a reconcile later
		// (the weight series follow when the table has changed).
		s.reported.state = t.To
		e.opts.Metrics.RealServer(id.vs, rs, t.To.String(), s.reported.programmed, s.reported.configured)
		e.noteTransition(s, t)
		e.noteAdminTransition(id, t, s.lastAt) // flap damping, panic guard (admin.go)
		level := slog.LevelInfo
		if t.To == health.Down {
			level = slog.LevelWarn
		}
		e.log.Log(context.Background(), level, "real server "+t.To.String(),
			"virtual_server", id.vs, "real_server", rs, "from", t.From.String(),
			"reason", t.Reason, "check", s.check.String(), "latency", r.result.Duration.Round(time.Microsecond),
			"recent", s.status.summary())
	}
	return changed
}

// reconcile brings the kernel table to the desired state and reports
// whether every operation succeeded.
func (e *Engine) reconcile(ctx context.Context, trigger string) bool {
	start := time.Now()
	// A health transition plans against the table as the director last
	// knew it: reading ten thousand destinations back from the kernel for
	// each server that goes up or down is the cost that grows with scale.
	// Every other trigger (start, resync, retry, reload, drain) reads the
	// kernel, so drift made behind our back is still found and repaired;
	// so does a transition after a failed reconcile (not ready), when what
	// the director last knew may be wrong.
	e.mu.Lock()
	cfg := e.cfg
	desired, retired := e.desiredLocked() // config, health and drains (drain.go)
	e.recordOwnedLocked()                 // retries a failed write before anything is created (ownership.go)
	lastRead := e.actual
	known := trigger == "transition" && lastRead != nil && e.ready
	e.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	var report ipvs.Report
	var err error
	if known {
		report.Actual = lastRead
		report.Ops = ipvs.Plan(desired, report.Actual, retired)
		report.Errors = ipvs.Apply(ctx, e.opts.Table, report.Ops)
	} else {
		report, err = ipvs.Reconcile(ctx, e.opts.Table, desired, retired)
	}
	if err != nil {
		e.opts.Metrics.Reconcile(trigger, err, time.Since(start))
		e.ipvsFailed(trigger, err) // logged once per cause (errlog.go)
		return false
	}
	e.recordOps(trigger, report.Ops, report.Errors, e.ipvsFailed)
	ok := len(report.Errors) == 0
	var runErr error
	if !ok {
		runErr = errors.New("operations failed")
	}
	e.opts.Metrics.Reconcile(trigger, runErr, time.Since(start))

	var after []ipvs.ServiceState
	var readErr error
	if known && ok {
		after, readErr = applied(ctx, report)
	} else {
		after, readErr = e.readTable(ctx)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if readErr == nil {
		e.actual = after
	} else if known {
		e.actual = nil // unknown now: the next reconcile reads the kernel
	}
	if ok {
		e.ready = true
		for _, k := range retired {
			delete(e.retired, k)
		}
		e.recordOwnedLocked() // the deleted ones leave the state file
	}
	e.ipvsSettledLocked(ok) // not ready while the last reconcile failed
	e.recordProgrammed(cfg)
	return ok
}

// applied is the table a fully successful report leaves behind: its plan
// applied to the table it was planned against, in memory.
func applied(ctx context.Context, r ipvs.Report) ([]ipvs.ServiceState, error) {
	scratch := ipvs.NewMemoryFrom(r.Actual)
	if errs := ipvs.Apply(ctx, scratch, r.Ops); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return scratch.Services(ctx)
}

// recordProgrammed updates each server's programmed weight from the last
// table read, and its metrics. Callers hold mu.
func (e *Engine) recordProgrammed(cfg *config.Config) {
	kernel := indexTable(e.actual)
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		key := serviceKey(vs)
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			s := e.servers[serverID{vs.Name, rs.Address}]
			if s == nil {
				continue
			}
			s.programmed = -1
			if d, ok := kernel[destKey{key, rs.Address}]; ok {
				s.programmed = int64(d.Weight)
			}
			// Only what changed: with thousands of servers, setting every
			// series on every reconcile is most of a transition's cost.
			now := reported{s.machine.State(), s.programmed, rs.Weight}
			if s.reported != now {
				s.reported = now
				e.opts.Metrics.RealServer(vs.Name, rs.Address.String(), now.state.String(), now.programmed, now.configured)
			}
		}
	}
}

func (e *Engine) stopAllProbes() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key, p := range e.probes {
		p.stop()
		delete(e.probes, key)
	}
}

// shutdown applies on_shutdown. The run context is over, so it gets its own deadline.
func (e *Engine) shutdown() {
	e.mu.Lock()
	cfg := e.cfg
	keys := slices.Collect(maps.Keys(e.managed))
	keys = append(keys, slices.Collect(maps.Keys(e.retired))...)
	e.mu.Unlock()
	if cfg.Director.OnShutdown != "flush" {
		e.log.Info("stopping; leaving the IPVS table as it is (on_shutdown = keep)")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.ReconcileTimeout)
	defer cancel()
	report, err := ipvs.Reconcile(ctx, e.opts.Table, nil, keys)
	if err != nil {
		e.log.Error("on_shutdown = flush: reading the IPVS table failed; services left in place", "err", err)
		return
	}
	for _, op := range report.Ops {
		e.log.Info("on_shutdown = flush", "op", op.String())
	}
	for _, err := range report.Errors {
		e.log.Error("on_shutdown = flush: operation failed", "err", err)
	}
	if len(report.Errors) == 0 {
		e.recordFlushed() // nothing left to answer for (ownership.go)
	}
}

type destKey struct {
	svc  ipvs.ServiceKey
	addr netip.AddrPort
}

func indexTable(t []ipvs.ServiceState) map[destKey]ipvs.Destination {
	idx := map[destKey]ipvs.Destination{}
	for _, s := range t {
		for _, d := range s.Destinations {
			idx[destKey{s.Key, d.Address}] = d.Destination
		}
	}
	return idx
}
