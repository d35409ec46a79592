// Package desired turns the config and what the policies decided about
// each real server into the IPVS table the kernel should hold. It is pure:
// no I/O, no clock, no state; the same inputs give the same table.
package desired

import (
	"net/netip"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/slowstart"
)

// FallbackWeight is the sorry server's weight: its only peer is nothing.
const FallbackWeight = 1

// Hold is what an operator's override does to a real server.
type Hold uint8

const (
	HoldNone    Hold = iota
	HoldDrain        // weight 0, kept in the table
	HoldDisable      // removed from the table
)

// View is what the desired table needs to know of one real server besides
// the config: its health and what holds it out or keeps it in.
type View struct {
	State      health.State
	Hold       Hold // an operator's drain or disable
	Suppressed bool // flap damping holds it out though its checks pass
	Kept       bool // the panic guard keeps it in though its checks fail
	// HasWeight: the check reported a weight (exec's dynamic weight),
	// used instead of the configured one.
	HasWeight bool
	Weight    uint32
	// Ramp: the server started serving RampElapsed ago and the director
	// saw it start (policy/slowstart), so the virtual server's slow_start
	// ramps its weight. False when it served before the director knew it.
	Ramp        bool
	RampElapsed time.Duration
}

// ServingWeight is the weight a serving server is ramped towards: the
// configured one, or the one its check reported.
func (v View) ServingWeight(configured uint32) uint32 { return v.weight(configured) }

// weight is the weight rs gets while serving.
func (v View) weight(configured uint32) uint32 {
	if v.HasWeight {
		return v.Weight
	}
	return configured
}

// Serving reports whether the server should get its configured weight.
func (v View) Serving() bool {
	if v.Hold != HoldNone {
		return false
	}
	return v.Kept || (v.State == health.Up && !v.Suppressed)
}

// Input is what Build needs besides the config.
type Input struct {
	View func(config.ServerID) View
	// QuorumLost reports whether vs has lost quorum with this healthy
	// weight; nil: healthy < quorum, without hysteresis.
	QuorumLost func(vs *config.VirtualServer, healthy uint64) bool
}

// HealthyWeight is the sum of the weights of vs's serving real servers
// (configured, or reported by their check). A server in slow start counts
// with its full weight: quorum asks whether the pool can carry the load,
// and a healthy server can, however slowly it is being handed new
// connections; counting the ramp would keep the fallback in for most of
// a slow start after every server came back.
func HealthyWeight(vs *config.VirtualServer, view func(config.ServerID) View) uint64 {
	var sum uint64
	for _, rs := range vs.RealServers {
		if v := view(config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}); v.Serving() {
			sum += uint64(v.weight(rs.Weight))
		}
	}
	return sum
}

// QuorumOf is vs's quorum; a config built in code may leave it 0, which
// means the default, 1.
func QuorumOf(vs *config.VirtualServer) uint64 { return max(vs.Quorum, 1) }

// Build is the table the kernel should hold. A real server gets its weight
// while it is serving (View.Serving), ramped while it is in slow start; an operator's drain gives it weight
// 0 and disable takes it out; otherwise on_failure decides (weight 0 or
// absent; mh services always weight 0). While a virtual server has lost quorum and has a fallback, the
// fallback gets weight 1 and the serving real servers weight 0
// (keepalived's sorry server takeover: their established connections go on).
func Build(cfg *config.Config, in Input) []ipvs.DesiredService {
	out := make([]ipvs.DesiredService, 0, len(cfg.VirtualServers))
	var views []View
	for i := range cfg.VirtualServers {
		var ds ipvs.DesiredService
		ds, views = buildService(&cfg.VirtualServers[i], in, views)
		out = append(out, ds)
	}
	return out
}

// BuildService is Build's entry for vs alone: a virtual server's part of
// the table depends on its own real servers only, so a caller that knows
// which virtual servers' views changed may rebuild just those.
func BuildService(vs *config.VirtualServer, in Input) ipvs.DesiredService {
	ds, _ := buildService(vs, in, nil)
	return ds
}

// buildService is BuildService with views as scratch space (returned for
// reuse): View is asked once per real server.
func buildService(vs *config.VirtualServer, in Input, views []View) (ipvs.DesiredService, []View) {
	ds := ipvs.DesiredService{Service: Service(vs), Destinations: make([]ipvs.Destination, 0, len(vs.RealServers)+1)}
	views = views[:0]
	var healthy uint64 // HealthyWeight, from the views at hand
	for j := range vs.RealServers {
		v := in.View(config.ServerID{VirtualServer: vs.Name, RealServer: vs.RealServers[j].Address})
		if v.Serving() {
			healthy += uint64(v.weight(vs.RealServers[j].Weight))
		}
		views = append(views, v)
	}
	lost := healthy < QuorumOf(vs)
	if in.QuorumLost != nil {
		lost = in.QuorumLost(vs, healthy)
	}
	takeover := lost && vs.Fallback.IsValid()
	for j := range vs.RealServers {
		rs := &vs.RealServers[j]
		v := views[j]
		var w uint32
		switch {
		case v.Hold == HoldDisable:
			continue
		case v.Hold == HoldDrain:
			w = 0
		case v.Serving():
			w = v.weight(rs.Weight)
			if v.Ramp {
				w = slowstart.Weight(w, v.RampElapsed, vs.SlowStart)
			}
			if takeover {
				w = 0
			}
		case vs.OnFailure == "remove" && vs.Scheduler != "mh":
			// Maglev keeps a failed server at weight 0: removing it
			// would rebuild the lookup table and move other flows.
			continue
		}
		ds.Destinations = append(ds.Destinations, ipvs.Destination{
			Address: rs.Address, Weight: w, Forwarding: Forwarding(rs.Forwarding), Tunnel: TunnelOf(rs.Tunnel),
		})
	}
	if takeover {
		ds.Destinations = append(ds.Destinations, ipvs.Destination{
			Address: vs.Fallback, Weight: FallbackWeight, Forwarding: Forwarding(vs.Forwarding), Tunnel: TunnelOf(vs.Tunnel),
		})
	}
	return ds, views
}

