package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/selfhealth"
	"github.com/lvsdirector/director/policy/syncdaemon"
)

// Options are a Controller's collaborators.
type Options struct {
	Config *config.VRRP
	// Signals returns the director's own health signals (the engine's
	// SelfHealth); StuckAfter is how long its loop may stand still.
	Signals    func(now time.Time) selfhealth.Signals
	StuckAfter time.Duration
	// Sync runs the kernel's sync daemons; nil when [vrrp.sync] is off.
	Sync    ipvs.SyncControl
	Logger  *slog.Logger
	Metrics *metrics.VRRP
	// OnNotice, when set, is told about every role and health change on
	// the controller's goroutine: it must return at once.
	OnNotice func(Notice)
	// HealthEvery is how often the health is evaluated; 250ms when zero.
	HealthEvery time.Duration
	// SyncEvery is how often the sync daemons are read back and
	// repaired; 10s when zero.
	SyncEvery time.Duration
	// FileTimeout bounds a track file write and a sync daemon command;
	// 5s when zero.
	FileTimeout time.Duration
	// FIFOPoll is how often the FIFO's path is checked for a new file;
	// 1s when zero.
	FIFOPoll time.Duration
}

// Notice is a change an operator is told about: an instance's state, or
// the director's own health.
type Notice struct {
	Time time.Time
	// Instance is set for an instance's change, empty for the health.
	Instance string
	From, To string
	Reason   string
}

// Status is what the controller knows, for the status API and page.
type Status struct {
	// Role is the director's: MASTER while any instance it follows is,
	// else the instances' state when they agree, else BACKUP.
	Role      State
	Instances []InstanceStatus
	Health    selfhealth.Verdict
	// HealthSince is when the verdict last changed.
	HealthSince time.Time
	TrackFile   string
	// TrackValue is the value last written; TrackWritten is false
	// before the first write.
	TrackValue   int
	TrackWritten bool
	TrackError   string
	NotifyFIFO   string
	FIFOOpen     bool
	FIFOError    string
	SyncMode     string
	SyncDaemons  []ipvs.SyncDaemon // as last read back from the kernel
	SyncError    string
	// LowerPriorityMaster is when an instance, as MASTER, last heard
	// another MASTER (zero: never).
	LowerPriorityMaster time.Time
}

// InstanceStatus is one VRRP instance the director follows.
type InstanceStatus struct {
	Name     string
	State    State
	Priority int
	Since    time.Time // last state change; zero before the first report
}

// Controller is the director's part in an active-backup pair: it tells
// keepalived the director's health, follows the instances' roles, and
// runs the sync daemons to match. Create it with New; call Start before
// the director reports ready, then Run.
type Controller struct {
	opts    Options
	log     *slog.Logger
	status  atomic.Pointer[Status]
	writer  *trackWriter
	started bool

	// Owned by Run.
	st      Status
	byName  map[string]int // instance name -> index in st.Instances
	ignored map[string]bool
	lastErr map[string]string // cause -> last error logged, for logging each once
}

// New returns a controller for o.Config; nothing happens until Start.
func New(o Options) *Controller {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HealthEvery == 0 {
		o.HealthEvery = 250 * time.Millisecond
	}
	if o.SyncEvery == 0 {
		o.SyncEvery = 10 * time.Second
	}
	if o.FileTimeout == 0 {
		o.FileTimeout = 5 * time.Second
	}
	if o.FIFOPoll == 0 {
		o.FIFOPoll = time.Second
	}
	v := o.Config
	c := &Controller{opts: o, log: o.Logger.With("component", "vrrp"), byName: map[string]int{},
		ignored: map[string]bool{}, lastErr: map[string]string{}}
	c.st = Status{Role: Unknown, TrackFile: v.TrackFile, NotifyFIFO: v.NotifyFIFO, SyncMode: v.Sync.Mode}
	for _, in := range v.Instances {
		c.byName[in.Name] = len(c.st.Instances)
		c.st.Instances = append(c.st.Instances, InstanceStatus{Name: in.Name})
		if o.Metrics != nil {
			o.Metrics.Instance(in.Name, Unknown.String(), 0)
		}
	}
	if v.TrackFile != "" {
		c.writer = newTrackWriter(v.TrackFile, o.FileTimeout)
	}
	c.publish()
	return c
}

