// Package engine runs the director: it owns every piece of mutable state
// (servers and their health, overrides, drains, what the kernel holds) in
// one goroutine, Run, and nothing else reads or writes it. Check results,
// operator requests, reloads and timers arrive there as messages; the
// pure policies (health, policy/..., desired) decide; Run turns their
// decisions into kernel operations (ipvs.Plan, ipvs.Apply) and their
// events into log lines, metrics, notifications and file writes. Readers
// get immutable snapshots (Snapshot), never the state itself.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/damping"
	"github.com/lvsdirector/director/policy/drain"
	"github.com/lvsdirector/director/policy/override"
	"github.com/lvsdirector/director/policy/panicguard"
	"github.com/lvsdirector/director/policy/quorum"
	"github.com/lvsdirector/director/policy/slowstart"
)

// Options are the engine's collaborators.
type Options struct {
	Table   ipvs.Table
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// DryRun only changes how table changes are logged: the table is
	// expected to be an in-memory one.
	DryRun bool
	// NewProber builds a prober from a spec; when nil, the engine's own
	// checks.Shared builds them (one exec concurrency bound per director,
	// one log line when icmp checks fall back to raw sockets).
	NewProber func(checks.Spec) (checks.Prober, error)
	// ReconcileTimeout bounds one reconcile run; 30s when zero.
	ReconcileTimeout time.Duration
	// DrainPoll is how often draining servers' connection counts are
	// read; 2s when zero.
	DrainPoll time.Duration
	// OnTransition, when set, is called for every state change, on the
	// engine's goroutine: it must return at once (queue, don't deliver).
	OnTransition func(Event)
	// HistoryLength is how many check results Status keeps per real
	// server, and how many transitions in total; DefaultHistoryLength when zero.
	HistoryLength int
	// StateFile keeps API overrides and the list of managed services
	// across restarts (files.go); "" keeps them in memory only.
	StateFile string
	// AdminPoll is how often the maintenance directory is read and
	// override expiries, flap damping and panics are checked; 1s when zero.
	AdminPoll time.Duration
	// OnVirtualServerEvent, when set, is called when the panic guard
	// trips or ends, on the engine's goroutine: it must return at once.
	OnVirtualServerEvent func(VirtualServerEvent)
	// FileTimeout bounds each file operation (state file, maintenance
	// directory); 5s when zero.
	FileTimeout time.Duration
	// StuckAfter is how long the loop may go without turning before Ready
	// reports false; 10s when zero.
	StuckAfter time.Duration
	// Announcer, when set, is handed the VIPs to announce (announce.go).
	Announcer Announcer
	// DataPath, when set, is what data-path checks probe through
	// (datapath.go); the engine syncs it at start and after each reload
	// and closes it when Run returns. Without it they are inconclusive.
	DataPath DataPath
	// SetProcs, when set, sets how many Ps the Go runtime uses: the
	// engine sets one when the config has few checks a second, and
	// doubles BaseProcs when its event loops have many (loops.go). Left
	// nil when the operator set GOMAXPROCS.
	SetProcs func(n int)
	// BaseProcs is the runtime's own GOMAXPROCS, what SetProcs starts from.
	BaseProcs int
}

// server is one real server of one virtual server, with its health.
type server struct {
	id     config.ServerID
	checks []*serverCheck // in the config's order
	// label is checkLabel of checks, kept: it is read for every result.
	label string
	// series is its metrics series, resolved once when the server is
	// made: a result is recorded without formatting its address or
	// looking it up by name. It goes with the server (adoptConfig).
	series *metrics.Series
	// health combines the checks' verdicts: up only while all are up.
	health *health.Group
	lastAt int64 // when the state last changed, in Unix nanoseconds (16 bytes less than a time.Time)
	// programmed is the weight the last reconcile left in the kernel; -1 absent.
	programmed int64
	// reported is what the metrics show for it, to skip unchanged updates.
	reported reported
	history  history // recent results of all its checks, for Status (snapshot.go)
}

