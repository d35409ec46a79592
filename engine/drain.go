package engine

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// Graceful drain. A real server that leaves the config is not deleted at
// once, which would cut its connections: it is set to weight 0 (no new
// connections) and deleted when the kernel counts no active or inactive
// connections for it, or when its virtual server's drain_timeout passes.
// A virtual server that leaves the config keeps its kernel service until
// its last draining server is gone. A draining server that comes back in
// the config is restored, with the health verdict it had.

// drain is one real server on its way out.
type drain struct {
	id         serverID
	service    ipvs.Service     // its virtual service, in case that left the config too
	dest       ipvs.Destination // weight 0
	configured uint32           // the weight it had, for metrics
	since      time.Time
	timeout    time.Duration
	// machine is the server's health when it left, so that it comes back
	// with its verdict; nil for a destination found in the kernel at start.
	machine  *health.Machine
	checkKey string
}

func normKey(svc ipvs.ServiceKey, addr netip.AddrPort) destKey {
	return destKey{svc.Normalize(), netip.AddrPortFrom(addr.Addr().Unmap().WithZone(""), addr.Port())}
}

// indexStates indexes a table read by normalized service and address, with counters.
func indexStates(t []ipvs.ServiceState) map[destKey]ipvs.DestinationState {
	idx := map[destKey]ipvs.DestinationState{}
	for _, s := range t {
		for _, d := range s.Destinations {
			idx[normKey(s.Key, d.Address)] = d
		}
	}
	return idx
}

// connections is what a drain waits for. Persistence templates are left
// out: they are not connections, and they expire on their own.
func connections(d ipvs.DestinationState) uint32 {
	return d.Counters.ActiveConns + d.Counters.InactiveConns
}

// configured reports the destinations a config declares, by normalized key.
func configured(cfg *config.Config) map[destKey]serverID {
	out := map[destKey]serverID{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for _, rs := range vs.RealServers {
			out[normKey(serviceKey(vs), rs.Address)] = serverID{vs.Name, rs.Address}
		}
	}
	return out
}

// nextDrains works out the drains after moving from config old to next:
// running drains whose server is back in next are restored (returned
// apart), the others go on; real servers of old that next lacks start to
// drain when the kernel shows them with connections and their drain
// timeout is above zero (otherwise they are simply deleted). servers gives
// the health of old's servers. It is pure.
func nextDrains(old, next *config.Config, running map[destKey]*drain, servers map[serverID]*server,
	kernel map[destKey]ipvs.DestinationState, now time.Time) (drains, restored map[destKey]*drain) {
	want := configured(next)
	nextVS := map[ipvs.ServiceKey]*config.VirtualServer{}
	for i := range next.VirtualServers {
		nextVS[serviceKey(&next.VirtualServers[i]).Normalize()] = &next.VirtualServers[i]
	}
	drains, restored = map[destKey]*drain{}, map[destKey]*drain{}
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
		if nv := nextVS[serviceKey(vs).Normalize()]; nv != nil {
			timeout = nv.DrainTimeout // a reload may change the timeout along with the servers
		}
		for _, rs := range vs.RealServers {
			k := normKey(serviceKey(vs), rs.Address)
			if _, stays := want[k]; stays {
				continue
			}
			if _, already := drains[k]; already {
				continue
			}
			st, inKernel := kernel[k]
			if !inKernel || timeout <= 0 || connections(st) == 0 {
				continue // nothing to wait for: the plan deletes it now
			}
			id := serverID{vs.Name, rs.Address}
			d := &drain{
				id: id, service: service(vs), configured: rs.Weight, since: now, timeout: timeout,
				dest: ipvs.Destination{Address: rs.Address, Weight: 0, Forwarding: forwarding(rs.Forwarding)},
			}
			if s := servers[id]; s != nil {
				d.machine, d.checkKey = s.machine, s.checkKey
			}
			drains[k] = d
		}
	}
	return drains, restored
}