// Status returns a copy of what the controller knows now.
func (c *Controller) Status() Status {
	st := *c.status.Load()
	st.Instances = slices.Clone(st.Instances)
	st.SyncDaemons = slices.Clone(st.SyncDaemons)
	return st
}

func (c *Controller) publish() {
	st := c.st
	st.Instances = slices.Clone(st.Instances)
	st.SyncDaemons = slices.Clone(st.SyncDaemons)
	c.status.Store(&st)
}

// Start writes the track file with the director's health now (not ready
// yet, at start: it removes whatever a previous run left) and starts the
// sync daemon as a backup would; it returns once the file is written or
// FileTimeout passed. Call it before the director reports ready.
func (c *Controller) Start(ctx context.Context) {
	now := time.Now()
	c.evaluate(now)
	if c.writer != nil {
		value := c.trackValue()
		err := writeTrackFileWithin(c.st.TrackFile, value, c.opts.FileTimeout)
		c.trackDone(trackWrite{value, err})
	}
	c.syncDaemons(ctx)
	c.started = true
	c.publish()
}

func writeTrackFileWithin(path string, value int, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- writeTrackFile(path, value) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("write the track file %s: %w", path, errTrackTimeout)
	}
}

// Run follows keepalived and the director's health until ctx ends. It
// calls Start first when the caller has not.
func (c *Controller) Run(ctx context.Context) {
	if !c.started {
		c.Start(ctx)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	events := make(chan Event, 64)
	reports := make(chan fifoReport, 16)
	reader := &fifoReader{path: c.opts.Config.NotifyFIFO, events: events, poll: c.opts.FIFOPoll, retry: time.Second,
		report: func(r fifoReport) {
			select {
			case reports <- r:
			case <-ctx.Done():
			}
		}}
	wg.Go(func() { reader.run(ctx) })
	var written <-chan trackWrite
	if c.writer != nil {
		wg.Go(func() { c.writer.run(ctx) })
		written = c.writer.written
	}
	health := time.NewTicker(c.opts.HealthEvery)
	defer health.Stop()
	syncTick := time.NewTicker(c.opts.SyncEvery)
	defer syncTick.Stop()

	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if c.event(ev, time.Now()) {
				c.syncDaemons(ctx)
			}
		case r := <-reports:
			c.fifoReport(r)
		case now := <-health.C:
			if c.evaluate(now) && c.writer != nil {
				c.writer.set(c.trackValue())
			}
		case w := <-written:
			c.trackDone(w)
		case <-syncTick.C:
			c.syncDaemons(ctx)
			if c.writer != nil && c.st.TrackError != "" {
				c.writer.set(c.trackValue()) // try again
			}
		}
		c.publish()
	}
}

// evaluate decides the director's health now; true when it changed.
func (c *Controller) evaluate(now time.Time) bool {
	v := c.opts.Config
	verdict := selfhealth.Evaluate(c.opts.Signals(now), selfhealth.Limits{
		StuckAfter: c.opts.StuckAfter, UnreconciledAfter: v.UnhealthyAfter, MinPoolShare: v.MinPoolShare})
	prev := c.st.Health
	if verdict.Cause == prev.Cause && !c.st.HealthSince.IsZero() {
		c.st.Health.Reason = verdict.Reason // the same cause, with its figures now
		return false
	}
	c.st.Health, c.st.HealthSince = verdict, now
	if c.opts.Metrics != nil {
		c.opts.Metrics.Healthy(verdict.Healthy)
	}
	if prev.Cause == "" { // the first verdict
		c.log.Info("director health", "healthy", verdict.Healthy, "cause", verdict.Cause, "reason", verdict.Reason,
			"track_value", c.trackValue())
		return true
	}
	level := slog.LevelWarn
	if verdict.Healthy {
		level = slog.LevelInfo
	}
	c.log.Log(context.Background(), level, "director health changed", "healthy", verdict.Healthy, "cause", verdict.Cause,
		"reason", verdict.Reason, "was", prev.Cause, "track_value", c.trackValue())
	c.notice(Notice{Time: now, From: string(prev.Cause), To: string(verdict.Cause), Reason: verdict.Reason})
	return true
}

