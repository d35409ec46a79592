// Package announcer carries the engine's announce decisions to the
// network: the embedded BGP speaker (bgp.go) and kernel routes for a
// routing daemon to redistribute (routetable.go). Each runs in a Runner,
// a goroutine of its own outside the engine loop: the loop hands over the
// full set of routes and returns at once; the Runner adds and deletes
// only what changed, so a reload that does not touch a VIP sends nothing,
// and a router that does not answer holds up nothing but the Runner.
package announcer

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/announce"
)

// Backend is where routes go.
type Backend interface {
	// Name names it in logs and metrics: "bgp", "route_table".
	Name() string
	// Add announces r, replacing any route for its prefix.
	Add(ctx context.Context, r announce.Route) error
	// Delete withdraws the route for p.
	Delete(ctx context.Context, p netip.Prefix) error
}

// Options tune a Runner.
type Options struct {
	Logger  *slog.Logger
	Metrics *metrics.Announce // nil: none
	// StuckAfter: when the engine hands nothing over for this long, its
	// loop is stuck and everything is withdrawn (until it turns again).
	StuckAfter time.Duration
	// OpTimeout bounds one add or delete; 5s when zero.
	OpTimeout time.Duration
	// Retry is how often failed adds and deletes are tried again and the
	// heartbeat is looked at; 1s when zero.
	Retry time.Duration
}

// Runner keeps one Backend holding the routes last handed over.
type Runner struct {
	b    Backend
	opts Options
	kick chan struct{}

	mu       sync.Mutex
	want     []announce.Route
	handed   time.Time // last hand-over; zero: none yet
	stopping string    // why everything is withdrawn for good; "" while running

	held atomic.Pointer[[]netip.Prefix] // what the backend holds, sorted
	done chan struct{}                  // closed when Run returns
}

// NewRunner returns a Runner for b; start it with Run.
func NewRunner(b Backend, opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OpTimeout == 0 {
		opts.OpTimeout = 5 * time.Second
	}
	if opts.Retry == 0 {
		opts.Retry = time.Second
	}
	if opts.StuckAfter == 0 {
		opts.StuckAfter = 30 * time.Second
	}
	r := &Runner{b: b, opts: opts, kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.held.Store(&[]netip.Prefix{})
	return r
}

// Announce hands over the routes to hold now. It never blocks.
func (r *Runner) Announce(routes []announce.Route) {
	r.mu.Lock()
	r.want, r.handed = routes, time.Now()
	r.mu.Unlock()
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Held lists the prefixes the backend holds now.
func (r *Runner) Held() []netip.Prefix { return *r.held.Load() }

// WithdrawAll withdraws every route for good (later hand-overs are
// ignored) and waits until the backend holds none, or ctx ends.
func (r *Runner) WithdrawAll(ctx context.Context, reason string) error {
	r.mu.Lock()
	if r.stopping == "" {
		r.stopping = reason
	}
	r.mu.Unlock()
	r.poke()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for len(r.Held()) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			return nil
		case <-t.C:
		}
	}
	return nil
}

// Run keeps the backend in step until ctx ends, then withdraws what it
// holds (within OpTimeout).
func (r *Runner) Run(ctx context.Context) {
	defer close(r.done)
	have := map[netip.Prefix]announce.Route{}
	tick := time.NewTicker(r.opts.Retry)
	defer tick.Stop()
	var s syncer
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), r.opts.OpTimeout)
			r.sync(cctx, &s, have, nil)
			cancel()
			return
		case <-r.kick:
		case <-tick.C:
		}
		r.sync(ctx, &s, have, r.target(&s, time.Now()))
	}
}

// syncer is what Run remembers between passes, for logging.
type syncer struct {
	stuck     bool
	stopped   bool
	lastError time.Time
}

// target is the set the backend should hold now.
func (r *Runner) target(s *syncer, now time.Time) []announce.Route {
	r.mu.Lock()
	want, handed, stopping := r.want, r.handed, r.stopping
	r.mu.Unlock()
	log := r.opts.Logger
	switch {
	case stopping != "":
		if !s.stopped {
			s.stopped = true
			log.Warn("withdrawing every VIP", "announcer", r.b.Name(), "reason", stopping)
		}
		return nil
	case handed.IsZero():
		return nil
	case now.Sub(handed) > r.opts.StuckAfter:
		if !s.stuck {
			s.stuck = true
			log.Error("withdrawing every VIP: the engine loop handed nothing over", "announcer", r.b.Name(),
				"for", now.Sub(handed).Round(time.Second), "stuck_after", r.opts.StuckAfter)
		}
		return nil
	}
	if s.stuck {
		s.stuck = false
		log.Info("the engine loop turns again; announcing", "announcer", r.b.Name())
	}
	return want
}

// sync adds and deletes what differs between have and want; failures
// stay for the next pass.
func (r *Runner) sync(ctx context.Context, s *syncer, have map[netip.Prefix]announce.Route, want []announce.Route) {
	wanted := make(map[netip.Prefix]bool, len(want))
	var changed bool
	for _, rt := range want {
		wanted[rt.Prefix] = true
		if old, ok := have[rt.Prefix]; ok && old.Equal(rt) {
			continue
		}
		err := r.op(ctx, func(ctx context.Context) error { return r.b.Add(ctx, rt) })
		if err == nil {
			have[rt.Prefix] = rt
			changed = true
		}
		r.record(s, "add", rt.Prefix, err, len(have))
	}
	for _, p := range slices.SortedFunc(maps.Keys(have), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		if wanted[p] {
			continue
		}
		err := r.op(ctx, func(ctx context.Context) error { return r.b.Delete(ctx, p) })
		if err == nil {
			delete(have, p)
			changed = true
		}
		r.record(s, "delete", p, err, len(have))
	}
	if changed {
		held := slices.SortedFunc(maps.Keys(have), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		r.held.Store(&held)
	}
}

// op runs one backend call within OpTimeout.
func (r *Runner) op(ctx context.Context, do func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.OpTimeout)
	defer cancel()
	return do(ctx)
}

// errorEvery rate-limits failure lines: a router that is gone fails every
// retry.
const errorEvery = 30 * time.Second

func (r *Runner) record(s *syncer, op string, p netip.Prefix, err error, held int) {
	now := time.Now()
	if r.opts.Metrics != nil {
		r.opts.Metrics.Update(r.b.Name(), op, err, held, now)
	}
	log := r.opts.Logger
	switch {
	case err == nil:
		log.Debug("route updated", "announcer", r.b.Name(), "op", op, "prefix", p)
	case now.Sub(s.lastError) >= errorEvery:
		s.lastError = now
		log.Error("route update failed; retrying every "+r.opts.Retry.String(), "announcer", r.b.Name(), "op", op, "prefix", p, "err", err)
	}
}

// Runners hands the same routes to several runners: the engine's
// Announcer when both [bgp] and [route_table] are set.
type Runners []*Runner

// Announce hands routes to every runner.
func (rs Runners) Announce(routes []announce.Route) {
	for _, r := range rs {
		r.Announce(routes)
	}
}

// WithdrawAll withdraws everything from every runner at once and waits
// for all of them, or ctx.
func (rs Runners) WithdrawAll(ctx context.Context, reason string) error {
	errs := make(chan error, len(rs))
	for _, r := range rs {
		go func() { errs <- r.WithdrawAll(ctx, reason) }()
	}
	var first error
	for range rs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
