package engine

import (
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

// loopProcs is how many Ps (and loops) the director wants for perSec
// checks a second on its loops, base being the runtime's own choice
// (the CPUs it may use).
func loopProcs(base int, perSec float64) int {
	if base < 1 {
		base = 1
	}
	if perSec >= float64(busyLoopChecksPerProc*base) {
		return 2 * base
	}
	return base
}

// loopRate is how many checks a second runners on the loops start, fresh
// ones included: the planned rate, one run an interval each.
func (e *Engine) loopRate(fresh map[string]*probeRunner) float64 {
	if len(e.fast) == 0 {
		return 0
	}
	rate := 0.0
	add := func(p *probeRunner) {
		if p.spec.Interval > 0 && e.fast[0].Supports(p.prober) {
			rate += float64(time.Second) / float64(p.spec.Interval)
		}
	}
	for key, p := range e.probes {
		if p.feeds != nil && fresh[key] == nil && p.prober != nil {
			add(p)
		}
	}
	for _, p := range fresh {
		if p.prober != nil {
			add(p)
		}
	}
	return rate
}

// sizeLoops sets the Ps (Options.SetProcs) and grows the loops to what
// rate checks a second on them want, before runners are bound to loops.
// It never closes a loop: one without runners waits without cost, and
// runners stay on the loop they were bound to. Run closes them all.
func (e *Engine) sizeLoops(rate float64) {
	if len(e.fast) == 0 || e.opts.SetProcs == nil {
		return
	}
	want := loopProcs(e.opts.BaseProcs, rate)
	if want != e.procs {
		e.opts.SetProcs(want)
		e.log.Info("fast checks: threads for the event loops", "checks_per_second", int(rate), "procs", want,
			"why", "twice the CPUs from 4,000 loop checks a second per CPU; GOMAXPROCS in the environment overrides")
		e.procs = want
	}
	for len(e.fast) < want {
		l, err := checks.NewFastLoop()
		if err != nil {
			e.log.Warn("fast checks: could not add an event loop; the checks stay on the loops there are", "loops", len(e.fast), "err", err)
			return
		}
		e.fast = append(e.fast, l)
	}
}
