package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/ipvs"
)

// Run adopts what the kernel holds, starts the checks and keeps the kernel
// table right until ctx ends; then it stops the checks and, when the config
// says on_shutdown = "flush", removes the services it manages. Run is the
// one goroutine that owns the engine's state.
func (e *Engine) Run(ctx context.Context) error {
	e.turned()
	actual, err := e.readTable(ctx)
	if err != nil {
		return fmt.Errorf("reading the IPVS table at start: %w", err)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	writer := e.startStateWriter()
	defer writer.stop()
	defer e.waitFiles()

	e.actual = actual
	if e.cfg.Director.FastChecks {
		// Plain TCP and HTTP checks run on event loops (probe_fast.go),
		// as many as the config's checks a second want (sizeLoops, at
		// each adoption, loops.go): one loop is one thread, and on a
		// busy machine one thread gets one thread's share of the CPU.
		// Closed after every runner has stopped (deferred before them).
		defer func() {
			for _, l := range e.fast {
				l.Close()
			}
		}()
		// One to start with; sizeLoops adds what the config's rate wants.
		l, err := checks.NewFastLoop()
		if err != nil {
			return err
		}
		e.fast = append(e.fast, l)
	}
	fresh, err := e.buildProbers(e.cfg)
	if err != nil {
		return err
	}
	defer e.closeDataPath()
	if err := e.syncDataPath(ctx, e.cfg); err != nil {
		return fmt.Errorf("setting up data-path checks: %w", err)
	}
	now := time.Now()
	e.loadState(ctx, now) // API overrides and managed services of the last run (files.go)
	e.adoptConfig(e.cfg, fresh, probeCtx)
	seedRamps(e.ramps, e.cfg, desired.Index(e.actual), func(config.ServerID) bool { return true }, now)
	e.retireRecorded(now) // services of the last run the config dropped
	e.strayDrains(now)
	e.recordOwned(ctx) // before the first reconcile creates any
	defer e.stopAllProbes()

	resync := time.NewTicker(e.cfg.Director.ResyncInterval)
	defer resync.Stop()
	retry := newBackoff(time.Second, e.cfg.Director.ResyncInterval)
	defer retry.stop()
	// The next step of a slow start; stopped while nothing ramps.
	rampStep := time.NewTimer(time.Hour)
	rampStep.Stop()
	defer rampStep.Stop()

	reconcile := func(trigger string) {
		if e.reconcile(ctx, trigger) {
			retry.reset()
		} else {
			retry.schedule()
		}
		e.announceVIPs(time.Now())
		if next, ok := e.reportRamps(time.Now()); ok {
			rampStep.Reset(next)
		} else {
			rampStep.Stop()
		}
	}
	// Maintenance files before the first reconcile, read while we wait.
	e.applyMaintenance(e.maint.readNow(ctx, e), time.Now())
	e.adminTick(time.Now())
	reconcile("start")
	adminTick := time.NewTicker(e.opts.AdminPoll)
	defer adminTick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	settling := false
	e.running.Store(true)
	defer func() {
		e.running.Store(false)
		e.publishSnapshot(time.Now())
	}()
	close(e.started)
	drainTick := time.NewTicker(e.opts.DrainPoll)
	defer drainTick.Stop()

	for {
		e.turned()
		select {
		case <-ctx.Done():
			e.shutdown()
			return nil
		case <-e.results.ready:
			// Every result waiting, in one go: a burst of transitions
			// costs one reconcile, not one each.
			changed := e.observeAll(e.results.take())
			if e.evaluatePanics(time.Now()) {
				changed = true
				e.built.forget() // a panic's start or end holds servers of any virtual server
			}
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
		case <-rampStep.C:
			reconcile(rampTrigger)
		case <-resync.C:
			reconcile("resync")
		case <-retry.C():
			reconcile("retry")
		case <-drainTick.C:
			if e.pollDrains(ctx) {
				reconcile("drain")
			}
		case reply := <-e.pings:
			close(reply)
		case <-adminTick.C:
			e.releaseUnread(time.Now())
			e.built.forget()
			e.maint.start(ctx, e) // read in the background; the result comes back as maintRead
			if e.adminTick(time.Now()) {
				reconcile("admin")
			} else {
				e.announceVIPs(time.Now()) // the announcers' heartbeat, and hold-downs ending
			}
		case read := <-e.maint.done:
			e.built.forget()
			e.maint.inFlight = false
			if e.applyMaintenance(read, time.Now()) {
				reconcile("admin")
			}
		case req := <-e.requests:
			e.built.forget()
			v, changed, err := req.do(ctx, time.Now())
			e.changed(true)
			if changed {
				reconcile("admin")
			}
			req.reply <- reply{v, err}
		case req := <-e.reloads:
			e.built.forget()
			err := e.applyReload(ctx, req.cfg, probeCtx)
			req.reply <- err
			if err == nil {
				resync.Reset(req.cfg.Director.ResyncInterval)
				retry.max = req.cfg.Director.ResyncInterval
				reconcile("reload")
			}
		case <-e.publish:
			e.publishSnapshot(time.Now())
		}
	}
}

// turned records that the loop is alive, for Ready.
func (e *Engine) turned() { e.lastTurn.Store(time.Now().UnixNano()) }

func (e *Engine) readTable(ctx context.Context) ([]ipvs.ServiceState, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	return e.opts.Table.Services(ctx)
}

func (e *Engine) stopAllProbes() {
	for key, p := range e.probes {
		p.stop()
		delete(e.probes, key)
	}
}

// shutdown applies on_shutdown. The run context is over, so it gets its own deadline.
func (e *Engine) shutdown() {
	if e.cfg.Director.OnShutdown != "flush" {
		e.log.Info("stopping; leaving the IPVS table as it is (on_shutdown = keep)")
		return
	}
	keys := slices.Collect(maps.Keys(e.managed))
	keys = append(keys, slices.Collect(maps.Keys(e.retired))...)
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
		e.recordFlushed(ctx) // nothing left to answer for
	}
}
