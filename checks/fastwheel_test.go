package checks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFastTimers drives the loop's timers as checks on the loop do,
// on a simulated clock a grain a turn: each runner's next run fires and is
// armed again an interval later (half every 2 s, half every 5 s: at 40,000
// that is the 14,000 checks a second of the capacity mix), and each run
// arms its deadline (1 s), stopped a grain later when the run ends (most
// checks answer well inside their timeout). The loop also looks for its
// next timer once a turn, as wait does. An op is one check: a fire and its
// re-arm, a deadline armed and stopped.
func BenchmarkFastTimers(b *testing.B) {
	for _, n := range []int{1000, 40000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchmarkFastTimers(b, n) })
	}
}

func benchmarkFastTimers(b *testing.B, n int) {
	type runner struct {
		next, deadline FastTimer
		interval       time.Duration
	}
	l := &FastLoop{epoch: time.Now()}
	now := l.epoch
	rng := rand.New(rand.NewPCG(1, 2))
	runners := make([]runner, n)
	var started, ending []*FastTimer // the deadlines armed this turn, and last turn's
	fired := 0
	for i := range runners {
		r := &runners[i]
		r.interval = 2 * time.Second
		if i%2 == 1 {
			r.interval = 5 * time.Second
		}
		r.next.Init(func() {
			fired++
			l.Arm(&r.next, now.Add(r.interval))
			l.Arm(&r.deadline, now.Add(time.Second))
			started = append(started, &r.deadline)
		})
		r.deadline.Init(func() { b.Fatal("a deadline stopped a grain after it was armed fired") })
		l.Arm(&r.next, now.Add(time.Duration(rng.Int64N(int64(r.interval)))))
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for fired < b.N {
		now = now.Add(timerGrain)
		l.nextTimer()
		l.fireTimers(now)
		for _, d := range ending {
			l.Stop(d)
		}
		ending, started = started, ending[:0]
	}
	// The process's CPU time too: on a machine shared with other work
	// the wall time of a single-threaded loop that allocates nothing
	// counts the time others had the core.
	b.ReportMetric(float64(processCPU()-cpu)/float64(fired), "cpu-ns/op")
}

// processCPU is the CPU time the process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// wheelStep is one step of a timer wheel test: arm a timer at a time (or
// move it there), stop it, or turn the loop at a time and see what fired.
type wheelStep struct {
	op       string        // "arm", "stop", "turn"
	name     string        // the timer armed or stopped
	at       time.Duration // after the loop's epoch: arm's time, turn's now
	want     []string      // turn: what fired, in order
	anyOrder bool          // turn: want in any order (one grain, or overdue)
	count    int           // turn: how many fired, want unset
	budget   int           // turn: fire about this many (turnSome); 0: all due
	more     bool          // turn with a budget: due timers left
}

func turnSome(at time.Duration, budget int, more bool, want ...string) wheelStep {
	return wheelStep{op: "turn", at: at, want: want, budget: budget, more: more}
}

func arm(name string, at time.Duration) wheelStep { return wheelStep{op: "arm", name: name, at: at} }
func stop(name string) wheelStep                  { return wheelStep{op: "stop", name: name} }
func turn(at time.Duration, want ...string) wheelStep {
	return wheelStep{op: "turn", at: at, want: want}
}
func turnAnyOrder(at time.Duration, want ...string) wheelStep {
	return wheelStep{op: "turn", at: at, want: want, anyOrder: true}
}

func TestTimerWheel(t *testing.T) {
	const ms = time.Millisecond
	span := wheelSlots * timerGrain // the near level's
	for _, tc := range []struct {
		name    string
		onFire  map[string]wheelStep // what a timer's function does besides saying it fired: arm or stop one
		onFirst map[string]wheelStep // the same, the first time only
		steps   []wheelStep
	}{
		{name: "in order of time", steps: []wheelStep{
			arm("c", 30*ms), arm("a", 10*ms), arm("b", 20*ms), turn(40*ms, "a", "b", "c"), turn(time.Second)}},
		{name: "not before its time, at the end of its grain", steps: []wheelStep{
			arm("a", 10*ms), turn(9 * ms), turn(11 * ms), turn(12*ms, "a"), turn(16 * ms)}},
		{name: "at exactly a slot boundary", steps: []wheelStep{
			arm("a", 8*ms), arm("b", 8*ms+1), turn(8*ms - 1), turn(8*ms, "a"), turn(12*ms - 1), turn(12*ms, "b")}},
		{name: "one grain, any order", steps: []wheelStep{
			arm("a", 5*ms), arm("b", 6*ms), arm("c", 8*ms), turnAnyOrder(8*ms, "a", "b", "c")}},
		{name: "re-armed earlier", steps: []wheelStep{
			arm("a", 100*ms), arm("a", 20*ms), turn(20*ms, "a"), turn(200 * ms)}},
		{name: "re-armed later", steps: []wheelStep{
			arm("a", 20*ms), arm("a", 100*ms), turn(50 * ms), turn(100*ms, "a"), turn(time.Second)}},
		{name: "re-armed from near to far and back", steps: []wheelStep{
			arm("a", 20*ms), arm("a", time.Hour), turn(2 * span), arm("a", 2*span+8*ms), turn(2*span+8*ms, "a"), turn(2 * time.Hour)}},
		{name: "stopped", steps: []wheelStep{
			arm("a", 20*ms), arm("b", 20*ms), stop("a"), turn(time.Second, "b"), stop("a"), stop("never"), stop("b"), turn(2 * time.Second)}},
		{name: "stopped far", steps: []wheelStep{
			arm("a", time.Hour), arm("b", 30*time.Hour), stop("a"), stop("b"), turn(40 * time.Hour)}},
		{name: "stopping a fired timer disturbs none", steps: []wheelStep{
			arm("a", 4*ms), arm("b", 8*ms), turn(4*ms, "a"), stop("a"), turn(8*ms, "b")}},
		{name: "armed in the past: the next turn", steps: []wheelStep{
			turn(100 * ms), arm("a", 50*ms), arm("b", 100*ms), arm("c", -time.Hour), turnAnyOrder(100*ms, "a", "b", "c")}},
		{name: "armed in the grain the last turn passed", steps: []wheelStep{
			turn(101 * ms), arm("a", 102*ms), turn(103 * ms), turn(104*ms, "a")}},
		{name: "armed from a timer's function",
			onFire: map[string]wheelStep{"a": arm("b", 30*ms)},
			steps:  []wheelStep{arm("a", 10*ms), turn(12*ms, "a"), turn(28 * ms), turn(32*ms, "b")}},
		{name: "armed from a timer's function for a time passed: the next turn",
			onFire: map[string]wheelStep{"a": arm("b", 5*ms)},
			steps:  []wheelStep{arm("a", 10*ms), turn(12*ms, "a"), turn(12*ms, "b")}},
		{name: "armed from a timer's function for a time the turn passed: the next turn",
			onFire: map[string]wheelStep{"a": arm("b", 30*ms)},
			steps:  []wheelStep{arm("a", 10*ms), turn(40*ms, "a"), turn(40*ms, "b")}},
		{name: "re-arming itself for a time passed fires once a turn",
			onFire: map[string]wheelStep{"a": arm("a", 10*ms)},
			steps:  []wheelStep{arm("a", 10*ms), turn(12*ms, "a"), turn(12*ms, "a"), turn(50*ms, "a"), stop("a"), turn(time.Hour)}},
		{name: "re-arming itself a wheel's span later",
			onFirst: map[string]wheelStep{"a": arm("a", span+12*ms)},
			steps:   []wheelStep{arm("a", 12*ms), turn(12*ms, "a"), turn(span + 8*ms), turn(span+12*ms, "a")}},
		{name: "a timer stops one of its own grain before it fires",
			onFire: map[string]wheelStep{"a": stop("b"), "b": stop("a")},
			steps:  []wheelStep{arm("a", 10*ms), arm("b", 10*ms), {op: "turn", at: 12 * ms, count: 1}, turn(time.Hour)}},
		{name: "a timer moves one of its own grain before it fires",
			onFirst: map[string]wheelStep{"a": arm("b", 40*ms), "b": arm("a", 40*ms)},
			steps: []wheelStep{arm("a", 10*ms), arm("b", 10*ms), {op: "turn", at: 12 * ms, count: 1}, turn(39 * ms),
				{op: "turn", at: 40 * ms, count: 1}, {op: "turn", at: 40 * ms, count: 1}, turn(time.Hour)}},
		{name: "far, in order", steps: []wheelStep{
			arm("d", 40*time.Hour), arm("c", 2*time.Hour), arm("b", span+4*ms), arm("a", span),
			turn(span - 4*ms), turn(span, "a"), turn(span+4*ms, "b"),
			turn(2*time.Hour - 4*ms), turn(2*time.Hour, "c"), turn(40*time.Hour - 4*ms), turn(40*time.Hour, "d")}},
		{name: "a budget stops after the grain that reaches it, the rest in order at the next turns", steps: []wheelStep{
			arm("a", 4*ms), arm("b", 8*ms), arm("c", 12*ms), arm("d", 60*ms),
			turnSome(40*ms, 1, true, "a"), turnSome(40*ms, 1, true, "b"), turnSome(40*ms, 1, false, "c"),
			turnSome(40*ms, 1, false), turn(60*ms, "d")}},
		{name: "overdue timers fire before a budget's grains", steps: []wheelStep{
			arm("a", 4*ms), arm("b", 8*ms), turn(1 * ms), arm("z", 0),
			turnSome(20*ms, 1, true, "z"), turnSome(20*ms, 1, true, "a"), turnSome(20*ms, 5, false, "b")}},
		{name: "a whole grain fires however far past the budget", steps: []wheelStep{
			arm("a", 4*ms), arm("b", 4*ms), arm("c", 8*ms),
			{op: "turn", at: 20 * ms, count: 2, budget: 1, more: true}, turnSome(20*ms, 1, false, "c")}},
		{name: "far, found after a long park", steps: []wheelStep{
			arm("a", 3*time.Hour), arm("b", 3*time.Hour+1), arm("c", 50*time.Hour), turn(100*time.Hour, "a", "b", "c")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &FastLoop{epoch: time.Now()}
			timers := map[string]*FastTimer{}
			var fired []string
			firsts := map[string]bool{}
			var timer func(string) *FastTimer
			do := func(st wheelStep) {
				switch st.op {
				case "arm":
					l.Arm(timer(st.name), l.epoch.Add(st.at))
				case "stop":
					l.Stop(timer(st.name))
				}
			}
			timer = func(name string) *FastTimer {
				if timers[name] == nil {
					tm := &FastTimer{}
					tm.Init(func() {
						fired = append(fired, name)
						do(tc.onFire[name])
						if !firsts[name] {
							firsts[name] = true
							do(tc.onFirst[name])
						}
					})
					timers[name] = tm
				}
				return timers[name]
			}
			for i, st := range tc.steps {
				if st.op != "turn" {
					do(st)
					continue
				}
				fired = nil
				if st.budget > 0 {
					if more := l.timers.turnSome(l.since(l.epoch.Add(st.at)), st.budget); more != st.more {
						t.Errorf("step %d, turn at %v with budget %d: more %v, want %v", i, st.at, st.budget, more, st.more)
					}
				} else {
					l.fireTimers(l.epoch.Add(st.at))
				}
				got, want := slices.Clone(fired), slices.Clone(st.want)
				if st.anyOrder {
					slices.Sort(got)
					slices.Sort(want)
				}
				switch {
				case st.count > 0 && len(got) != st.count:
					t.Errorf("step %d, turn at %v: fired %v, want %d", i, st.at, got, st.count)
				case st.count == 0 && !slices.Equal(got, want):
					t.Errorf("step %d, turn at %v: fired %v, want %v", i, st.at, got, want)
				}
			}
			for name, tm := range timers {
				if tm.pprev != nil {
					t.Errorf("%s still pending at the end", name)
				}
			}
			if l.timers.pending != 0 {
				t.Errorf("%d pending at the end", l.timers.pending)
			}
		})
	}
}

// The wheel against a plain reference, the pending timers and their
// times, on random arms, moves and stops (from outside and from timers'
// functions), over times from the past to days ahead, turned at random
// times and at the times nextTimer gives, as the loop does, until the
// wheel has turned many times round both levels. The reference follows
// the wheel: each timer that fires must be pending and due; after each
// turn none that was due by it may still be pending; nextTimer is never
// after the first due.
func TestTimerWheelAgainstReference(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { wheelAgainstReference(t, seed) })
	}
}