// withDrains adds the draining destinations, at weight 0, to the desired
// table: into their service when it is still desired, else in a service
// of their own kept for them. It is pure; desired is not changed.
func withDrains(desired []ipvs.DesiredService, drains map[destKey]*drain) []ipvs.DesiredService {
	if len(drains) == 0 {
		return desired
	}
	out := make([]ipvs.DesiredService, len(desired))
	idx := map[ipvs.ServiceKey]int{}
	for i, ds := range desired {
		out[i] = ds
		out[i].Destinations = slices.Clone(ds.Destinations)
		if _, dup := idx[ds.Key.Normalize()]; !dup {
			idx[ds.Key.Normalize()] = i
		}
	}
	keys := make([]destKey, 0, len(drains))
	for k := range drains {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b destKey) int {
		if c := a.svc.Compare(b.svc); c != 0 {
			return c
		}
		return a.addr.Compare(b.addr)
	})
	for _, k := range keys {
		d := drains[k]
		i, ok := idx[k.svc]
		if !ok {
			out = append(out, ipvs.DesiredService{Service: d.service})
			i = len(out) - 1
			idx[k.svc] = i
		}
		if !slices.ContainsFunc(out[i].Destinations, func(x ipvs.Destination) bool { return normKey(k.svc, x.Address) == k }) {
			out[i].Destinations = append(out[i].Destinations, d.dest)
		}
	}
	return out
}

