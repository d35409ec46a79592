package engine

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

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

// Status is a point-in-time copy of what the director knows. It shares
// nothing with the engine: callers may keep and change it.
type Status struct {
	Time           time.Time
	Ready          bool
	ConfigPath     string
	ConfigSHA256   string
	VirtualServers []VirtualServerStatus
	Events         []Event // recent transitions, oldest first
}

// VirtualServerStatus is one configured virtual service.
type VirtualServerStatus struct {
	Name       string
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
	// Admin: quorum and the panic guard (admin_status.go).
	VirtualServerAdmin
}

// RealServerStatus is one real server of one virtual service.
type RealServerStatus struct {
	Address          netip.AddrPort
	Forwarding       string
	State            health.State
	Since            time.Time // last state change (or when the director took the server on)
	ConfiguredWeight uint32
	ProgrammedWeight int64 // in the kernel as last read; -1 when absent
	Check            string
	// ConsecutiveFailures counts failed checks since the last success;
	// ConsecutiveSuccesses the reverse.
	ConsecutiveFailures  int
	ConsecutiveSuccesses int
	Last                 *CheckResult // nil until the first check completes
	LastSuccess          time.Time    // zero: never
	LastFailure          time.Time    // zero: never
	History              []CheckResult
	Counters             ipvs.Counters // the kernel's, as of the last table read
	// Admin: overrides, flap damping, panic guard (admin_status.go).
	RealServerAdmin
}

// serverStatus is what a server remembers for Status beyond its health.
type serverStatus struct {
	history                  []CheckResult // oldest first, at most Options.HistoryLength
	lastSuccess, lastFailure time.Time
	failures, successes      int
}

func (st *serverStatus) add(r CheckResult, keep int) {
	if len(st.history) >= keep {
		st.history = slices.Delete(st.history, 0, len(st.history)-keep+1)
	}
	st.history = append(st.history, r)
	if r.OK {
		st.lastSuccess = r.Time
		st.failures = 0
		st.successes++
	} else {
		st.lastFailure = r.Time
		st.successes = 0
		st.failures++
	}
}

// summary renders the last few results for a log line: "ok ok timeout timeout".
func (st *serverStatus) summary() string {
	const n = 5
	h := st.history[max(0, len(st.history)-n):]
	parts := make([]string, len(h))
	for i, r := range h {
		parts[i] = "ok"
		if !r.OK {
			parts[i] = r.Reason
		}
	}
	return strings.Join(parts, ", ")
}

// noteResult records a check result for Status and the detailed metrics.
// Callers hold mu.
func (e *Engine) noteResult(s *server, res checks.Result) {
	at := res.Start
	if at.IsZero() {
		at = time.Now()
	}
	s.status.add(CheckResult{Time: at, OK: res.OK, Reason: res.Reason, Duration: res.Duration}, e.opts.HistoryLength)
	e.opts.Metrics.CheckOutcome(s.id.vs, s.id.rs.String(), s.check.Type, res.OK, res.Reason, at, s.status.failures)
}

// noteTransition records a state change in the event log, counts flaps and
// tells Options.OnTransition. Callers hold mu.
func (e *Engine) noteTransition(s *server, t health.Transition) {
	ev := Event{
		Time: s.lastAt, VirtualServer: s.id.vs, RealServer: s.id.rs,
		From: t.From, To: t.To, Reason: t.Reason, Check: s.check.String(),
		Recent: slices.Clone(s.status.history),
	}
	if len(e.events) >= eventLogLength {
		e.events = slices.Delete(e.events, 0, len(e.events)-eventLogLength+1)
	}
	e.events = append(e.events, ev)
	// The first verdict from unknown is not a flap; up<->down is.
	if t.From != health.Unknown && t.To != health.Unknown {
		e.opts.Metrics.Flap(s.id.vs, s.id.rs.String())
	}
	if e.opts.OnTransition != nil {
		ev.Recent = slices.Clone(ev.Recent) // the hook may keep it
		e.opts.OnTransition(ev)
	}
}

// Status returns a snapshot of every virtual and real server.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{
		Time: time.Now(), Ready: e.ready,
		ConfigPath: e.cfg.Path, ConfigSHA256: e.cfg.SHA256,
		Events: slices.Clone(e.events),
	}
	for i := range st.Events {
		st.Events[i].Recent = slices.Clone(st.Events[i].Recent)
	}
	kernelSvc := map[ipvs.ServiceKey]*ipvs.ServiceState{}
	for i := range e.actual {
		kernelSvc[e.actual[i].Key.Normalize()] = &e.actual[i]
	}
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		svc := service(vs)
		v := VirtualServerStatus{
			Name: vs.Name, Service: svc.Normalize(), Forwarding: vs.Forwarding,
			OnFailure: vs.OnFailure, Check: vs.Check.Type, Fallback: vs.Fallback,
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
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			r := RealServerStatus{
				Address: rs.Address, Forwarding: rs.Forwarding,
				ConfiguredWeight: rs.Weight, ProgrammedWeight: -1,
			}
			if d, ok := dests[rs.Address]; ok {
				r.Counters = d.Counters
			}
			if s := e.servers[serverID{vs.Name, rs.Address}]; s != nil {
				r.State = s.machine.State()
				r.Since = s.lastAt
				r.ProgrammedWeight = s.programmed
				r.Check = s.check.String()
				r.ConsecutiveFailures, r.ConsecutiveSuccesses = s.status.failures, s.status.successes
				r.LastSuccess, r.LastFailure = s.status.lastSuccess, s.status.lastFailure
				r.History = slices.Clone(s.status.history)
				if n := len(r.History); n > 0 {
					last := r.History[n-1]
					r.Last = &last
				}
			}
			v.RealServers = append(v.RealServers, r)
		}
		st.VirtualServers = append(st.VirtualServers, v)
	}
	e.adminStatusLocked(&st) // admin_status.go
	return st
}

// ServiceNames maps the key of every service in the running config to
// the virtual server's name, for labelling kernel statistics.
func (e *Engine) ServiceNames() map[ipvs.ServiceKey]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[ipvs.ServiceKey]string, len(e.cfg.VirtualServers))
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		out[serviceKey(vs).Normalize()] = vs.Name
	}
	return out
}

// Config returns the running configuration. It is shared, not copied:
// a Config is never changed once loaded, a reload replaces it whole.
func (e *Engine) Config() *config.Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}
