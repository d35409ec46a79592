package config

import (
	"net/netip"
	"reflect"
	"slices"
)

// Change is what a reload changed, by virtual server name and real server
// address, each list sorted.
type Change struct {
	AddedVS, RemovedVS, ChangedVS []string
	AddedRS, RemovedRS            []string // "virtual_server/ip:port"
	// ReweightedRS are real servers kept with another weight, forwarding
	// or tunnel.
	ReweightedRS []string
	// RecheckedRS are real servers kept with other checks of their own
	// ([[virtual_server.real_server.check]]); only those checks restart.
	RecheckedRS []string
}

// Diff compares two configs. A virtual server is changed when any of its
// own settings or its checks differ; a real server that stays with another
// weight or forwarding method is reweighted, and one whose own checks
// changed while its virtual server's did not is rechecked (its virtual
// server is not counted as changed for either). It is pure.
func Diff(old, next *Config) Change {
	var c Change
	prev := map[string]*VirtualServer{}
	for i := range old.VirtualServers {
		prev[old.VirtualServers[i].Name] = &old.VirtualServers[i]
	}
	seen := map[string]bool{}
	for i := range next.VirtualServers {
		vs := &next.VirtualServers[i]
		seen[vs.Name] = true
		o := prev[vs.Name]
		if o == nil {
			c.AddedVS = append(c.AddedVS, vs.Name)
			for _, rs := range vs.RealServers {
				c.AddedRS = append(c.AddedRS, vs.Name+"/"+rs.Address.String())
			}
			continue
		}
		if !sameSettings(*o, *vs) {
			c.ChangedVS = append(c.ChangedVS, vs.Name)
		}
		had := map[netip.AddrPort]RealServer{}
		for _, rs := range o.RealServers {
			had[rs.Address] = rs
		}
		has := map[netip.AddrPort]bool{}
		for _, rs := range vs.RealServers {
			has[rs.Address] = true
			before, ok := had[rs.Address]
			switch {
			case !ok:
				c.AddedRS = append(c.AddedRS, vs.Name+"/"+rs.Address.String())
			case before.Weight != rs.Weight || before.Forwarding != rs.Forwarding || before.Tunnel != rs.Tunnel:
				c.ReweightedRS = append(c.ReweightedRS, vs.Name+"/"+rs.Address.String())
			}
			if ok && !reflect.DeepEqual(o.ChecksOf(&before), vs.ChecksOf(&rs)) && reflect.DeepEqual(o.Checks, vs.Checks) {
				c.RecheckedRS = append(c.RecheckedRS, vs.Name+"/"+rs.Address.String())
			}
		}
		for _, rs := range o.RealServers {
			if !has[rs.Address] {
				c.RemovedRS = append(c.RemovedRS, vs.Name+"/"+rs.Address.String())
			}
		}
	}
	for i := range old.VirtualServers {
		vs := &old.VirtualServers[i]
		if !seen[vs.Name] {
			c.RemovedVS = append(c.RemovedVS, vs.Name)
			for _, rs := range vs.RealServers {
				c.RemovedRS = append(c.RemovedRS, vs.Name+"/"+rs.Address.String())
			}
		}
	}
	for _, l := range []*[]string{&c.AddedVS, &c.RemovedVS, &c.ChangedVS, &c.AddedRS, &c.RemovedRS, &c.ReweightedRS, &c.RecheckedRS} {
		slices.Sort(*l)
	}
	return c
}

// sameSettings compares two virtual servers without their real servers
// and line numbers (moving a block in the file changes nothing).
func sameSettings(a, b VirtualServer) bool {
	a.RealServers, b.RealServers = nil, nil
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}