// serverCheck is one check of one server. Its runner may be shared with
// other servers; its health machine (in server.health, by name) and
// history are the server's own.
type serverCheck struct {
	name string
	// runner runs the check and holds its spec and key (spec, key): one
	// of each a check, however many servers' checks read them. The
	// runner finds its servers' checks through feeds and next: a chain,
	// 16 bytes a check, where a map of the keys to the servers' checks
	// was ~80 (docs/performance.md, "Memory, third pass").
	runner *probeRunner
	s      *server      // the server whose check this is
	next   *serverCheck // the next check the runner feeds, in config order
	// history is its own results when the server has several checks;
	// nil until then (historyOf: a server's only check has the server's).
	history *history
	// weight is the weight the check's last passing result reported
	// (exec's dynamic weight); hasWeight is false when it reported none.
	hasWeight bool
	weight    uint32
}

// key is the check's key (checks.Spec.Key): its runner's.
func (c *serverCheck) key() string { return c.runner.key }

// spec is the check's spec: its runner's, shared, never changed.
func (c *serverCheck) spec() *checks.Spec { return &c.runner.spec }

// check returns the server's check called name, or nil.
func (s *server) check(name string) *serverCheck {
	for _, c := range s.checks {
		if c.name == name {
			return c
		}
	}
	return nil
}

// historyOf is the recent results of the server's check c: the server's
// own when c is its only check.
func (s *server) historyOf(c *serverCheck) *history {
	if len(s.checks) == 1 {
		return &s.history
	}
	if c.history == nil {
		return &history{}
	}
	return c.history
}

// checkWeight is the weight the server's checks report: the first one
// (in config order) that reports one.
func (s *server) checkWeight() (uint32, bool) {
	for _, c := range s.checks {
		if c.hasWeight {
			return c.weight, true
		}
	}
	return 0, false
}

// describe is the server's checks, described, for logs and status.
func (s *server) describe() string {
	parts := make([]string, len(s.checks))
	for i, c := range s.checks {
		parts[i] = c.spec().String()
	}
	return strings.Join(parts, " + ")
}

// checkLabel is the metrics' check label of the server: its checks'
// types, "http" or "http+icmp" (one label per server, so that its series
// keep counting across results of different checks).
func (s *server) checkLabel() string { return s.label }

// typesLabel joins the types of the server's checks for checkLabel.
func (s *server) typesLabel() string {
	types := make([]string, len(s.checks))
	for i, c := range s.checks {
		types[i] = c.spec().Type
	}
	return joinTypes(types)
}

// checksKey identifies the server's set of checks (names and specs), to
// tell whether a verdict kept across a drain still applies.
func (s *server) checksKey() string {
	var b strings.Builder
	for _, c := range s.checks {
		b.WriteString(c.name)
		b.WriteByte(0)
		b.WriteString(c.key())
		b.WriteByte(0)
	}
	return b.String()
}

// reported is a real server's series as last set in the metrics; the
// state beside the configured weight, in 16 bytes.
type reported struct {
	programmed int64
	configured uint32
	state      health.State
}

// transitionSettle is how long a transition waits for others before the
// table is changed: short against fall × interval, long enough to batch a
// burst of failures into one reconcile.
const transitionSettle = 10 * time.Millisecond