// trackValue is what the track file should hold for the current verdict.
func (c *Controller) trackValue() int {
	v := c.opts.Config
	switch {
	case c.st.Health.Healthy:
		return v.HealthyValue
	case v.OnUnhealthy == "fault":
		return config.TrackFault
	}
	return 0
}

func (c *Controller) trackDone(w trackWrite) {
	if c.opts.Metrics != nil {
		c.opts.Metrics.TrackWritten(w.Value, w.Err)
	}
	if w.Err != nil {
		c.st.TrackError = w.Err.Error()
		c.logOnce("track_file", "the track file could not be written: keepalived keeps the last value it read", w.Err)
		return
	}
	c.st.TrackValue, c.st.TrackWritten, c.st.TrackError = w.Value, true, ""
	c.clearOnce("track_file", "the track file is written again", "value", w.Value)
}

// event takes one FIFO event; true when the director's role changed.
func (c *Controller) event(ev Event, now time.Time) bool {
	if ev.Group {
		c.log.Debug("keepalived sync group event (the director follows instances)", "group", ev.Name, "state", ev.State)
		return false
	}
	i, ok := c.byName[ev.Name]
	if !ok {
		if !c.ignored["instance "+ev.Name] {
			c.ignored["instance "+ev.Name] = true
			c.log.Warn("keepalived reports an instance the director does not follow; add it to [[vrrp.instance]] to follow it",
				"instance", ev.Name, "state", ev.State)
		}
		return false
	}
	in := &c.st.Instances[i]
	if ev.Kind == LowerPriorityMaster {
		c.st.LowerPriorityMaster = now
		if c.opts.Metrics != nil {
			c.opts.Metrics.LowerPriorityMaster(ev.Name)
		}
		c.log.Warn("another MASTER is on the link with a lower priority: both directors held the VIPs (a split brain ending, or the peer just came back); keepalived forces a new election",
			"instance", ev.Name, "priority", ev.Priority)
		c.notice(Notice{Time: now, Instance: ev.Name, From: "MASTER", To: "MASTER", Reason: "another MASTER with a lower priority is on the link (split brain)"})
	}
	from := in.State
	in.Priority = ev.Priority
	if from == ev.State {
		if c.opts.Metrics != nil {
			c.opts.Metrics.Instance(ev.Name, in.State.String(), in.Priority)
		}
		if ev.Kind == PriorityChange {
			c.log.Info("VRRP priority changed", "instance", ev.Name, "state", ev.State, "priority", ev.Priority)
		}
		return false
	}
	in.State, in.Since = ev.State, now
	if c.opts.Metrics != nil {
		c.opts.Metrics.Instance(ev.Name, in.State.String(), in.Priority)
		c.opts.Metrics.Transition(ev.Name, in.State.String())
	}
	level := slog.LevelInfo
	if ev.State == Fault || ev.State == Stop {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "VRRP state changed", "instance", ev.Name, "from", from, "to", ev.State,
		"priority", ev.Priority)
	c.notice(Notice{Time: now, Instance: ev.Name, From: from.String(), To: ev.State.String(),
		Reason: fmt.Sprintf("keepalived reports %s, priority %d", ev.State, ev.Priority)})
	role := c.role()
	changed := role != c.st.Role
	c.st.Role = role
	return changed
}

// role is the director's role from its instances' states.
func (c *Controller) role() State {
	var first State
	same := true
	for i, in := range c.st.Instances {
		if in.State == Master {
			return Master
		}
		if i == 0 {
			first = in.State
		} else if in.State != first {
			same = false
		}
	}
	if same {
		return first
	}
	return Backup
}