// retiredExcept lists the retired services that are not desired: a
// service kept for its draining servers is deleted only once they are gone.
func retiredExcept(retired map[ipvs.ServiceKey]bool, desired []ipvs.DesiredService) []ipvs.ServiceKey {
	keep := map[ipvs.ServiceKey]bool{}
	for _, ds := range desired {
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

// desiredLocked is the table the kernel should hold now: the config with
// the servers' health, plus the draining servers; and the retired
// services to delete. Callers hold mu.
func (e *Engine) desiredLocked() ([]ipvs.DesiredService, []ipvs.ServiceKey) {
	desired := buildTable(e.cfg, tableInput{
		view: func(id serverID) serverView {
			st := health.Unknown
			if s := e.servers[id]; s != nil {
				st = s.machine.State()
			}
			return e.viewLocked(id, st) // overrides, damping, panic guard (admin.go)
		},
		quorumLost: e.quorumInputLocked(true),
	})
	desired = withDrains(desired, e.prod.drains)
	return desired, retiredExcept(e.retired, desired)
}

// drainEnd is why a drain is over.
type drainEnd struct {
	key    destKey
	result string // connections, timeout, gone
	conns  uint32 // connections left (timeout)
}

// endedDrains returns the drains that are over given a table read at now,
// sorted by key. It is pure.
func endedDrains(drains map[destKey]*drain, kernel map[destKey]ipvs.DestinationState, now time.Time) []drainEnd {
	var out []drainEnd
	for k, d := range drains {
		st, ok := kernel[k]
		switch {
		case !ok:
			out = append(out, drainEnd{key: k, result: "gone"})
		case connections(st) == 0:
			out = append(out, drainEnd{key: k, result: "connections"})
		case now.Sub(d.since) >= d.timeout:
			out = append(out, drainEnd{key: k, result: "timeout", conns: connections(st)})
		}
	}
	slices.SortFunc(out, func(a, b drainEnd) int {
		if c := a.key.svc.Compare(b.key.svc); c != 0 {
			return c
		}
		return a.key.addr.Compare(b.key.addr)
	})
	return out
}

// pollDrains reads the connection counts of draining servers and ends the
// drains that are over. It reports whether any ended, so that a reconcile
// deletes them. The table is read only while something drains.
func (e *Engine) pollDrains(ctx context.Context) bool {
	e.mu.Lock()
	n := len(e.prod.drains)
	e.mu.Unlock()
	if n == 0 {
		return false
	}
	actual, err := e.readTable(ctx)
	if err != nil {
		e.logIPVSError("drain", err)
		return false
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.actual = actual
	ends := endedDrains(e.prod.drains, indexStates(actual), now)
	for _, end := range ends {
		d := e.prod.drains[end.key]
		delete(e.prod.drains, end.key)
		args := []any{"virtual_server", d.id.vs, "real_server", d.id.rs.String(), "result", end.result,
			"drained_for", now.Sub(d.since).Round(time.Second)}
		switch end.result {
		case "timeout":
			e.log.Warn("real server drain timed out; deleting it with connections left", append(args,
				"connections", end.conns, "drain_timeout", d.timeout)...)
		case "gone":
			e.log.Info("draining real server is no longer in the kernel table", args...)
		default:
			e.log.Info("real server drained; deleting it", args...)
		}
		e.prod.metrics.DrainEnded(end.result)
		if e.servers[d.id] == nil {
			e.opts.Metrics.ForgetRealServer(d.id.vs, d.id.rs.String())
		}
	}
	return len(ends) > 0
}

// startDrainsLocked makes drains the running set: it logs and shows the
// new ones, and gives restored servers their verdict back. Called after
// adoptConfig; callers hold mu.
func (e *Engine) startDrainsLocked(drains, restored map[destKey]*drain, kernel map[destKey]ipvs.DestinationState) {
	for k, d := range drains {
		if _, running := e.prod.drains[k]; running {
			continue
		}
		e.log.Info("real server draining: weight 0 until its connections end", "virtual_server", d.id.vs,
			"real_server", d.id.rs.String(), "connections", connections(kernel[k]), "drain_timeout", d.timeout,
			"reason", "left the config")
		e.opts.Metrics.RealServer(d.id.vs, d.id.rs.String(), health.Draining.String(), 0, d.configured)
	}
	for _, d := range restored {
		s := e.servers[d.id]
		if s != nil && d.machine != nil && s.checkKey == d.checkKey {
			// Same server, same check: it keeps the verdict it had.
			rise, fall := s.machine.Thresholds()
			d.machine.SetThresholds(rise, fall)
			s.machine = d.machine
		}
		if s == nil {
			e.opts.Metrics.ForgetRealServer(d.id.vs, d.id.rs.String())
		}
		state := health.Unknown
		if s != nil {
			state = s.machine.State()
		}
		e.log.Info("draining real server is back in the config; drain cancelled", "virtual_server", d.id.vs,
			"real_server", d.id.rs.String(), "state", state.String())
		e.prod.metrics.DrainEnded("restored")
	}
	e.prod.drains = drains
}

// drainStrays, at start, drains destinations the kernel holds with
// connections in a configured service that the config does not name
// (left out of the config while the director was stopped), instead of
// cutting them at the first reconcile. Callers hold mu.
func (e *Engine) drainStrays(now time.Time) {
	want := configured(e.cfg)
	byKey := map[ipvs.ServiceKey]*config.VirtualServer{}
	for i := range e.cfg.VirtualServers {
		byKey[serviceKey(&e.cfg.VirtualServers[i]).Normalize()] = &e.cfg.VirtualServers[i]
	}
	for _, svc := range e.actual {
		vs := byKey[svc.Key.Normalize()]
		if vs == nil || vs.DrainTimeout <= 0 {
			continue
		}
		for _, d := range svc.Destinations {
			k := normKey(svc.Key, d.Address)
			if _, ok := want[k]; ok || k.addr == normKey(svc.Key, vs.Fallback).addr || connections(d) == 0 {
				continue
			}
			e.prod.drains[k] = &drain{
				id: serverID{vs.Name, d.Address}, service: service(vs), since: now, timeout: vs.DrainTimeout,
				dest: ipvs.Destination{Address: d.Address, Weight: 0, Forwarding: d.Forwarding},
			}
			e.log.Info("real server draining: weight 0 until its connections end", "virtual_server", vs.Name,
				"real_server", d.Address.String(), "connections", connections(d), "drain_timeout", vs.DrainTimeout,
				"reason", "in the kernel table but not in the config")
			e.opts.Metrics.RealServer(vs.Name, d.Address.String(), health.Draining.String(), 0, 0)
		}
	}
}

// DrainingServer is a real server on its way out, for status pages.
type DrainingServer struct {
	VirtualServer string
	RealServer    netip.AddrPort
	Service       ipvs.ServiceKey
	Since         time.Time
	Timeout       time.Duration
}

// Draining lists the servers draining now, sorted by virtual server and address.
func (e *Engine) Draining() []DrainingServer {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]DrainingServer, 0, len(e.prod.drains))
	for k, d := range e.prod.drains {
		out = append(out, DrainingServer{VirtualServer: d.id.vs, RealServer: d.id.rs, Service: k.svc, Since: d.since, Timeout: d.timeout})
	}
	slices.SortFunc(out, func(a, b DrainingServer) int {
		if a.VirtualServer != b.VirtualServer {
			if a.VirtualServer < b.VirtualServer {
				return -1
			}
			return 1
		}
		return a.RealServer.Compare(b.RealServer)
	})
	return out
}
