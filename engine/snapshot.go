package engine

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unique"
	"weak"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/damping"
)

// Readers (the API, the page, `director status`) never touch the engine's
// state: the loop publishes an immutable Status, and Snapshot returns the
// latest. Publishing is lazy: the loop counts changes, and builds a new
// snapshot only when a reader finds the published one out of date, at
// most once per snapshotFresh for changes that are only new check results
// (state changes, reloads and operator actions are shown at once). A
// director nobody reads builds none; a hundred readers of one version
// share one.

// snapshotFresh is how stale a snapshot may be in check results alone.
const snapshotFresh = 250 * time.Millisecond

// snapshotWait is how long a reader waits for the loop to publish a
// fresher snapshot before it takes the one it has: a busy loop delays
// news, it does not hold readers.
const snapshotWait = time.Second

// DefaultHistoryLength is how many check results Status keeps per real
// server when Options.HistoryLength is zero: enough to see a pattern
// (every other check timing out) without the status growing with uptime.
const DefaultHistoryLength = 10

// eventLogLength is how many transitions Status keeps, over all servers.
const eventLogLength = 50

// CheckResult is one completed check, as Status reports it.
type CheckResult struct {
	Time     time.Time // when the check started
	OK       bool
	Reason   string // why it failed; "" when OK
	Duration time.Duration
	// Check is the check's name in a server's history when the server has
	// several checks; "" otherwise.
	Check string
}

// CheckStatus is one check of a real server: its own verdict (the
// server is up only while every check is up) and recent results.
type CheckStatus struct {
	Name  string
	Check string       // the check, described
	State health.State // this check's verdict
	// ConsecutiveFailures counts this check's failures since its last
	// success; ConsecutiveSuccesses the reverse.
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
	Last                 *CheckResult // nil until its first result
}

// Event is one change of a real server's health state.
type Event struct {
	Time          time.Time
	VirtualServer string
	RealServer    netip.AddrPort
	From, To      health.State
	Reason        string        // the failing check's reason, or "check passed"
	Check         string        // the check, described
	Recent        []CheckResult // the server's last results, oldest first, the deciding one last
}

// Status is a point-in-time copy of what the director knows.
type Status struct {
	// Version increases with every published snapshot.
	Version        uint64
	Time           time.Time
	Ready          bool
	ConfigPath     string
	ConfigSHA256   string
	VirtualServers []VirtualServerStatus
	Events         []Event // recent transitions, oldest first
	Draining       []DrainingServer
	// VIPs are the VIPs the config announces and the last decision on
	// each; empty without [bgp] or [route_table].
	VIPs []VIPStatus

	// released is set on the stand-in the loop publishes for a snapshot
	// nobody read (releaseUnread), and points to that snapshot until the
	// collector frees it.
	released *weak.Pointer[Status]
}

// VirtualServerStatus is one configured virtual service.
type VirtualServerStatus struct {
	Name string
	// Group is the written name of the group this service is a member of
	// (config.VirtualServer.Group); "" when not a member.
	Group      string
	Service    ipvs.Service // the settings the director programs
	Forwarding string       // the default for its real servers
	OnFailure  string
	Check      string         // the check type
	Fallback   netip.AddrPort // zero when none
	// FallbackActive: the fallback is in the kernel table with a weight.
	FallbackActive bool
	// InKernel: the service was in the kernel table at the last read.
	InKernel bool
	// Counters are the kernel's, as of the last table read (each
	// reconcile); /metrics reads them live.
	Counters    ipvs.Counters
	RealServers []RealServerStatus
	VirtualServerAdmin
}

// VirtualServerAdmin is a virtual server's quorum and panic guard.
type VirtualServerAdmin struct {
	Quorum, Hysteresis uint64
	HealthyWeight      uint64 // configured weights of the serving real servers, summed
	QuorumLost         bool
	PanicThreshold     float64   // 0: the panic guard is off
	Panic              bool      // the panic guard keeps the pool as it is
	PanicSince         time.Time // zero when not in panic
}