func wheelAgainstReference(t *testing.T, seed uint64) {
	const n = 300
	rng := rand.New(rand.NewPCG(seed, 17))
	l := &FastLoop{epoch: time.Now()}
	var now, last time.Duration // the turn's time, the one before (after the epoch)
	// A duration ahead: a grain or two, seconds (the near level), or
	// minutes to days (the far level and beyond).
	ahead := func() time.Duration {
		switch r := rng.IntN(20); {
		case r < 8:
			return time.Duration(rng.Int64N(int64(3 * timerGrain)))
		case r < 16:
			return time.Duration(rng.Int64N(int64(20 * time.Second)))
		case r < 19:
			return time.Duration(rng.Int64N(int64(2 * time.Hour)))
		}
		return time.Duration(rng.Int64N(int64(60 * time.Hour)))
	}
	type refTimer struct {
		pending   bool
		at        time.Duration
		overdue   bool // armed for a time the last turn (or the one under way) had passed: due at the next turn
		armedLate bool // during the turn under way
	}
	ref := make([]refTimer, n)
	timers := make([]FastTimer, n)
	turning := false
	type firing struct {
		i       int
		at      time.Duration
		overdue bool
	}
	var fired []firing
	armRef := func(i int, at time.Duration) {
		l.Arm(&timers[i], l.epoch.Add(at))
		ref[i] = refTimer{pending: true, at: at, overdue: at <= now, armedLate: turning}
	}
	stopRef := func(i int) {
		l.Stop(&timers[i])
		ref[i].pending = false
	}
	act := func() { // what a timer's function, or the test between turns, does
		i := rng.IntN(n)
		switch r := rng.IntN(10); {
		case r < 6:
			armRef(i, now+ahead())
		case r < 7:
			armRef(i, now-ahead()) // passed
		default:
			stopRef(i)
		}
	}
	for i := range timers {
		timers[i].Init(func() {
			r := ref[i]
			if !r.pending {
				t.Fatalf("turn at %v: timer %d fired, not pending", now, i)
			}
			if r.at > now {
				t.Fatalf("turn at %v: timer %d fired before its time %v", now, i, r.at)
			}
			ref[i].pending = false
			fired = append(fired, firing{i, r.at, r.overdue})
			for range rng.IntN(3) {
				act()
			}
		})
	}
	grainEnd := func(at time.Duration) time.Duration { return time.Duration(dueGrain(int64(at))) * timerGrain }
	for range 20000 {
		for range rng.IntN(4) {
			act()
		}
		// nextTimer: false with none pending; never after the first one's
		// grain end, nor after now when one is overdue.
		next, ok := l.nextTimer()
		first, any := time.Duration(math.MaxInt64), false
		for _, r := range ref {
			switch {
			case r.pending && r.overdue:
				any, first = true, min(first, now)
			case r.pending:
				any, first = true, min(first, grainEnd(r.at))
			}
		}
		if ok != any || (ok && next.Sub(l.epoch) > first) {
			t.Fatalf("at %v: nextTimer %v, %v; want by %v, %v", now, next.Sub(l.epoch), ok, first, any)
		}
		last = now
		switch r := rng.IntN(10); {
		case r < 5 && ok:
			now = max(now, next.Sub(l.epoch)) // as the loop wakes
		case r < 7:
			// now stays: a turn woken by a socket in the same instant
		default:
			now += ahead()
		}
		for i := range ref {
			ref[i].armedLate = false
		}
		fired = fired[:0]
		turning = true
		l.fireTimers(l.epoch.Add(now))
		turning = false
		// Those overdue first (in any order), then the wheel's in the
		// order of their grains.
		for j := 1; j < len(fired); j++ {
			a, b := fired[j-1].at, fired[j].at
			if !fired[j-1].overdue && (fired[j].overdue || dueGrain(int64(a)) > dueGrain(int64(b))) {
				t.Fatalf("turn at %v (last %v): timer %d (due %v) fired before %d (due %v)", now, last, fired[j-1].i, a, fired[j].i, b)
			}
		}
		for i, r := range ref {
			if r.pending && !r.armedLate && (r.overdue || grainEnd(r.at) <= now) {
				t.Fatalf("turn at %v (last %v): timer %d due at %v not fired", now, last, i, r.at)
			}
		}
	}
	count := 0
	for _, r := range ref {
		if r.pending {
			count++
		}
	}
	if l.timers.pending != count {
		t.Errorf("the wheel counts %d pending, the reference %d", l.timers.pending, count)
	}
	if now < 100*time.Hour {
		t.Errorf("the wheel turned only to %v", now)
	}
}

