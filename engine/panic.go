package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

// The panic guard (panic_threshold): when more than that share of a
// virtual server's real servers (and at least two) go from up to down
// within one check round (the check interval plus its timeout), the
// director assumes the fault is its own (its network, its host) rather
// than theirs. It keeps the pool as it is: those servers, and any that go
// down while the panic lasts, keep their weight. It logs an error, sets
// director_virtual_server_panic and notifies (event "panic"). The panic
// ends when no more than panic_threshold of the servers are down any
// more (checks recovered; those still down are then taken out), or when
// an operator clears it (POST /api/v1/virtual_servers/{name}/panic/clear).
//
// So that the guard can see a round whole, a real server of a virtual
// server with the guard on that fails is taken out one round after it
// failed (at the next admin tick after that, within a second), not at once.

// downEvent is one up -> down transition.
type downEvent struct {
	id serverID
	at time.Time
}

// panicState is a virtual server in panic.
type panicState struct {
	since time.Time
	held  map[serverID]bool // kept in though their checks fail
}

// VirtualServerEvent is a change of a whole virtual server: the panic
// guard tripping ("panic") or ending ("panic_end").
type VirtualServerEvent struct {
	Time          time.Time
	Type          string // "panic" | "panic_end"
	VirtualServer string
	Reason        string
	RealServers   []netip.AddrPort // the servers concerned
}

// panicTrips reports whether down servers failing together out of total
// trip a panic_threshold. It is pure.
func panicTrips(down, total int, threshold float64) bool {
	return threshold > 0 && down >= 2 && total > 0 && float64(down)/float64(total) > threshold
}

// panicWindow is one check round of vs: checks are spread over the
// interval and each may take up to its timeout.
func panicWindow(vs *config.VirtualServer) time.Duration {
	return vs.Check.Interval + vs.Check.Timeout
}

// evaluatePanicsLocked enters and ends panics. Callers hold mu.
func (e *Engine) evaluatePanicsLocked(now time.Time) bool {
	changed := false
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		if vs.PanicThreshold == 0 || len(vs.RealServers) == 0 {
			delete(e.adm.downs, vs.Name)
			continue
		}
		downs := e.adm.downs[vs.Name]
		cut := now.Add(-panicWindow(vs))
		n := len(downs)
		downs = slices.DeleteFunc(downs, func(d downEvent) bool { return d.at.Before(cut) })
		e.adm.downs[vs.Name] = downs
		if len(downs) < n {
			changed = true // a failed server's round is over: it may be taken out now
		}
		total := len(vs.RealServers)
		p := e.adm.panics[vs.Name]
		if p == nil {
			// Servers that went down together in this round and are still down.
			together := map[serverID]bool{}
			for _, d := range downs {
				if s := e.servers[d.id]; s != nil && s.machine.State() == health.Down {
					together[d.id] = true
				}
			}
			if !panicTrips(len(together), total, vs.PanicThreshold) {
				continue
			}
			p = &panicState{since: now, held: together}
			e.adm.panics[vs.Name] = p
			changed = true
			addrs := sortedAddrs(together)
			reason := fmt.Sprintf("%d of %d real servers went down within %s, more than panic_threshold %g: assuming the director's own network is at fault",
				len(together), total, panicWindow(vs), vs.PanicThreshold)
			e.log.Error("panic guard tripped: keeping the pool as it is", "virtual_server", vs.Name, "reason", reason,
				"real_servers", joinAddrs(addrs), "fix", "check the director's network; the panic ends when the checks recover, or clear it: POST /api/v1/virtual_servers/"+vs.Name+"/panic/clear")
			e.adm.metrics.Panic(vs.Name, true)
			e.adm.metrics.PanicTripped(vs.Name)
			e.vsEventLocked(VirtualServerEvent{Time: now, Type: "panic", VirtualServer: vs.Name, Reason: reason, RealServers: addrs})
			continue
		}
		down := 0
		for _, rs := range vs.RealServers {
			if s := e.servers[serverID{vs.Name, rs.Address}]; s != nil && s.machine.State() == health.Down {
				down++
			}
		}
		if float64(down)/float64(total) > vs.PanicThreshold {
			continue
		}
		reason := fmt.Sprintf("checks recovered: %d of %d real servers down, no more than panic_threshold %g", down, total, vs.PanicThreshold)
		e.endPanicLocked(vs.Name, p, now, reason)
		changed = true
	}
	return changed
}

func (e *Engine) endPanicLocked(name string, p *panicState, now time.Time, reason string) {
	delete(e.adm.panics, name)
	delete(e.adm.downs, name) // the failures that tripped it are settled
	var stillDown []netip.AddrPort
	for id := range p.held {
		if s := e.servers[id]; s != nil && s.machine.State() == health.Down {
			stillDown = append(stillDown, id.rs)
		}
	}
	slices.SortFunc(stillDown, netip.AddrPort.Compare)
	e.log.Warn("panic guard ended: normal handling resumes; real servers still down are taken out", "virtual_server", name,
		"reason", reason, "in_panic_for", now.Sub(p.since).Round(time.Second), "still_down", joinAddrs(stillDown))
	e.adm.metrics.Panic(name, false)
	e.vsEventLocked(VirtualServerEvent{Time: now, Type: "panic_end", VirtualServer: name, Reason: reason, RealServers: stillDown})
}

// ClearPanic ends a virtual server's panic now, as an operator asks: its
// real servers that are down are taken out. ErrNotFound: no such virtual
// server; ErrConflict: it is not in panic.
func (e *Engine) ClearPanic(ctx context.Context, name, by string) error {
	_, err := e.submit(ctx, func(now time.Time) (any, bool, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if findVS(e.cfg, name) == nil {
			return nil, false, fmt.Errorf("%w: no virtual server %q in the running config", ErrNotFound, name)
		}
		p := e.adm.panics[name]
		if p == nil {
			return nil, false, fmt.Errorf("%w: virtual server %q is not in panic", ErrConflict, name)
		}
		e.endPanicLocked(name, p, now, "cleared by an operator ("+by+")")
		return nil, true, nil
	})
	return err
}

func (e *Engine) vsEventLocked(ev VirtualServerEvent) {
	if e.opts.OnVirtualServerEvent != nil {
		e.opts.OnVirtualServerEvent(ev)
	}
}

func sortedAddrs(ids map[serverID]bool) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(ids))
	for id := range ids {
		out = append(out, id.rs)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

func joinAddrs(a []netip.AddrPort) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}