// RealServerStatus is one real server of one virtual service.
type RealServerStatus struct {
	Address          netip.AddrPort
	Forwarding       string
	State            health.State
	Since            time.Time // last state change (or when the director took the server on)
	ConfiguredWeight uint32
	ProgrammedWeight int64  // in the kernel as last read; -1 when absent
	CheckWeight      int64  // the weight its check reported (exec's dynamic weight); -1 when none
	Check            string // its checks, described, joined by " + "
	// Checks are its checks, in the config's order, each with its own
	// verdict.
	Checks []CheckStatus
	// ConsecutiveFailures counts failed checks (of any of its checks)
	// since the last success; ConsecutiveSuccesses the reverse.
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
	Last                 *CheckResult // nil until the first check completes
	LastSuccess          time.Time    // zero: never
	LastFailure          time.Time    // zero: never
	History              []CheckResult
	Counters             ipvs.Counters // the kernel's, as of the last table read
	RealServerAdmin
}

// RealServerAdmin is what holds a real server out, or keeps it in.
type RealServerAdmin struct {
	Override        *Override // the override in force; nil: none
	FlapPenalty     float64   // 0 when flap damping is off or has nothing to count
	Suppressed      bool      // flap damping holds it out
	SuppressedUntil time.Time // when the penalty will have decayed below flap_reuse
	HeldByPanic     bool      // the panic guard keeps it in though its checks fail
	// SlowStart is its ramp while it is in slow start; nil otherwise.
	SlowStart *SlowStart
}

// DrainingServer is a real server on its way out, for status pages.
type DrainingServer struct {
	VirtualServer string
	RealServer    netip.AddrPort
	Service       ipvs.ServiceKey
	Since         time.Time
	Timeout       time.Duration
}

// history is what a server remembers for Status beyond its health.
//
// Its results are a ring of compact records, allocated once at its full
// length: at 20,000 real servers a history is kept per server (and per
// check of a server with several), and a CheckResult slice grown by
// append held 16 entries of 72 bytes for 10 results (docs/performance.md,
// "Memory per real server"; records of 24 bytes since "Memory, second
// pass: records").
type history struct {
	ring                     []record // oldest at next once full; len grows to keep, then stays
	lastSuccess, lastFailure int64    // Unix nanoseconds; 0: never (unixTime)
	// The counts saturate (68 years of a result a second); int32 with
	// next, the history is 56 bytes, and a server 192 (the 192 class).
	failures, successes int32
	next                int32 // where the next record goes once the ring is full
}

// record is one CheckResult as a history keeps it, in 24 bytes: its
// reason and check name are one interned pair (a handle: a pointer to
// the one copy of each distinct pair, freed by the runtime when no record
// holds it any longer, so that a reason carrying details cannot grow a
// table of our own), its duration and verdict share a word.
type record struct {
	at    int64                 // Time, in Unix nanoseconds
	label unique.Handle[labels] // zero when both are ""
	// tookOK is the Duration in nanoseconds shifted left by one (within
	// ±recordMaxTook, 146 years: no check's timeout comes near), and OK
	// in the lowest bit.
	tookOK int64
}

// labels is what a record's results say in words.
type labels struct{ reason, check string }

// recordMaxTook is the longest duration a record holds: a Duration
// shifted left by one keeps one bit less.
const recordMaxTook = time.Duration(math.MaxInt64 >> 1)

func newRecord(r CheckResult) record {
	rec := record{at: r.Time.UnixNano(), tookOK: int64(min(max(r.Duration, -recordMaxTook-1), recordMaxTook)) << 1}
	if r.OK {
		rec.tookOK |= 1
	}
	if r.Reason != "" || r.Check != "" {
		rec.label = unique.Make(labels{r.Reason, r.Check})
	}
	return rec
}

func (r *record) ok() bool { return r.tookOK&1 == 1 }

func (r *record) labels() labels {
	if r.label == (unique.Handle[labels]{}) {
		return labels{}
	}
	return r.label.Value()
}

func (r *record) result() CheckResult {
	l := r.labels()
	return CheckResult{Time: time.Unix(0, r.at), OK: r.ok(), Reason: l.reason, Duration: time.Duration(r.tookOK >> 1), Check: l.check}
}

func (h *history) add(r CheckResult, keep int) {
	rec := newRecord(r)
	switch {
	case keep <= 0:
	case len(h.ring) < keep:
		if h.ring == nil {
			h.ring = make([]record, 0, keep)
		}
		h.ring = append(h.ring, rec)
	default:
		h.ring[h.next] = rec
		h.next = int32((int(h.next) + 1) % len(h.ring))
	}
	if r.OK {
		h.lastSuccess = r.Time.UnixNano()
		h.failures = 0
		h.successes = min(h.successes, math.MaxInt32-1) + 1
	} else {
		h.lastFailure = r.Time.UnixNano()
		h.successes = 0
		h.failures = min(h.failures, math.MaxInt32-1) + 1
	}
}