// syncDaemons reads the running daemons back and starts or stops what
// differs from what the role wants.
func (c *Controller) syncDaemons(ctx context.Context) {
	s := c.opts.Sync
	if s == nil || c.opts.Config.Sync.Mode == config.SyncOff {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.FileTimeout)
	defer cancel()
	running, err := s.SyncDaemons(ctx)
	if err != nil {
		c.syncFailed("read", err)
		return
	}
	want := syncdaemon.Want(c.opts.Config.Sync, c.st.Role == Master)
	changes := syncdaemon.Plan(want, running)
	var failed error
	for _, state := range changes.Stop {
		if err := s.StopSyncDaemon(ctx, state); err != nil {
			c.syncFailed("stop", err)
			failed = err
			continue
		}
		c.log.Info("sync daemon stopped", "state", state, "role", c.st.Role)
	}
	for _, d := range changes.Start {
		if err := s.StartSyncDaemon(ctx, d); err != nil {
			c.syncFailed("start", err)
			failed = err
			continue
		}
		c.log.Info("sync daemon started", "daemon", d.String(), "role", c.st.Role)
	}
	if !changes.Empty() {
		if running, err = s.SyncDaemons(ctx); err != nil {
			c.syncFailed("read", err)
			return
		}
	}
	c.st.SyncDaemons = running
	if c.opts.Metrics != nil {
		var m, b bool
		for _, d := range running {
			m = m || d.State == ipvs.SyncMaster
			b = b || d.State == ipvs.SyncBackup
		}
		c.opts.Metrics.SyncRunning(m, b)
	}
	if failed == nil {
		c.st.SyncError = ""
		c.clearOnce("sync", "sync daemons as wanted again")
	}
}

func (c *Controller) syncFailed(op string, err error) {
	c.st.SyncError = err.Error()
	if c.opts.Metrics != nil {
		c.opts.Metrics.SyncError(op)
	}
	c.logOnce("sync", "sync daemon command failed; connections may not survive a takeover", err)
}

func (c *Controller) fifoReport(r fifoReport) {
	switch {
	case r.Ignored != "":
		if c.opts.Metrics != nil {
			c.opts.Metrics.UnknownLine()
		}
		if len(c.ignored) < 100 && !c.ignored[r.Ignored] {
			c.ignored[r.Ignored] = true
			c.log.Warn("ignoring a notify_fifo line that is not a keepalived VRRP event (each such line is logged once)", "line", r.Ignored)
		}
	case r.Open:
		c.st.FIFOOpen, c.st.FIFOError = true, ""
		if c.opts.Metrics != nil {
			c.opts.Metrics.FIFOOpen(true)
		}
		c.log.Info("reading keepalived's notify_fifo", "path", c.st.NotifyFIFO)
		delete(c.lastErr, "fifo")
	default:
		c.st.FIFOOpen = false
		if c.opts.Metrics != nil {
			c.opts.Metrics.FIFOOpen(false)
		}
		if r.Err != nil {
			c.st.FIFOError = r.Err.Error()
			c.logOnce("fifo", "keepalived's notify_fifo is not readable; the director does not learn role changes (retrying)", r.Err)
		}
	}
}

// logOnce logs err under cause unless the same error was the last one logged for it.
func (c *Controller) logOnce(cause, msg string, err error) {
	if c.lastErr[cause] == err.Error() {
		return
	}
	c.lastErr[cause] = err.Error()
	c.log.Error(msg, "err", err)
}

// clearOnce logs msg when cause had failed before.
func (c *Controller) clearOnce(cause, msg string, args ...any) {
	if _, ok := c.lastErr[cause]; ok {
		delete(c.lastErr, cause)
		c.log.Info(msg, args...)
	}
}

func (c *Controller) notice(n Notice) {
	if c.opts.OnNotice != nil {
		c.opts.OnNotice(n)
	}
}
