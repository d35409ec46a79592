// Package drain decides graceful drains. A real server that leaves the
// config is not deleted at once, which would cut its connections: it is
// set to weight 0 (no new connections) and deleted when the kernel counts
// no active or inactive connections for it, or when its virtual server's
// drain_timeout passes. A virtual server that leaves the config keeps its
// kernel service until its last draining server is gone. A draining
// server that comes back in the config is restored, with the health
// verdict it had. It is pure: tables and times are passed in.
package drain

import (
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// Drain is one real server on its way out.
type Drain struct {
	ID         config.ServerID
	Service    ipvs.Service     // its virtual service, in case that left the config too
	Dest       ipvs.Destination // weight 0
	Configured uint32           // the weight it had, for metrics
	Since      time.Time
	Timeout    time.Duration
	// Health is the server's health when it left, so that it comes back
	// with its verdict, and CheckKey the checks that gave it; nil for a
	// destination found in the kernel at start.
	Health   *health.Group
	CheckKey string
}

// Set is the running drains by destination.
type Set map[desired.DestKey]*Drain

// Connections is what a drain waits for. Persistence templates are left
// out: they are not connections, and they expire on their own.
func Connections(d ipvs.DestinationState) uint32 {
	return d.Counters.ActiveConns + d.Counters.InactiveConns
}

// Health is what Next needs to know of a real server of the old config:
// its health and checks, to restore it if it comes back.
type Health func(config.ServerID) (h *health.Group, checkKey string)

// Next works out the drains after moving from config old to next: running
// drains whose server is back in next are restored (returned apart), the
// others go on; real servers of old that next lacks start to drain when
// the kernel shows them with connections and their drain timeout is above
// zero (otherwise they are simply deleted). of may be nil.
func Next(old, next *config.Config, running Set, of Health, kernel map[desired.DestKey]ipvs.DestinationState, now time.Time) (drains, restored Set) {
	want := desired.Configured(next)
	nextVS := map[ipvs.ServiceKey]*config.VirtualServer{}
	for i := range next.VirtualServers {
		nextVS[desired.ServiceKey(&next.VirtualServers[i]).Normalize()] = &next.VirtualServers[i]
	}
	drains, restored = Set{}, Set{}
	for k, d := range running {
		if _, back := want[k]; back {
			restored[k] = d
		} else {
			drains[k] = d
		}
	}
	for i := range old.VirtualServers {
		vs := &old.VirtualServers[i]
		timeout := vs.DrainTimeout
		if nv := nextVS[desired.ServiceKey(vs).Normalize()]; nv != nil {
			timeout = nv.DrainTimeout // a reload may change the timeout along with the servers
		}
		for _, rs := range vs.RealServers {
			k := desired.Key(desired.ServiceKey(vs), rs.Address)
			if _, stays := want[k]; stays {
				continue
			}
			if _, already := drains[k]; already {
				continue
			}
			st, inKernel := kernel[k]
			if !inKernel || timeout <= 0 || Connections(st) == 0 {
				continue // nothing to wait for: the plan deletes it now
			}
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			d := &Drain{
				ID: id, Service: desired.Service(vs), Configured: rs.Weight, Since: now, Timeout: timeout,
				// The kernel's tunnel: a TUN destination keeps its encapsulation while it drains.
				Dest: ipvs.Destination{Address: rs.Address, Weight: 0, Forwarding: desired.Forwarding(rs.Forwarding), Tunnel: st.Tunnel},
			}
			if of != nil {
				d.Health, d.CheckKey = of(id)
			}
			drains[k] = d
		}
	}
	return drains, restored
}

// Strays are the destinations the kernel holds with connections in a
// configured service that the config does not name (left out of the
// config while the director was stopped): drained at start instead of
// cut at the first reconcile.
func Strays(cfg *config.Config, actual []ipvs.ServiceState, now time.Time) Set {
	want := desired.Configured(cfg)
	byKey := map[ipvs.ServiceKey]*config.VirtualServer{}
	for i := range cfg.VirtualServers {
		byKey[desired.ServiceKey(&cfg.VirtualServers[i]).Normalize()] = &cfg.VirtualServers[i]
	}
	out := Set{}
	for _, svc := range actual {
		vs := byKey[svc.Key.Normalize()]
		if vs == nil || vs.DrainTimeout <= 0 {
			continue
		}
		for _, d := range svc.Destinations {
			k := desired.Key(svc.Key, d.Address)
			if _, ok := want[k]; ok || k.Addr == desired.Key(svc.Key, vs.Fallback).Addr || Connections(d) == 0 {
				continue
			}
			out[k] = &Drain{
				ID: config.ServerID{VirtualServer: vs.Name, RealServer: d.Address}, Service: desired.Service(vs),
				Since: now, Timeout: vs.DrainTimeout,
				Dest: ipvs.Destination{Address: d.Address, Weight: 0, Forwarding: d.Forwarding, Tunnel: d.Tunnel},
			}
		}
	}
	return out
}

// Retired are the destinations with connections of a service retired at
// start (the last run managed it, the config dropped it), drained with
// timeout; UDP services delete at once, as they do by default. Its
// virtual server's name is unknown: the drains show the service key.
func Retired(svc *ipvs.ServiceState, timeout time.Duration, now time.Time) Set {
	out := Set{}
	if svc.Key.Protocol == ipvs.UDP || timeout <= 0 {
		return out
	}
	for _, d := range svc.Destinations {
		if Connections(d) == 0 {
			continue
		}
		out[desired.Key(svc.Key, d.Address)] = &Drain{
			ID: config.ServerID{VirtualServer: svc.Key.String(), RealServer: d.Address}, Service: svc.Service,
			Since: now, Timeout: timeout,
			Dest: ipvs.Destination{Address: d.Address, Weight: 0, Forwarding: d.Forwarding, Tunnel: d.Tunnel},
		}
	}
	return out
}

// With adds the draining destinations, at weight 0, to the desired table:
// into their service when it is still desired, else in a service of their
// own kept for them. desired is not changed.
func With(table []ipvs.DesiredService, drains Set) []ipvs.DesiredService {
	if len(drains) == 0 {
		return table
	}
	out := make([]ipvs.DesiredService, len(table))
	idx := map[ipvs.ServiceKey]int{}
	for i, ds := range table {
		out[i] = ds
		out[i].Destinations = slices.Clone(ds.Destinations)
		if _, dup := idx[ds.Key.Normalize()]; !dup {
			idx[ds.Key.Normalize()] = i
		}
	}
	for _, k := range drains.Keys() {
		d := drains[k]
		i, ok := idx[k.Service]
		if !ok {
			out = append(out, ipvs.DesiredService{Service: d.Service})
			i = len(out) - 1
			idx[k.Service] = i
		}
		if !slices.ContainsFunc(out[i].Destinations, func(x ipvs.Destination) bool { return desired.Key(k.Service, x.Address) == k }) {
			out[i].Destinations = append(out[i].Destinations, d.Dest)
		}
	}
	return out
}

// Keys lists the set's keys in order.
func (s Set) Keys() []desired.DestKey {
	keys := make([]desired.DestKey, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, desired.DestKey.Compare)
	return keys
}

// RetiredExcept lists the retired services that are not desired: a
// service kept for its draining servers is deleted only once they are gone.
func RetiredExcept(retired map[ipvs.ServiceKey]bool, table []ipvs.DesiredService) []ipvs.ServiceKey {
	keep := map[ipvs.ServiceKey]bool{}
	for _, ds := range table {
		keep[ds.Key.Normalize()] = true
	}
	var out []ipvs.ServiceKey
	for k := range retired {
		if !keep[k.Normalize()] {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, ipvs.ServiceKey.Compare)
	return out
}

// End is why a drain is over.
type End struct {
	Key    desired.DestKey
	Result string // "connections", "timeout", "gone"
	Conns  uint32 // connections left (timeout)
}

// Ended returns the drains that are over given a table read at now,
// sorted by key.
func Ended(drains Set, kernel map[desired.DestKey]ipvs.DestinationState, now time.Time) []End {
	var out []End
	for _, k := range drains.Keys() {
		d := drains[k]
		st, ok := kernel[k]
		switch {
		case !ok:
			out = append(out, End{Key: k, Result: "gone"})
		case Connections(st) == 0:
			out = append(out, End{Key: k, Result: "connections"})
		case now.Sub(d.Since) >= d.Timeout:
			out = append(out, End{Key: k, Result: "timeout", Conns: Connections(st)})
		}
	}
	return out
}