// Engine is the running director. Create it with New and start it with Run.
type Engine struct {
	opts Options
	// proberFor builds a prober around a runner's own spec: the engine's
	// checks.Shared (NewFor) when Options.NewProber was not given, else nil.
	proberFor     func(*checks.Spec) (checks.Prober, error)
	log           *slog.Logger
	tableMetrics  *metrics.Table
	policyMetrics *metrics.Policy

	// Messages to the loop.
	reloads  chan reloadRequest
	results  *inbox // checks' results (inbox.go); those of a check stopped meanwhile are dropped by observe
	requests chan request
	pings    chan chan struct{}
	publish  chan struct{} // a reader wants a fresher snapshot (snapshot.go)

	// What the loop publishes for other goroutines.
	snapshot  atomic.Pointer[Status]
	published atomic.Pointer[chan struct{}] // closed when the next snapshot is out
	changes   atomic.Uint64                 // bumped by the loop on every change a snapshot shows
	urgent    atomic.Uint64                 // the last change that must not wait for the freshness window
	lastRead  atomic.Int64                  // unix nanoseconds of the last Snapshot call (releaseUnread)
	current   atomic.Pointer[config.Config]
	names     atomic.Pointer[map[ipvs.ServiceKey]string]
	ready     atomic.Bool
	running   atomic.Bool  // Run's loop is serving requests
	lastTurn  atomic.Int64 // unix nanoseconds of the loop's last turn
	started   chan struct{}
	files     sync.WaitGroup // file operations in flight (files.go)

	// selfHealth is what the loop publishes about its own health (selfhealth.go).
	selfHealth atomic.Pointer[selfHealth]

	// Everything below is owned by the Run goroutine: nothing else reads
	// or writes it.
	cfg          *config.Config
	servers      serverSet
	probes       map[string]*probeRunner
	fast         []*checks.FastLoop // run the checks they can (fast_checks); none when off
	nextLoop     int                // the loop the next runner goes to
	loopsInUse   int                // the first loops of fast that fresh runners go to (sizeLoops)
	procs        int                // the Ps last set through SetProcs (BaseProcs until then)
	managed      map[ipvs.ServiceKey]bool
	retired      map[ipvs.ServiceKey]bool
	reconciled   bool                // the last reconcile succeeded
	actual       []ipvs.ServiceState // the kernel table as last read
	events       []Event             // recent transitions, oldest first
	drains       drain.Set
	kernelErrors errorLog
	localErrors  errorLog // inconclusive checks, by reason (results.go)
	overrides    *override.Set
	dampers      damping.Set
	guard        *panicguard.Guard
	quorum       quorum.State
	ramps        slowstart.Set            // who serves since when, for slow start (slowstart.go)
	ramping      map[config.ServerID]bool // the servers shown in slow start
	maint        maintReader              // the maintenance directory (files.go)
	stateFile    stateFileKeep            // what the state file holds (files.go)
	ann          announcing               // VIPs to announce (announce.go)
	lastPublish  time.Time

	// planned is the desired table the last reconcile brought the kernel
	// to, by service key (nil after a failure, or a read of the kernel
	// outside a reconcile): a transition plans only the services whose
	// desired state differs from it (reconcile.go). The loop's own.
	planned map[ipvs.ServiceKey]ipvs.DesiredService
	// built is the desired table of the last reconcile, before drains,
	// and what changed since (reconcile.go). The loop's own.
	built builtTable
	// byDest finds the config's real server behind a kernel destination
	// (reconcile.go), built once per config. The loop's own.
	byDest destIndex
}

type reloadRequest struct {
	cfg   *config.Config
	reply chan error
}

