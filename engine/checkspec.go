package engine

import (
	"net/netip"
	"sort"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
)

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
