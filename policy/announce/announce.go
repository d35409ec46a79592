// Package announce decides which VIPs a director announces to its routers
// (BGP, or a kernel route a routing daemon redistributes). A VIP is
// announced while the services behind it are healthy and the director
// itself is; it is withdrawn at once when either fails, and a withdrawn
// VIP waits out a hold-down before it is announced again, so that a
// flapping pool does not flap routes across the network.
//
// A service is healthy by watermarks on its healthy weight share (the
// weights of its serving real servers over all its configured weights):
// it becomes healthy at Above and stays healthy down to Below, and never
// while no real server serves. A VIP shared by several services (ports)
// follows its rule: all of them healthy, or any. It is pure: no I/O, no
// clock; the caller passes the time in.
package announce

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Rules for a VIP shared by several services.
const (
	RuleAll = "all"
	RuleAny = "any"
)

// Service is one service behind a VIP, as the pool stands now.
type Service struct {
	Name string
	// Healthy is the weight of the serving real servers, Total the
	// configured weight of all of them.
	Healthy, Total uint64
	// Unknown: some real servers have no verdict yet (at start).
	Unknown bool
	// Above and Below are the watermarks, shares from 0 to 1.
	Above, Below float64
}

// VIP is one address to announce and the services behind it.
type VIP struct {
	Prefix   netip.Prefix
	Rule     string // RuleAll (also when empty) or RuleAny
	Services []Service
}

// Input is everything one decision needs.
type Input struct {
	Now  time.Time
	VIPs []VIP
	// Unhealthy says why the director itself must attract no traffic
	// (its table not reconciled, shutting down); "" when it is healthy.
	Unhealthy string
	HoldDown  time.Duration
}

// Decision is whether one VIP is announced now, and why: Cause is a
// stable word for metrics, Reason a sentence for people.
type Decision struct {
	Prefix   netip.Prefix
	Announce bool
	Cause    Cause
	Reason   string
}

// Cause is why a VIP is announced or withdrawn, in one word.
type Cause string

const (
	CauseHealthy  Cause = "healthy"            // its services are healthy
	CausePool     Cause = "pool_unhealthy"     // its services are not
	CauseHoldDown Cause = "hold_down"          // healthy, but withdrawn too recently
	CauseDirector Cause = "director_unhealthy" // the director itself is not
	CauseRemoved  Cause = "removed"            // no longer in the config
)

// Event is a VIP announced or withdrawn by this decision.
type Event = Decision

// State is what the policy remembers between decisions: each VIP's
// announcement and each service's health (for the watermarks'
// hysteresis). The zero value is ready to use.
type State struct {
	vips     map[netip.Prefix]*vip
	services map[string]bool // healthy, by service name
}

type vip struct {
	announced   bool
	withdrawnAt time.Time // zero: never withdrawn after an announcement
}