// New validates that every check in cfg can be built and returns an engine
// ready to Run. Nothing runs and nothing touches the table until Run.
func New(cfg *config.Config, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var proberFor func(*checks.Spec) (checks.Prober, error)
	if opts.NewProber == nil {
		sh := checks.NewShared().WithLogger(opts.Logger)
		if opts.DataPath != nil {
			sh.DataPath = opts.DataPath
		}
		opts.NewProber, proberFor = sh.New, sh.NewFor
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
	if opts.FileTimeout == 0 {
		opts.FileTimeout = 5 * time.Second
	}
	if opts.StuckAfter == 0 {
		opts.StuckAfter = 10 * time.Second
	}
	if opts.HistoryLength <= 0 {
		opts.HistoryLength = DefaultHistoryLength
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(metrics.Build{Version: "test"})
	}
	e := &Engine{
		opts:          opts,
		proberFor:     proberFor,
		log:           opts.Logger,
		procs:         opts.BaseProcs,
		tableMetrics:  metrics.NewTable(opts.Metrics),
		policyMetrics: metrics.NewPolicy(opts.Metrics),
		reloads:       make(chan reloadRequest),
		results:       newInbox(inboxLimit, opts.Metrics.Schedule),
		requests:      make(chan request),
		pings:         make(chan chan struct{}),
		publish:       make(chan struct{}, 1),
		started:       make(chan struct{}),
		probes:        map[string]*probeRunner{},
		managed:       map[ipvs.ServiceKey]bool{},
		retired:       map[ipvs.ServiceKey]bool{},
		drains:        drain.Set{},
		overrides:     override.NewSet(),
		dampers:       damping.Set{},
		guard:         panicguard.New(),
		quorum:        quorum.State{},
		ramps:         slowstart.Set{},
		ramping:       map[config.ServerID]bool{},
		maint:         maintReader{warned: map[string]bool{}},
	}
	if _, err := e.buildProbers(cfg); err != nil {
		return nil, err
	}
	e.cfg = cfg
	e.setConfig(cfg)
	ch := make(chan struct{})
	e.published.Store(&ch)
	e.publishSnapshot(time.Now())
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
			rs := &vs.RealServers[j]
			for _, c := range vs.ChecksOf(rs) {
				spec := vs.CheckSpec(rs, &c)
				key := spec.Key()
				if e.probes[key] != nil || fresh[key] != nil {
					continue
				}
				r, err := e.newRunner(spec)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: virtual server %q, real server %s: check %q: %w",
						cfg.Path, vs.Name, rs.Address, c.Name, err))
					continue
				}
				r.key = key // the map's string, not a copy of it
				fresh[key] = r
			}
		}
	}
	return fresh, errors.Join(errs...)
}

// newRunner makes the runner of spec with its prober. The engine's own
// probers are built around the runner's spec (checks.Shared.NewFor): one
// spec per check, read by the runner, its prober, the prober's form on a
// FastLoop and the servers' checks (serverCheck.spec).
func (e *Engine) newRunner(spec checks.Spec) (*probeRunner, error) {
	r := &probeRunner{spec: spec}
	var err error
	if e.proberFor != nil {
		r.prober, err = e.proberFor(&r.spec)
	} else {
		r.prober, err = e.opts.NewProber(spec)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// setConfig publishes cfg and the service names for other goroutines.
func (e *Engine) setConfig(cfg *config.Config) {
	names := make(map[ipvs.ServiceKey]string, len(cfg.VirtualServers))
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		names[desired.ServiceKey(vs).Normalize()] = vs.Name
	}
	e.current.Store(cfg)
	e.names.Store(&names)
}

// Ready reports whether the last reconcile succeeded and the loop is
// turning: a loop stuck for Options.StuckAfter is not ready, whatever it
// last did.
func (e *Engine) Ready() bool {
	if !e.ready.Load() {
		return false
	}
	return time.Since(time.Unix(0, e.lastTurn.Load())) < e.opts.StuckAfter
}

// Config returns the running configuration. It is shared, not copied:
// a Config is never changed once loaded, a reload replaces it whole.
func (e *Engine) Config() *config.Config { return e.current.Load() }

// ServiceNames maps the key of every service in the running config to
// the virtual server's name, for labelling kernel statistics. The map is
// shared: do not change it.
func (e *Engine) ServiceNames() map[ipvs.ServiceKey]string { return *e.names.Load() }

// Started is closed once Run has read the kernel table, started the checks
// and made its first reconcile attempt (successful or not): the moment to
// tell a service manager the director is up.
func (e *Engine) Started() <-chan struct{} { return e.started }

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

// Ping returns once the Run loop has answered, or with ctx's error. A
// watchdog that pings through it notices a wedged engine, not only a dead
// process.
func (e *Engine) Ping(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case e.pings <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