// unixTime is the time of Unix nanoseconds ns, and the zero time for 0.
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// len is how many results the history holds.
func (h *history) len() int { return len(h.ring) }

// at is the i-th result held, oldest first.
func (h *history) at(i int) CheckResult {
	return h.ring[(int(h.next)+i)%len(h.ring)].result()
}

// results are the results held, oldest first, in a new slice (nil when
// none).
func (h *history) results() []CheckResult {
	if h.len() == 0 {
		return nil
	}
	out := make([]CheckResult, h.len())
	for i := range out {
		out[i] = h.at(i)
	}
	return out
}

// last is the newest result; ok is false when there is none.
func (h *history) last() (r CheckResult, ok bool) {
	if n := h.len(); n > 0 {
		return h.at(n - 1), true
	}
	return r, false
}

// summary renders the last few results for a log line, oldest first:
// "ok, ok, timeout, timeout".
func (h *history) summary() string {
	const n = 5
	from := max(0, h.len()-n)
	parts := make([]string, 0, h.len()-from)
	for i := from; i < h.len(); i++ {
		r := &h.ring[(int(h.next)+i)%len(h.ring)]
		if r.ok() {
			parts = append(parts, "ok")
		} else {
			parts = append(parts, r.labels().reason)
		}
	}
	return strings.Join(parts, ", ")
}

// noteTransition records a state change in the event log, counts flaps and
// tells Options.OnTransition.
func (e *Engine) noteTransition(s *server, t health.Transition) {
	ev := Event{
		Time: unixTime(s.lastAt), VirtualServer: s.id.VirtualServer, RealServer: s.id.RealServer,
		From: t.From, To: t.To, Reason: t.Reason, Check: s.describe(),
		Recent: s.history.results(),
	}
	if len(e.events) >= eventLogLength {
		e.events = slices.Delete(e.events, 0, len(e.events)-eventLogLength+1)
	}
	e.events = append(e.events, ev)
	// The first verdict from unknown is not a flap; up<->down is.
	if t.From != health.Unknown && t.To != health.Unknown {
		e.opts.Metrics.Flap(s.id.VirtualServer, s.id.RealServer.String())
	}
	if e.opts.OnTransition != nil {
		ev.Recent = slices.Clone(ev.Recent) // the hook may keep it
		e.opts.OnTransition(ev)
	}
}

// checkTypes is the types of checks, joined by "+": "http", "http+icmp".
func checkTypes(checks []config.Check) string {
	types := make([]string, len(checks))
	for i, c := range checks {
		types[i] = c.Type
	}
	return joinTypes(types)
}

// joinTypes joins check types by "+", each once, in order.
func joinTypes(types []string) string {
	var once []string
	for _, t := range types {
		if !slices.Contains(once, t) {
			once = append(once, t)
		}
	}
	return strings.Join(once, "+")
}

// changed counts a change a snapshot shows; urgent ones (state, table,
// config, operators) are shown without waiting for snapshotFresh.
func (e *Engine) changed(urgent bool) {
	n := e.changes.Add(1)
	if urgent {
		e.urgent.Store(n)
	}
}

// Snapshot returns the latest status snapshot, fresh enough: it asks the
// loop for a newer one when the published one misses an urgent change or
// is older than snapshotFresh, and waits for it at most snapshotWait. It
// is shared and immutable: callers must not modify it (Status returns a
// copy they may).
//
// A snapshot nobody asked for in snapshotKeep is released by the loop
// (releaseUnread); the next reader waits for a new one as for any stale
// snapshot. When the loop does not answer by snapshotWait, the reader
// gets the released snapshot if the collector has not freed it yet (what
// it would have got before: the last one), else it waits for the loop up
// to StuckAfter, after which Ready reports false; only then does it get
// the released one's stand-in (the director's fields, no servers).
func (e *Engine) Snapshot() *Status {
	e.lastRead.Store(time.Now().UnixNano())
	cur := e.snapshot.Load()
	if cur.released == nil && (!e.running.Load() || e.upToDate(cur)) {
		return cur
	}
	if e.waitPublished(cur, snapshotWait) {
		return e.snapshot.Load()
	}
	cur = e.snapshot.Load()
	if cur.released == nil {
		return cur
	}
	if old := cur.released.Value(); old != nil {
		return old
	}
	e.waitPublished(cur, e.opts.StuckAfter-snapshotWait)
	return e.snapshot.Load()
}

