package checks

import (
	"fmt"
	"math/rand/v2"
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
	for fired < b.N {
		now = now.Add(timerGrain)
		l.nextTimer()
		l.fireTimers(now)
		for _, d := range ending {
			l.Stop(d)
		}
		ending, started = started, ending[:0]
	}
}