// Announced lists the VIPs announced now, sorted.
func (s *State) Announced() []netip.Prefix {
	var out []netip.Prefix
	for p, v := range s.vips {
		if v.announced {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Decide decides every VIP of in, in their order, and returns the
// decisions and the changes among them. A VIP that was announced and is
// no longer in in is withdrawn (an event, no decision).
func (s *State) Decide(in Input) (decisions []Decision, events []Event) {
	if s.vips == nil {
		s.vips = map[netip.Prefix]*vip{}
		s.services = map[string]bool{}
	}
	seen := map[netip.Prefix]bool{}
	seenSvc := map[string]bool{}
	for _, v := range in.VIPs {
		seen[v.Prefix] = true
		want, reason := s.wanted(v, seenSvc)
		cause := CauseHealthy
		if !want {
			cause = CausePool
		}
		st := s.vips[v.Prefix]
		if st == nil {
			st = &vip{}
			s.vips[v.Prefix] = st
		}
		switch {
		case in.Unhealthy != "":
			want, cause, reason = false, CauseDirector, "director unhealthy: "+in.Unhealthy
		case want && !st.announced && !st.withdrawnAt.IsZero() && in.Now.Before(st.withdrawnAt.Add(in.HoldDown)):
			want, cause = false, CauseHoldDown
			reason = fmt.Sprintf("hold-down: %s; withdrawn %s ago, announced again from %s",
				reason, in.Now.Sub(st.withdrawnAt).Round(time.Second), st.withdrawnAt.Add(in.HoldDown).Format(time.RFC3339))
		}
		d := Decision{Prefix: v.Prefix, Announce: want, Cause: cause, Reason: reason}
		decisions = append(decisions, d)
		if want != st.announced {
			if !want {
				st.withdrawnAt = in.Now
			}
			st.announced = want
			events = append(events, d)
		}
	}
	var gone []netip.Prefix
	for p, st := range s.vips {
		if !seen[p] {
			if st.announced {
				gone = append(gone, p)
			}
			delete(s.vips, p)
		}
	}
	slices.SortFunc(gone, comparePrefix)
	for _, p := range gone {
		events = append(events, Event{Prefix: p, Cause: CauseRemoved, Reason: "no longer announced by the config"})
	}
	for name := range s.services {
		if !seenSvc[name] {
			delete(s.services, name)
		}
	}
	return decisions, events
}

// wanted reports whether v's services call for announcing it, and why.
func (s *State) wanted(v VIP, seen map[string]bool) (bool, string) {
	if len(v.Services) == 0 {
		return false, "no services"
	}
	var ok, bad []string
	for _, svc := range v.Services {
		seen[svc.Name] = true
		healthy, why := s.serviceHealthy(svc)
		if healthy {
			ok = append(ok, why)
		} else {
			bad = append(bad, why)
		}
	}
	if v.Rule == RuleAny {
		if len(ok) > 0 {
			return true, "healthy: " + strings.Join(ok, "; ")
		}
		return false, "no service healthy: " + strings.Join(bad, "; ")
	}
	if len(bad) == 0 {
		return true, "healthy: " + strings.Join(ok, "; ")
	}
	return false, "unhealthy: " + strings.Join(bad, "; ")
}

// serviceHealthy applies the watermarks with the service's previous
// verdict, keeps the new one (unless some servers have no verdict yet:
// there is nothing to keep hysteresis from) and says why.
func (s *State) serviceHealthy(svc Service) (bool, string) {
	share := 0.0
	if svc.Total > 0 {
		share = float64(svc.Healthy) / float64(svc.Total)
	}
	prev, known := s.services[svc.Name]
	var healthy bool
	var mark string
	switch {
	case svc.Healthy == 0:
		healthy, mark = false, "no real server serving"
	case known && prev:
		healthy = share >= svc.Below
		mark = fmt.Sprintf("below withdraw_below %v", svc.Below)
	default:
		healthy = share >= svc.Above
		mark = fmt.Sprintf("below announce_above %v", svc.Above)
	}
	if svc.Unknown {
		delete(s.services, svc.Name)
	} else {
		s.services[svc.Name] = healthy
	}
	why := fmt.Sprintf("%s %d/%d", svc.Name, svc.Healthy, svc.Total)
	switch {
	case healthy:
	case svc.Unknown:
		why += " (waiting for check results)"
	default:
		why += " (" + mark + ")"
	}
	return healthy, why
}

// Route is an announced VIP with the BGP attributes it is announced with.
type Route struct {
	Prefix               netip.Prefix
	Communities          []uint32
	HasMED, HasLocalPref bool
	MED, LocalPref       uint32
}

// Equal reports whether announcing r in place of o changes nothing.
func (r Route) Equal(o Route) bool {
	return r.Prefix == o.Prefix && slices.Equal(r.Communities, o.Communities) &&
		r.HasMED == o.HasMED && r.MED == o.MED && r.HasLocalPref == o.HasLocalPref && r.LocalPref == o.LocalPref
}