// waitPublished asks the loop for a snapshot newer than cur and waits at
// most d for one; it says whether one came.
func (e *Engine) waitPublished(cur *Status, d time.Duration) bool {
	wait := *e.published.Load()
	if e.snapshot.Load() != cur {
		return true
	}
	select {
	case e.publish <- struct{}{}:
	default: // a request is already pending
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-wait:
		return true
	case <-t.C:
		return false
	}
}

// snapshotKeep is how long the loop keeps a snapshot no reader asked for:
// longer than a dashboard's polling interval (10-15 s), which keeps its
// snapshot and pays one build per poll as before, no more; a director
// nobody reads holds none (20,000 real servers: 8 MB without histories,
// 26 MB with; docs/performance.md, "Memory, second pass: records").
const snapshotKeep = time.Minute

// releaseUnread replaces a snapshot no reader asked for in the last
// snapshotKeep with a stand-in of the director's own fields, which points
// weakly to it. While Run's loop runs it publishes only for readers, so
// the one New published, never read, goes at the loop's first tick.
// Loop only.
func (e *Engine) releaseUnread(now time.Time) {
	cur := e.snapshot.Load()
	if cur.released != nil || !e.running.Load() {
		return
	}
	if now.Sub(time.Unix(0, e.lastRead.Load())) < snapshotKeep {
		return
	}
	old := weak.Make(cur)
	e.snapshot.Store(&Status{
		Version: cur.Version, Time: cur.Time, Ready: cur.Ready,
		ConfigPath: cur.ConfigPath, ConfigSHA256: cur.ConfigSHA256,
		released: &old,
	})
}

func (e *Engine) upToDate(cur *Status) bool {
	if cur.Version >= e.changes.Load() {
		return true
	}
	return cur.Version >= e.urgent.Load() && time.Since(cur.Time) < snapshotFresh
}

// Status returns a copy of the latest snapshot that the caller may keep
// and change.
func (e *Engine) Status() Status {
	st := *e.Snapshot()
	st.VirtualServers = slices.Clone(st.VirtualServers)
	for i := range st.VirtualServers {
		v := &st.VirtualServers[i]
		v.RealServers = slices.Clone(v.RealServers)
		for j := range v.RealServers {
			r := &v.RealServers[j]
			r.History = slices.Clone(r.History)
			if r.Last != nil {
				last := *r.Last
				r.Last = &last
			}
			r.Checks = slices.Clone(r.Checks)
			for k := range r.Checks {
				if c := &r.Checks[k]; c.Last != nil {
					last := *c.Last
					c.Last = &last
				}
			}
			if r.Override != nil {
				o := *r.Override
				r.Override = &o
			}
			if r.SlowStart != nil {
				ss := *r.SlowStart
				r.SlowStart = &ss
			}
		}
	}
	st.Events = slices.Clone(st.Events)
	for i := range st.Events {
		st.Events[i].Recent = slices.Clone(st.Events[i].Recent)
	}
	st.Draining = slices.Clone(st.Draining)
	st.VIPs = slices.Clone(st.VIPs)
	return st
}

// Draining lists the servers draining now, sorted by virtual server and address.
func (e *Engine) Draining() []DrainingServer { return slices.Clone(e.Snapshot().Draining) }

