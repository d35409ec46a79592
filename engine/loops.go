package engine

import (
	"math"
	"runtime"
	"time"

	"github.com/lvsdirector/director/checks"
)

// Threads for the checks on the event loops. One loop per P the runtime
// uses is enough while the loops have time to spare: at 7,000 loop checks
// a second on 2 cores both keep every start within 100 ms. Beyond that a
// burst of the engine's own (the resync's two reads of a 40,000-destination
// table, the collection its garbage starts) holds one of the two Ps for a
// few hundred milliseconds, and the loops, which need most of a P each,
// fall seconds behind: 7,000-24,000 late starts after every resync at
// 40,000 real servers (docs/performance.md). With twice the Ps and loops
// the kernel shares the cores among the threads instead, and the loops
// keep their share. Not below that rate: idle Ps cost CPU looking for
// work (2.1-3.0x the C floor at 1,000 checks a second with 8 of them,
// against 1.5-1.6x with 2).
const busyLoopChecksPerProc = 4000

// checksPerLoop is the rate below which one more loop is not worth its
// wake-ups: a loop wakes once a timer grain (4 ms) with work due, and at
// 1,000 checks a second one loop wakes half as often as two, each wake-up
// starting twice the checks (a wake-up costs more than the connect it
// starts; docs/performance.md). A loop at 2,000 a second uses a fifth of
// a core.
const checksPerLoop = 2000

// quietChecksPerSec is the load below which the director runs on one P
// and one loop: loop checks a second, plus usualCheckCost times those on
// the usual path. With a second P idle, every result the loop hands to
// the engine (and every wake-up of the loop) makes the runtime wake a
// thread to look for work there, which then sleeps again: at 1,000 HTTP
// checks a second 0.15-0.20 CPU s per 1,000 checks with two Ps, against
// 0.12-0.16 with one, 0.9-1.4x the C floor against 1.3-2.0x
// (docs/performance.md). One P at that load is a fifth of a core busy; a
// burst of other work (a reload, a scrape) shares it in the runtime's
// 10 ms slices, well inside the 100 ms a start may lag.
const quietChecksPerSec = 2000

// usualCheckCost is what a check on the usual path (a goroutine, Go's
// dialer, a context and runtime timer per run) costs against one on a
// loop: about three times (docs/performance.md).
const usualCheckCost = 3

// loopProcs is how many Ps the director wants for onLoops checks a second
// on its loops and usual ones on the usual path, and how many loops: base
// being the runtime's own choice (the CPUs it may use).
func loopProcs(base int, onLoops, usual float64) (procs, loops int) {
	if base < 1 {
		base = 1
	}
	if onLoops+usualCheckCost*usual < quietChecksPerSec {
		return 1, 1
	}
	if onLoops >= float64(busyLoopChecksPerProc*base) {
		return 2 * base, 2 * base
	}
	loops = int(math.Ceil(onLoops / checksPerLoop))
	return base, min(max(loops, 1), base)
}

// checkRates is how many checks a second runners start on the loops and
// on the usual path, fresh ones included: the planned rate, one run an
// interval each.
func (e *Engine) checkRates(fresh map[string]*probeRunner) (onLoops, usual float64) {
	add := func(p *probeRunner) {
		if p.prober == nil || p.spec.Interval <= 0 {
			return
		}
		perSec := float64(time.Second) / float64(p.spec.Interval)
		if checks.RunsOnLoop(p.prober) {
			onLoops += perSec
		} else {
			usual += perSec
		}
	}
	for key, p := range e.probes {
		if p.feeds != nil && fresh[key] == nil {
			add(p)
		}
	}
	for _, p := range fresh {
		add(p)
	}
	return onLoops, usual
}

// sizeLoops sets the Ps (Options.SetProcs) and the loops fresh runners
// are bound to (loopsInUse) to what onLoops checks a second on them and
// usual ones on the usual path want, before runners are bound to loops.
// It never closes a loop: one without runners waits without cost, and
// runners stay on the loop they were bound to. Run closes them all.
func (e *Engine) sizeLoops(onLoops, usual float64) {
	if len(e.fast) == 0 {
		return // fast_checks off
	}
	procs, loops := loopProcs(e.opts.BaseProcs, onLoops, usual)
	if e.opts.SetProcs == nil {
		loops = max(loops, runtime.GOMAXPROCS(0)) // the operator's GOMAXPROCS: a loop each
	} else if procs != e.procs {
		e.opts.SetProcs(procs)
		e.log.Info("fast checks: threads for the event loops", "loop_checks_per_second", int(onLoops), "usual_checks_per_second", int(usual),
			"procs", procs, "loops", loops,
			"why", "one below 2,000 checks a second, twice the CPUs from 4,000 loop checks a second per CPU; GOMAXPROCS in the environment overrides")
		e.procs = procs
	}
	for len(e.fast) < loops {
		l, err := checks.NewFastLoop()
		if err != nil {
			e.log.Warn("fast checks: could not add an event loop; the checks stay on the loops there are", "loops", len(e.fast), "err", err)
			break
		}
		e.fast = append(e.fast, l)
	}
	// Fewer loops than there are (a quiet config after a busy one): the
	// fresh runners go to the first ones, so that the loops' wake-ups
	// follow the rate down too.
	e.loopsInUse = min(loops, len(e.fast))
}