// Turned as the loop turns it, at the times nextTimer gives, a wheel
// fires each timer at the end of its grain, near or far, and wakes only a
// few times more than it fires (to file a far slot's timers near): it
// never scans the slots between.
func TestTimerWheelWakesAtTheEndOfEachGrain(t *testing.T) {
	l := &FastLoop{epoch: time.Now()}
	ats := []time.Duration{3 * time.Second, 20*time.Second + 1, 5 * time.Minute, 2*time.Hour + 3, 30 * time.Hour, 40*time.Hour + 5}
	firedAt := make([]time.Duration, len(ats))
	var now time.Duration
	timers := make([]FastTimer, len(ats))
	for i, at := range ats {
		timers[i].Init(func() { firedAt[i] = now })
		l.Arm(&timers[i], l.epoch.Add(at))
	}
	turns := 0
	for next, ok := l.nextTimer(); ok; next, ok = l.nextTimer() {
		if turns++; turns > 3*len(ats) {
			t.Fatalf("%d turns for %d timers", turns, len(ats))
		}
		now = next.Sub(l.epoch)
		l.fireTimers(next)
	}
	for i, at := range ats {
		if want := time.Duration(dueGrain(int64(at))) * timerGrain; firedAt[i] != want {
			t.Errorf("timer due at %v fired at %v, want %v", at, firedAt[i], want)
		}
	}
	t.Logf("%d timers, %d turns", len(ats), turns)
}