// FromStates is Build with health alone: no holds, no quorum hysteresis.
func FromStates(cfg *config.Config, state func(config.ServerID) health.State) []ipvs.DesiredService {
	return Build(cfg, Input{View: func(id config.ServerID) View { return View{State: state(id)} }})
}

// ServiceKey is the kernel's key of vs.
func ServiceKey(vs *config.VirtualServer) ipvs.ServiceKey {
	fam := ipvs.IPv4
	if vs.Family == "ipv6" {
		fam = ipvs.IPv6
	}
	if vs.FWMark != 0 {
		return ipvs.ServiceKey{Family: fam, FWMark: vs.FWMark}
	}
	if vs.Address.Addr().Is6() && !vs.Address.Addr().Is4In6() {
		fam = ipvs.IPv6
	}
	return ipvs.ServiceKey{Family: fam, Protocol: protocol(vs.Protocol), Address: vs.Address}
}

// Service is the kernel service vs asks for.
func Service(vs *config.VirtualServer) ipvs.Service {
	return ipvs.Service{
		Key:                ServiceKey(vs),
		Scheduler:          vs.Scheduler,
		Persistence:        vs.Persistence,
		PersistenceNetmask: vs.PersistenceNetmask,
		SchedulerFlags:     config.SchedulerFlagBits(vs),
		OnePacket:          vs.OnePacket,
	}
}

func protocol(p string) ipvs.Protocol {
	switch p {
	case "udp":
		return ipvs.UDP
	case "sctp":
		return ipvs.SCTP
	}
	return ipvs.TCP
}

// Forwarding is the kernel's forwarding method for a config's word.
func Forwarding(f string) ipvs.Forwarding {
	switch f {
	case "dr":
		return ipvs.DR
	case "tun":
		return ipvs.TUN
	}
	return ipvs.NAT
}

// TunnelOf is the kernel's encapsulation for a config's tunnel.
func TunnelOf(t config.Tunnel) ipvs.Tunnel {
	out := ipvs.Tunnel{Port: t.Port}
	switch t.Type {
	case "gue":
		out.Type = ipvs.TunnelGUE
	case "gre":
		out.Type = ipvs.TunnelGRE
	}
	switch t.Csum {
	case "csum":
		out.Flags = ipvs.TunnelCsum
	case "remcsum":
		out.Flags = ipvs.TunnelRemCsum
	}
	return out
}

// DestKey names one destination of one service, normalized so that a
// table read and the config compare equal.
type DestKey struct {
	Service ipvs.ServiceKey
	Addr    netip.AddrPort
}

// Key is the normalized DestKey of addr in svc.
func Key(svc ipvs.ServiceKey, addr netip.AddrPort) DestKey {
	return DestKey{svc.Normalize(), netip.AddrPortFrom(addr.Addr().Unmap().WithZone(""), addr.Port())}
}

// Compare orders keys by service, then address.
func (k DestKey) Compare(o DestKey) int {
	if c := k.Service.Compare(o.Service); c != 0 {
		return c
	}
	return k.Addr.Compare(o.Addr)
}

// Index indexes a table read by normalized destination key, with counters.
func Index(t []ipvs.ServiceState) map[DestKey]ipvs.DestinationState {
	idx := map[DestKey]ipvs.DestinationState{}
	for _, s := range t {
		for _, d := range s.Destinations {
			idx[Key(s.Key, d.Address)] = d
		}
	}
	return idx
}

// Configured reports the destinations a config declares, by normalized key.
func Configured(cfg *config.Config) map[DestKey]config.ServerID {
	out := map[DestKey]config.ServerID{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for _, rs := range vs.RealServers {
			out[Key(ServiceKey(vs), rs.Address)] = config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
		}
	}
	return out
}

// PlannedStates is the health each real server of cfg starts with: what
// the director knows of it (known), else the adoption rule: a destination
// in the kernel with weight above 0 is up, anything else unknown. Shared
// by reloads and `director plan`.
func PlannedStates(cfg *config.Config, known map[config.ServerID]health.State, kernel map[DestKey]ipvs.DestinationState) map[config.ServerID]health.State {
	out := map[config.ServerID]health.State{}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for _, rs := range vs.RealServers {
			id := config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}
			if st, ok := known[id]; ok {
				out[id] = st
				continue
			}
			out[id] = health.Unknown
			if d, ok := kernel[Key(ServiceKey(vs), rs.Address)]; ok && d.Weight > 0 {
				out[id] = health.Up
			}
		}
	}
	return out
}