// publishSnapshot builds a snapshot of the state and publishes it. The
// snapshot shares nothing mutable with the engine.
func (e *Engine) publishSnapshot(now time.Time) {
	version := e.changes.Load()
	st := &Status{
		Version: version, Time: now, Ready: e.ready.Load(),
		ConfigPath: e.cfg.Path, ConfigSHA256: e.cfg.SHA256,
		Events: slices.Clone(e.events), // each event's Recent is never changed after it is made
	}
	kernelSvc := map[ipvs.ServiceKey]*ipvs.ServiceState{}
	for i := range e.actual {
		kernelSvc[e.actual[i].Key.Normalize()] = &e.actual[i]
	}
	p := damping.Params(e.cfg.Director.Damping)
	ramps := e.rampsNow(now)
	st.VirtualServers = make([]VirtualServerStatus, 0, len(e.cfg.VirtualServers))
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		svc := desired.Service(vs)
		v := VirtualServerStatus{
			Name: vs.Name, Group: vs.Group, Service: svc.Normalize(), Forwarding: vs.Forwarding,
			OnFailure: vs.OnFailure, Check: checkTypes(vs.Checks), Fallback: vs.Fallback,
		}
		v.Quorum, v.Hysteresis, v.PanicThreshold = desired.QuorumOf(vs), vs.Hysteresis, vs.PanicThreshold
		panic := e.guard.InPanic(vs.Name)
		if panic != nil {
			v.Panic, v.PanicSince = true, panic.Since
		}
		dests := map[netip.AddrPort]ipvs.DestinationState{}
		if ks := kernelSvc[v.Service.Key]; ks != nil {
			v.InKernel = true
			v.Counters = ks.Counters
			for _, d := range ks.Destinations {
				dests[d.Address] = d
			}
		}
		if d, ok := dests[vs.Fallback]; ok && vs.Fallback.IsValid() && d.Weight > 0 {
			v.FallbackActive = true
		}
		v.RealServers = make([]RealServerStatus, 0, len(vs.RealServers))
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			r := RealServerStatus{
				Address: rs.Address, Forwarding: rs.Forwarding,
				ConfiguredWeight: rs.Weight, ProgrammedWeight: -1, CheckWeight: -1,
			}
			if d, ok := dests[rs.Address]; ok {
				r.Counters = d.Counters
			}
			if s := e.servers.get(id); s != nil {
				r.State = s.health.State()
				r.Since = unixTime(s.lastAt)
				r.ProgrammedWeight = s.programmed
				if w, ok := s.checkWeight(); ok {
					r.CheckWeight = int64(w)
				}
				r.Check = s.describe()
				r.Checks = make([]CheckStatus, len(s.checks))
				for k, c := range s.checks {
					ch := s.historyOf(c)
					cs := CheckStatus{Name: c.name, Check: c.spec().String(),
						ConsecutiveFailures: int(ch.failures), ConsecutiveSuccesses: int(ch.successes)}
					if m := s.health.Check(c.name); m != nil {
						cs.State = m.State()
					}
					if last, ok := ch.last(); ok {
						cs.Last = &last
					}
					r.Checks[k] = cs
				}
				h := &s.history
				r.ConsecutiveFailures, r.ConsecutiveSuccesses = int(h.failures), int(h.successes)
				r.LastSuccess, r.LastFailure = unixTime(h.lastSuccess), unixTime(h.lastFailure)
				r.History = h.results()
				if n := len(r.History); n > 0 {
					r.Last = &r.History[n-1]
				}
			}
			if o, ok := e.overrides.Effective(id); ok {
				r.Override = &o
			}
			if d := e.dampers[id]; d != nil {
				r.FlapPenalty = d.Penalty(p, now)
				r.Suppressed = d.Suppressed()
				r.SuppressedUntil = d.ReuseAt(p)
			}
			if panic != nil {
				r.HeldByPanic = panic.Kept[id]
			}
			if ramp, ok := ramps[id]; ok {
				r.SlowStart = &ramp
			}
			if view := e.view(id, r.State); view.Serving() {
				w := rs.Weight
				if view.HasWeight {
					w = view.Weight
				}
				v.HealthyWeight += uint64(w)
			}
			v.RealServers = append(v.RealServers, r)
		}
		lost, known := e.quorum[vs.Name]
		if !known {
			lost = v.HealthyWeight < v.Quorum
		}
		v.QuorumLost = lost
		st.VirtualServers = append(st.VirtualServers, v)
	}
	st.VIPs = e.ann.vips // never changed after it is made: announceVIPs makes a new one
	st.Draining = make([]DrainingServer, 0, len(e.drains))
	for _, k := range e.drains.Keys() {
		d := e.drains[k]
		st.Draining = append(st.Draining, DrainingServer{VirtualServer: d.ID.VirtualServer, RealServer: d.ID.RealServer, Service: k.Service, Since: d.Since, Timeout: d.Timeout})
	}
	slices.SortFunc(st.Draining, func(a, b DrainingServer) int {
		if c := strings.Compare(a.VirtualServer, b.VirtualServer); c != 0 {
			return c
		}
		return a.RealServer.Compare(b.RealServer)
	})
	e.snapshot.Store(st)
	next := make(chan struct{})
	close(*e.published.Swap(&next))
}
