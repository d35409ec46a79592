package config

import "net/netip"

// ServerID names one real server of one virtual server. The virtual
// server's name, not its address, is the identity: renaming a virtual
// server makes a new one, moving it keeps its real servers' state.
type ServerID struct {
	VirtualServer string
	RealServer    netip.AddrPort
}

func (id ServerID) String() string { return id.VirtualServer + "/" + id.RealServer.String() }

// Find returns the virtual server called name, or nil.
func (c *Config) Find(name string) *VirtualServer {
	for i := range c.VirtualServers {
		if c.VirtualServers[i].Name == name {
			return &c.VirtualServers[i]
		}
	}
	return nil
}

// ServerIDs lists every real server of the config, in file order.
func (c *Config) ServerIDs() []ServerID {
	out := make([]ServerID, 0, c.CountRealServers())
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		for _, rs := range vs.RealServers {
			out = append(out, ServerID{vs.Name, rs.Address})
		}
	}
	return out
}

// CountRealServers is the number of real servers over all virtual servers.
func (c *Config) CountRealServers() int {
	n := 0
	for _, vs := range c.VirtualServers {
		n += len(vs.RealServers)
	}
	return n
}
