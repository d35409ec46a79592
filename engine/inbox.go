package engine

import (
	"context"
	"github.com/lvsdirector/director/metrics"
	"sync"
)

// inbox is where finished checks leave their results for the engine loop.
// A runner appends under a mutex and goes on; the loop, woken by ready,
// takes everything waiting in one go. At 20,000 servers a channel send per
// result meant one wake-up of the loop per result and, once the channel
// was full, thousands of runners each parked on its own send; here a
// burst of results costs the loop one wake-up and one reconcile.
//
// Results of one runner keep their order: a runner hands over one result
// at a time and the loop takes them in the order they were put.
type inbox struct {
	mu      sync.Mutex
	pending []probeResult
	spare   []probeResult // the batch the loop took last, reused as pending's storage
	// limit bounds pending: with the loop stuck (a kernel call hanging up
	// to the reconcile timeout), runners wait rather than let results pile
	// up without end.
	limit int
	// room, when not nil, is closed by the next take: runners wait on it
	// while pending is at limit.
	room  chan struct{}
	ready chan struct{} // holds a token while pending is not empty and the loop has not been told
	// sched is where the runners that put results here count their
	// starts, lags and skipped runs: one for all of them, here rather
	// than in each runner (8 bytes a runner, which kept the runner in the
	// 352-byte size class: TestRunnerIs352Bytes).
	sched *metrics.Schedule
}

// inboxLimit is how many results may wait for the loop: a few seconds of
// results at 20,000 servers, about 4 MB.
const inboxLimit = 1 << 15

// maxSpare is the largest batch whose storage is kept for the next one;
// a larger one (a start-up burst) is left to the garbage collector.
const maxSpare = 4096

func newInbox(limit int, sched *metrics.Schedule) *inbox {
	return &inbox{limit: limit, ready: make(chan struct{}, 1), sched: sched}
}

// tryPut hands r over unless the inbox is full, and reports whether it
// did. It never waits: the fast loop calls it on its own goroutine.
func (in *inbox) tryPut(r probeResult) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.pending) >= in.limit {
		return false
	}
	in.pending = append(in.pending, r)
	if len(in.pending) == 1 {
		// The first result since the loop's last take wakes it; the
		// others join the batch it will take.
		select {
		case in.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// put hands r over, waiting while the inbox is full until the loop takes
// a batch; false when ctx ended first (the result then belongs to nobody).
func (in *inbox) put(ctx context.Context, r probeResult) bool {
	for {
		if in.tryPut(r) {
			return true
		}
		in.mu.Lock()
		if len(in.pending) < in.limit { // taken between the two locks
			in.mu.Unlock()
			continue
		}
		if in.room == nil {
			in.room = make(chan struct{})
		}
		room := in.room
		in.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}

// take returns every result waiting, oldest first, and empties the inbox.
// Only the engine loop calls it, after a token from ready; the batch is
// valid until its next take.
func (in *inbox) take() []probeResult {
	in.mu.Lock()
	defer in.mu.Unlock()
	batch := in.pending
	spare := in.spare
	clear(spare) // the previous batch is done with: drop its strings
	if cap(spare) > maxSpare {
		spare = nil
	}
	in.pending, in.spare = spare[:0], batch
	if in.room != nil {
		close(in.room)
		in.room = nil
	}
	return batch
}
