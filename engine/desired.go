package engine

import (
	"net/netip"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// serverID names one real server of one virtual server. The virtual
// server's name, not its address, is the identity: renaming a virtual
// server is a new one, moving it keeps its real servers' state.
type serverID struct {
	vs string
	rs netip.AddrPort
}

func (id serverID) String() string { return id.vs + "/" + id.rs.String() }

// fallbackWeight is the sorry server's weight: its only peer is nothing.
const fallbackWeight = 1

func serviceKey(vs *config.VirtualServer) ipvs.ServiceKey {
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

func protocol(p string) ipvs.Protocol {
	switch p {
	case "udp":
		return ipvs.UDP
	case "sctp":
		return ipvs.SCTP
	}
	return ipvs.TCP
}

func forwarding(f string) ipvs.Forwarding {
	switch f {
	case "dr":
		return ipvs.DR
	case "tun":
		return ipvs.TUN
	}
	return ipvs.NAT
}

func service(vs *config.VirtualServer) ipvs.Service {
	return ipvs.Service{
		Key:                serviceKey(vs),
		Scheduler:          vs.Scheduler,
		Persistence:        vs.Persistence,
		PersistenceNetmask: vs.PersistenceNetmask,
	}
}

// desiredWeight is what a real server in the given state gets: its weight
// when up; otherwise weight 0 (quiesce) or no destination at all (remove).
func desiredWeight(st health.State, configured uint32, onFailure string) (weight uint32, present bool) {
	if st == health.Up {
		return configured, true
	}
	if onFailure == "remove" {
		return 0, false
	}
	return 0, true
}

// serverView is what the desired table needs to know of one real server
// besides the config: its health and what holds it out or keeps it in.
type serverView struct {
	state      health.State
	override   overrideKind // an operator's drain or disable (override.go)
	suppressed bool         // flap damping holds it out though its checks pass
	held       bool         // the panic guard keeps it in though its checks fail
}

// serving reports whether the server should get its configured weight.
func (v serverView) serving() bool {
	if v.override != overrideNone {
		return false
	}
	return v.held || (v.state == health.Up && !v.suppressed)
}

// tableInput is what buildTable needs besides the config.
type tableInput struct {
	view func(serverID) serverView
	// quorumLost reports whether vs has lost quorum with this healthy
	// weight (the sum of the weights of its serving real servers); nil:
	// healthy < vs.Quorum, without hysteresis.
	quorumLost func(vs *config.VirtualServer, healthy uint64) bool
}

// desiredTable turns the config and the servers' health into the table
// the kernel should hold. It is pure: the same inputs give the same table.
func desiredTable(cfg *config.Config, state func(serverID) health.State) []ipvs.DesiredService {
	return buildTable(cfg, tableInput{view: func(id serverID) serverView { return serverView{state: state(id)} }})
}

// healthyWeight is the sum of the configured weights of vs's serving
// real servers.
func healthyWeight(vs *config.VirtualServer, view func(serverID) serverView) uint64 {
	var sum uint64
	for _, rs := range vs.RealServers {
		if view(serverID{vs.Name, rs.Address}).serving() {
			sum += uint64(rs.Weight)
		}
	}
	return sum
}

// buildTable is desiredTable with overrides, flap damping, the panic
// guard and quorum. A real server gets its weight when it is serving
// (serverView.serving); an operator's drain gives it weight 0 and disable
// takes it out; otherwise on_failure decides (weight 0 or absent). While
// the virtual server has lost quorum and has a fallback, the fallback gets
// weight 1 and the serving real servers weight 0 (keepalived's sorry
// server takeover: their established connections go on). It is pure.
func buildTable(cfg *config.Config, in tableInput) []ipvs.DesiredService {
	out := make([]ipvs.DesiredService, 0, len(cfg.VirtualServers))
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		ds := ipvs.DesiredService{Service: service(vs)}
		healthy := healthyWeight(vs, in.view)
		lost := healthy < quorumOf(vs)
		if in.quorumLost != nil {
			lost = in.quorumLost(vs, healthy)
		}
		takeover := lost && vs.Fallback.IsValid()
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			v := in.view(serverID{vs.Name, rs.Address})
			var w uint32
			present := true
			switch {
			case v.override == overrideDisable:
				present = false
			case v.override == overrideDrain:
				w = 0
			case v.serving():
				w = rs.Weight
				if takeover {
					w = 0
				}
			default:
				w, present = desiredWeight(health.Down, rs.Weight, vs.OnFailure)
			}
			if !present {
				continue
			}
			ds.Destinations = append(ds.Destinations, ipvs.Destination{
				Address: rs.Address, Weight: w, Forwarding: forwarding(rs.Forwarding),
			})
		}
		if takeover {
			ds.Destinations = append(ds.Destinations, ipvs.Destination{
				Address: vs.Fallback, Weight: fallbackWeight, Forwarding: forwarding(vs.Forwarding),
			})
		}
		out = append(out, ds)
	}
	return out
}
