// Package panicguard is the panic guard (panic_threshold): when more than
// that share of a virtual server's real servers (and at least two) go from
// up to down within one check round (the check interval plus its
// timeout), the director assumes the fault is its own (its network, its
// host) rather than theirs. It keeps the pool as it is: those servers, and
// any that go down while the panic lasts, keep their weight. The panic
// ends when no more than panic_threshold of the servers are down any more
// (checks recovered; those still down are then taken out), or when an
// operator clears it.
//
// So that the guard can see a round whole, a real server of a virtual
// server with the guard on that fails is taken out one round after it
// failed, not at once. It is pure: times and health are passed in.
package panicguard

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

// Trips reports whether down servers failing together out of total trip
// a panic_threshold.
func Trips(down, total int, threshold float64) bool {
	return threshold > 0 && down >= 2 && total > 0 && float64(down)/float64(total) > threshold
}

// Window is one check round of vs: checks are spread over the interval
// and each may take up to its timeout; with several checks per server,
// the longest round of any.
func Window(vs *config.VirtualServer) time.Duration {
	var w time.Duration
	for i := range vs.RealServers {
		for _, c := range vs.ChecksOf(&vs.RealServers[i]) {
			w = max(w, c.Interval+c.Timeout)
		}
	}
	for _, c := range vs.Checks {
		w = max(w, c.Interval+c.Timeout)
	}
	return w
}

// Event is a change the guard made.
type Event struct {
	Type          string // "panic", "panic_end", "kept" (a server failed during a panic), "off" (a reload turned the guard off mid-panic)
	VirtualServer string
	Reason        string
	RealServers   []netip.AddrPort // the servers concerned, sorted
	Since         time.Time        // panic_end: when the panic began
}

type down struct {
	id config.ServerID
	at time.Time
}

// Panic is a virtual server in panic.
type Panic struct {
	Since time.Time
	Kept  map[config.ServerID]bool // kept in though their checks fail
}

// Guard holds the recent failures and the panics.
type Guard struct {
	downs  map[string][]down // recent up -> down transitions, by virtual server
	panics map[string]*Panic // by virtual server
}

// New returns a guard with nothing in panic.
func New() *Guard { return &Guard{downs: map[string][]down{}, panics: map[string]*Panic{}} }

// Down records an up -> down transition of id at now.
func (g *Guard) Down(vs *config.VirtualServer, id config.ServerID, reason string, now time.Time) []Event {
	if vs == nil || vs.PanicThreshold == 0 {
		return nil
	}
	g.downs[id.VirtualServer] = append(g.downs[id.VirtualServer], down{id, now})
	if p := g.panics[id.VirtualServer]; p != nil && !p.Kept[id] {
		p.Kept[id] = true
		return []Event{{Type: "kept", VirtualServer: id.VirtualServer, Reason: reason, RealServers: []netip.AddrPort{id.RealServer}}}
	}
	return nil
}

// Kept reports whether the guard keeps id in though its checks fail: in
// a panic, or within the round after it failed.
func (g *Guard) Kept(id config.ServerID, state health.State) bool {
	if p := g.panics[id.VirtualServer]; p != nil && p.Kept[id] {
		return true
	}
	if state != health.Down {
		return false
	}
	for _, d := range g.downs[id.VirtualServer] {
		if d.id == id {
			return true
		}
	}
	return false
}

// InPanic returns vs's panic, or nil.
func (g *Guard) InPanic(name string) *Panic { return g.panics[name] }

// Evaluate enters and ends panics at now; changed reports whether the
// desired table may have changed.
func (g *Guard) Evaluate(cfg *config.Config, state func(config.ServerID) health.State, now time.Time) (changed bool, events []Event) {
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		if vs.PanicThreshold == 0 || len(vs.RealServers) == 0 {
			delete(g.downs, vs.Name)
			continue
		}
		cut := now.Add(-Window(vs))
		downs := g.downs[vs.Name]
		n := len(downs)
		downs = slices.DeleteFunc(downs, func(d down) bool { return d.at.Before(cut) })
		g.downs[vs.Name] = downs
		if len(downs) < n {
			changed = true // a failed server's round is over: it may be taken out now
		}
		total := len(vs.RealServers)
		p := g.panics[vs.Name]
		if p == nil {
			// Servers that went down together in this round and are still down.
			together := map[config.ServerID]bool{}
			for _, d := range downs {
				if state(d.id) == health.Down {
					together[d.id] = true
				}
			}
			if !Trips(len(together), total, vs.PanicThreshold) {
				continue
			}
			g.panics[vs.Name] = &Panic{Since: now, Kept: together}
			changed = true
			events = append(events, Event{Type: "panic", VirtualServer: vs.Name, RealServers: sortedAddrs(together),
				Reason: fmt.Sprintf("%d of %d real servers went down within %s, more than panic_threshold %g: assuming the director's own network is at fault",
					len(together), total, Window(vs), vs.PanicThreshold)})
			continue
		}
		downNow := 0
		for _, rs := range vs.RealServers {
			if state(config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}) == health.Down {
				downNow++
			}
		}
		if float64(downNow)/float64(total) > vs.PanicThreshold {
			continue
		}
		reason := fmt.Sprintf("checks recovered: %d of %d real servers down, no more than panic_threshold %g", downNow, total, vs.PanicThreshold)
		events = append(events, g.end(vs.Name, p, reason, state))
		changed = true
	}
	return changed, events
}

// Clear ends name's panic now, as an operator asks; ok is false when it
// is not in panic.
func (g *Guard) Clear(name, reason string, state func(config.ServerID) health.State) (Event, bool) {
	p := g.panics[name]
	if p == nil {
		return Event{}, false
	}
	return g.end(name, p, reason, state), true
}

func (g *Guard) end(name string, p *Panic, reason string, state func(config.ServerID) health.State) Event {
	delete(g.panics, name)
	delete(g.downs, name) // the failures that tripped it are settled
	var stillDown []netip.AddrPort
	for id := range p.Kept {
		if state(id) == health.Down {
			stillDown = append(stillDown, id.RealServer)
		}
	}
	slices.SortFunc(stillDown, netip.AddrPort.Compare)
	return Event{Type: "panic_end", VirtualServer: name, Reason: reason, RealServers: stillDown, Since: p.Since}
}

// Follow drops the state of virtual servers that left cfg or turned the
// guard off; an "off" event for each that was in panic and stays.
func (g *Guard) Follow(cfg *config.Config) (off []Event, forgotten []string) {
	names := map[string]bool{}
	for name := range g.panics {
		names[name] = true
	}
	for name := range g.downs {
		names[name] = true
	}
	for name := range names {
		vs := cfg.Find(name)
		if vs != nil && vs.PanicThreshold != 0 {
			continue
		}
		if g.panics[name] != nil && vs != nil {
			off = append(off, Event{Type: "off", VirtualServer: name})
		}
		delete(g.panics, name)
		delete(g.downs, name)
		forgotten = append(forgotten, name)
	}
	slices.Sort(forgotten)
	return off, forgotten
}

func sortedAddrs(ids map[config.ServerID]bool) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(ids))
	for id := range ids {
		out = append(out, id.RealServer)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}
