package engine

import (
	"net/netip"
	"sort"

	"github.com/lvsdirector/director/checks"
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

// checkSpec is the check of one real server: the virtual server's check
// aimed at the real server, unless the check names its own address or port.
func checkSpec(vs *config.VirtualServer, rs *config.RealServer) checks.Spec {
	c := vs.Check
	addr, port := rs.Address.Addr(), rs.Address.Port()
	if c.Address.IsValid() {
		addr = c.Address
	}
	if c.Port != 0 {
		port = c.Port
	}
	s := checks.Spec{
		Type:          c.Type,
		Target:        netip.AddrPortFrom(addr, port),
		Source:        c.Source,
		Timeout:       c.Timeout,
		Interval:      c.Interval,
		Method:        c.Method,
		Path:          c.Path,
		Host:          c.Host,
		ExpectStatus:  c.ExpectStatus,
		ExpectBody:    c.ExpectBody,
		MaxBodyBytes:  c.MaxBodyBytes,
		TLS:           c.TLS || c.Type == "https",
		TLSSkipVerify: c.TLSSkipVerify,
		CAFile:        c.CAFile,
		ServerName:    c.ServerName,
		Send:          c.Send,
		Expect:        c.Expect,
		Privileged:    c.Privileged,
	}
	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s.Headers = append(s.Headers, checks.Header{Name: n, Value: c.Headers[n]})
	}
	return s
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

// desiredTable turns the config and the servers' health into the table
// the kernel should hold. It is pure: the same inputs give the same table.
func desiredTable(cfg *config.Config, state func(serverID) health.State) []ipvs.DesiredService {
	out := make([]ipvs.DesiredService, 0, len(cfg.VirtualServers))
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		ds := ipvs.DesiredService{Service: service(vs)}
		serving := false
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			w, present := desiredWeight(state(serverID{vs.Name, rs.Address}), rs.Weight, vs.OnFailure)
			if !present {
				continue
			}
			serving = serving || w > 0
			ds.Destinations = append(ds.Destinations, ipvs.Destination{
				Address: rs.Address, Weight: w, Forwarding: forwarding(rs.Forwarding),
			})
		}
		if !serving && vs.Fallback.IsValid() {
			ds.Destinations = append(ds.Destinations, ipvs.Destination{
				Address: vs.Fallback, Weight: fallbackWeight, Forwarding: forwarding(vs.Forwarding),
			})
		}
		out = append(out, ds)
	}
	return out
}
