package api

import (
	"context"
	"errors"
	"sync"
	"time"
)

// refreshFactor bounds the share of time a refreshed value spends being
// produced: a value that took d to produce is served for refreshFactor × d
// before it is produced again, so however many clients ask, refreshing it
// keeps at most one tenth of a core busy.
const refreshFactor = 10

// freshFor is how long a value that took cost to produce may be served
// before it is produced again: a multiple of its cost, never longer than
// maxAge. Cheap values (a small config) are produced for every request,
// costly ones (a 10,000-server status) every few seconds under load.
func freshFor(cost, maxAge time.Duration) time.Duration {
	return min(maxAge, refreshFactor*cost)
}

// errBusy: the request waited its turn to render a status and did not get
// one; it is answered 503 with Retry-After.
var errBusy = errors.New("too many status requests are being rendered; try again shortly")

// refresher keeps the latest value of something costly to produce (a
// kernel counter read, a rendered status) and produces it again only when
// it is older than freshFor allows. One load runs at a time: callers that
// arrive while it runs are served the previous value if there is one, or
// wait for the load.
type refresher[T any] struct {
	maxAge time.Duration
	// wait bounds how long a caller waits for a load in flight.
	wait time.Duration
	// load produces a new value; prev is the value being replaced (nil
	// the first time), which load may return again when nothing changed.
	load func(ctx context.Context, prev *stamped[T]) (T, error)

	mu          sync.Mutex
	cur         *stamped[T]
	inflight    chan struct{} // closed when the load in flight ends; nil when none runs
	staleBefore time.Time     // values whose load started before this are not served
}

// stamped is a value with when its load started and what the load took.
type stamped[T any] struct {
	val  T
	at   time.Time
	cost time.Duration
}

// usable: the value may be served, possibly while a new one loads: not
// invalidated, and valid by the caller's test (nil: any).
func (r *refresher[T]) usable(valid func(T) bool) bool {
	return r.cur != nil && r.cur.at.After(r.staleBefore) && (valid == nil || valid(r.cur.val))
}

// get returns a value fresh by freshFor, loading one when needed. valid,
// when not nil, tells a value that no longer describes what the caller
// sees (it is then loaded again at once).
func (r *refresher[T]) get(ctx context.Context, valid func(T) bool) (T, error) {
	var zero T
	var timeout <-chan time.Time
	r.mu.Lock()
	for {
		now := time.Now()
		if r.usable(valid) && now.Sub(r.cur.at) < freshFor(r.cur.cost, r.maxAge) {
			v := r.cur.val
			r.mu.Unlock()
			return v, nil
		}
		if r.inflight == nil {
			return r.loadLocked(ctx, now, valid)
		}
		if r.usable(valid) {
			// Another caller is producing the next value: this one is
			// served the last, a little older than freshFor allows.
			v := r.cur.val
			r.mu.Unlock()
			return v, nil
		}
		done := r.inflight
		r.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(r.wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-done:
		case <-timeout:
			return zero, errBusy
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		r.mu.Lock()
	}
}

// loadLocked runs a load as the one in flight. It is called with mu held
// and returns with it released.
func (r *refresher[T]) loadLocked(ctx context.Context, started time.Time, valid func(T) bool) (T, error) {
	done := make(chan struct{})
	r.inflight = done
	prev := r.cur
	if !r.usable(valid) {
		prev = nil
	}
	r.mu.Unlock()
	var v T
	err := errBusy
	defer func() { // also when load panics: waiters must not wait for ever
		r.mu.Lock()
		if err == nil {
			r.cur = &stamped[T]{val: v, at: started, cost: time.Since(started)}
		}
		r.inflight = nil
		close(done)
		r.mu.Unlock()
	}()
	v, err = r.load(ctx, prev)
	if errors.Is(err, errBusy) && prev != nil {
		// No render slot in time: the last value is better than a 503.
		return prev.val, nil
	}
	return v, err
}

// invalidate makes the next get load a new value: a value loaded before
// now is not served again.
func (r *refresher[T]) invalidate() {
	r.mu.Lock()
	r.staleBefore = time.Now()
	r.mu.Unlock()
}

// renderSlots bounds how many status renders run at once; a request that
// does not get a slot within wait is answered 503.
type renderSlots struct {
	slots chan struct{}
	wait  time.Duration
}

func newRenderSlots(n int, wait time.Duration) *renderSlots {
	return &renderSlots{slots: make(chan struct{}, n), wait: wait}
}

func (s *renderSlots) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *renderSlots) release() { <-s.slots }
