package engine

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// A kernel that refuses every operation fails each reconcile the same way,
// and the retry loop runs one every few seconds: logging each failure would
// bury everything else. So each cause is logged when it first appears, then
// again only after a delay that doubles (with the number of repeats held
// back), and once more when it clears. The metric counts every failure.
const (
	errLogFirstRepeat = time.Minute
	errLogMaxRepeat   = time.Hour
)

// errorLog decides which failures to log. It is pure: the caller passes
// the time.
type errorLog struct {
	causes map[string]*causeState
}

type causeState struct {
	since      time.Time // first failure
	next       time.Time // log again from then on
	delay      time.Duration
	count      int // failures in all
	suppressed int // failures not logged since the last one that was
}

// note records a failure with the given cause and reports whether to log
// it, with how many failures of that cause went unlogged before it.
func (l *errorLog) note(cause string, now time.Time) (log bool, suppressed int) {
	if l.causes == nil {
		l.causes = map[string]*causeState{}
	}
	c := l.causes[cause]
	if c == nil {
		l.causes[cause] = &causeState{since: now, next: now.Add(errLogFirstRepeat), delay: errLogFirstRepeat, count: 1}
		return true, 0
	}
	c.count++
	if now.Before(c.next) {
		c.suppressed++
		return false, 0
	}
	suppressed, c.suppressed = c.suppressed, 0
	c.delay = min(c.delay*2, errLogMaxRepeat)
	c.next = now.Add(c.delay)
	return true, suppressed
}

// recovered is a cause that stopped failing.
type recovered struct {
	cause    string
	failures int
	since    time.Time
}

// clear forgets every cause and returns them, sorted by cause.
func (l *errorLog) clear() []recovered {
	out := make([]recovered, 0, len(l.causes))
	for cause, c := range l.causes {
		out = append(out, recovered{cause: cause, failures: c.count, since: c.since})
	}
	clear(l.causes)
	slices.SortFunc(out, func(a, b recovered) int {
		switch {
		case a.cause < b.cause:
			return -1
		case a.cause > b.cause:
			return 1
		}
		return 0
	})
	return out
}

// ipvsCause classifies a table error into a bounded set, for the metric
// label and for the hint in the log line.
func ipvsCause(err error) string {
	switch {
	case errors.Is(err, ipvs.ErrPermission):
		return "permission"
	case errors.Is(err, ipvs.ErrNotSupported):
		return "not_supported"
	case errors.Is(err, ipvs.ErrUnknownScheduler):
		return "unknown_scheduler"
	case errors.Is(err, ipvs.ErrInvalid):
		return "invalid"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	return "other"
}

var causeHints = map[string]string{
	"permission":        "the director needs CAP_NET_ADMIN: run it as root or grant the capability (see deploy/systemd/director.service)",
	"not_supported":     "the kernel has no IPVS: load it with modprobe ip_vs",
	"unknown_scheduler": "the kernel lacks this scheduler: load it (modprobe ip_vs_NAME) or choose another scheduler",
	"invalid":           "the kernel refused the settings: check this virtual server's config against the kernel's limits",
	"timeout":           "the kernel did not answer in time; the director retries",
	"other":             "the director retries with backoff",
}

// ipvsFailed records one failed table read or operation: counted always,
// logged once per cause and kind of operation with backoff. The engine is
// not ready until a reconcile succeeds.
func (e *Engine) ipvsFailed(trigger string, err error) {
	e.tableMetrics.ReconcileFailing(true)
	e.setReconciled(false)
	e.logIPVSError(trigger, err)
}

// logIPVSError counts a failed table read or operation and logs it once
// per cause and kind of operation, with backoff.
func (e *Engine) logIPVSError(trigger string, err error) {
	cause := ipvsCause(err)
	e.tableMetrics.IPVSError(cause)
	what, msg := "read", "reading the IPVS table failed; retrying with backoff"
	var oe *ipvs.OpError
	if errors.As(err, &oe) {
		what, msg = oe.Op.Kind.String(), "ipvs operation failed; retrying with backoff"
	}
	log, suppressed := e.kernelErrors.note(cause+" "+what, time.Now())
	if !log {
		return
	}
	args := []any{"trigger", trigger, "cause", cause, "err", err, "hint", causeHints[cause]}
	if suppressed > 0 {
		args = append(args, "repeats_not_logged", suppressed)
	}
	e.log.Error(msg, args...)
}

// ipvsSettled records the outcome of a whole reconcile: a success clears
// every failing cause (and says so once); a failure keeps the engine not
// ready.
func (e *Engine) ipvsSettled(ok bool) {
	e.tableMetrics.ReconcileFailing(!ok)
	e.setReconciled(ok)
	if !ok {
		return
	}
	for _, r := range e.kernelErrors.clear() {
		e.log.Info("ipvs operations succeed again", "cause", r.cause, "failures", r.failures,
			"failing_for", time.Since(r.since).Round(time.Second))
	}
}

// setReconciled keeps whether the last reconcile succeeded, and publishes it.
func (e *Engine) setReconciled(ok bool) {
	e.reconciled = ok
	e.ready.Store(ok)
	e.noteSelfHealth(ok, time.Now())
}
