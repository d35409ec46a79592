package ipvstest

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// The cases below say what Linux 6.1 does (checked in the e2e VM): it
// takes any protocol number and any service address, stores the
// persistence netmask whether or not the service is persistent, and reads
// a destination back with the forwarding method it was given, whether or
// not its address is local (older kernels reported local ones as Local).

var (
	vip   = netip.MustParseAddrPort("192.0.2.10:80")
	web   = ipvs.AddressKey(ipvs.TCP, vip)
	dns   = ipvs.AddressKey(ipvs.UDP, netip.MustParseAddrPort("192.0.2.10:53"))
	diam  = ipvs.AddressKey(ipvs.SCTP, netip.MustParseAddrPort("192.0.2.10:3868"))
	tls   = ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.11:443"))
	web6  = ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("[2001:db8::10]:80"))
	mark4 = ipvs.FWMarkKey(ipvs.IPv4, 10)
	mark6 = ipvs.FWMarkKey(ipvs.IPv6, 10)
)

func createService(s ipvs.Service) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpCreateService, Service: s}
}
func updateService(s ipvs.Service) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpUpdateService, Service: s}
}
func deleteService(k ipvs.ServiceKey) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpDeleteService, Service: ipvs.Service{Key: k}}
}
func createDest(k ipvs.ServiceKey, d ipvs.Destination) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpCreateDestination, Service: ipvs.Service{Key: k}, Destination: d}
}
func updateDest(k ipvs.ServiceKey, d ipvs.Destination) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpUpdateDestination, Service: ipvs.Service{Key: k}, Destination: d}
}
func deleteDest(k ipvs.ServiceKey, addr string) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpDeleteDestination, Service: ipvs.Service{Key: k}, Destination: ipvs.Destination{Address: ap(addr)}}
}

// listServices is the read call (a zero Kind).
var listServices ipvs.Op

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func dest(addr string, weight uint32, f ipvs.Forwarding) ipvs.Destination {
	return ipvs.Destination{Address: ap(addr), Weight: weight, Forwarding: f}
}

// tunDest is a TUN destination of weight 1 with encapsulation tun.
func tunDest(addr string, tun ipvs.Tunnel) ipvs.Destination {
	d := dest(addr, 1, ipvs.TUN)
	d.Tunnel = tun
	return d
}

func ok(op ipvs.Op) Step                   { return Step{Do: op} }
func fails(op ipvs.Op, err error) Step     { return Step{Do: op, Err: err} }
func canceled(op ipvs.Op) Step             { return Step{Do: op, Err: context.Canceled, Canceled: true} }
func unprivileged(op ipvs.Op) Step         { return Step{Do: op, Err: ipvs.ErrPermission, Unprivileged: true} }
func reads(want ...ipvs.ServiceState) Step { return Step{Want: append([]ipvs.ServiceState{}, want...)} }

// state is a service as it must read back (every field spelled out, no
// normalizing), with its destinations and zero counters.
func state(s ipvs.Service, ds ...ipvs.Destination) ipvs.ServiceState {
	st := ipvs.ServiceState{Service: s, Destinations: []ipvs.DestinationState{}}
	for _, d := range ds {
		st.Destinations = append(st.Destinations, ipvs.DestinationState{Destination: d})
	}
	return st
}

// svc is a service with the kernel's defaults for the rest: no
// persistence, a full netmask, no flags.
func svc(k ipvs.ServiceKey, scheduler string) ipvs.Service {
	return ipvs.Service{Key: k, Scheduler: scheduler, PersistenceNetmask: k.Bits()}
}

// kernelSchedulers are the schedulers of the kernel the e2e VM runs
// (twos came with Linux 6.2) and "none", which schedules nothing.
func kernelSchedulers() []string {
	return append(slices.DeleteFunc(slices.Clone(ipvs.Schedulers), func(s string) bool { return s == "twos" }), "none")
}

// Cases is the contract of ipvs.Table, in one list.
func Cases() []Case {
	return []Case{
		// Reading back.
		{Name: "an empty table lists no services", Steps: []Step{reads()}},
		{Name: "a service reads back with the kernel's defaults", Steps: []Step{
			ok(createService(ipvs.Service{Key: web})),
			reads(state(svc(web, "wlc"))),
		}},
		{Name: "tcp, udp and sctp services on one address are distinct", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: ipvs.AddressKey(ipvs.UDP, vip), Scheduler: "lc"})),
			ok(createService(ipvs.Service{Key: dns, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: diam, Scheduler: "wrr"})),
			reads(state(svc(web, "rr")), state(svc(ipvs.AddressKey(ipvs.UDP, vip), "lc")), state(svc(dns, "rr")), state(svc(diam, "wrr"))),
		}},
		{Name: "an IPv6 service reads back with a /128 netmask", Steps: []Step{
			ok(createService(ipvs.Service{Key: web6, Scheduler: "nq"})),
			reads(state(ipvs.Service{Key: web6, Scheduler: "nq", PersistenceNetmask: 128})),
		}},
		{Name: "firewall-mark services are per family", Steps: []Step{
			ok(createService(ipvs.Service{Key: mark4, Scheduler: "lblc"})),
			ok(createService(ipvs.Service{Key: mark6, Scheduler: "dh"})),
			reads(state(svc(mark4, "lblc")), state(svc(mark6, "dh"))),
			ok(deleteService(mark4)),
			reads(state(svc(mark6, "dh"))),
		}},
		{Name: "services list by family, address services first, then protocol, address and mark", Steps: []Step{
			ok(createService(ipvs.Service{Key: mark6})),
			ok(createService(ipvs.Service{Key: tls})),
			ok(createService(ipvs.Service{Key: web6})),
			ok(createService(ipvs.Service{Key: dns})),
			ok(createService(ipvs.Service{Key: ipvs.FWMarkKey(ipvs.IPv4, 2)})),
			ok(createService(ipvs.Service{Key: web})),
			ok(createService(ipvs.Service{Key: mark4})),
			// reads sorts what it wants with Key.Compare: the table must list in that order.
			reads(state(svc(web, "wlc")), state(svc(tls, "wlc")), state(svc(dns, "wlc")), state(svc(ipvs.FWMarkKey(ipvs.IPv4, 2), "wlc")),
				state(svc(mark4, "wlc")), state(svc(web6, "wlc")), state(svc(mark6, "wlc"))),
		}},
		{Name: "every scheduler of the kernel, and none", Steps: schedulerSteps()},
		{Name: "persistence is kept in whole seconds, rounded up", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Persistence: 1500 * time.Millisecond})),
			ok(createService(ipvs.Service{Key: tls, Persistence: time.Millisecond})),
			ok(createService(ipvs.Service{Key: dns, Persistence: 300 * time.Second})),
			ok(createService(ipvs.Service{Key: web6, Persistence: -5 * time.Second})),
			reads(state(ipvs.Service{Key: web, Scheduler: "wlc", Persistence: 2 * time.Second, PersistenceNetmask: 32}),
				state(ipvs.Service{Key: tls, Scheduler: "wlc", Persistence: time.Second, PersistenceNetmask: 32}),
				state(ipvs.Service{Key: dns, Scheduler: "wlc", Persistence: 300 * time.Second, PersistenceNetmask: 32}),
				state(svc(web6, "wlc"))),
		}},
		{Name: "the persistence netmask is kept, persistent or not; zero or too long is the full prefix", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Persistence: time.Minute, PersistenceNetmask: 24})),
			ok(createService(ipvs.Service{Key: tls, PersistenceNetmask: 8})),
			ok(createService(ipvs.Service{Key: dns, PersistenceNetmask: 33})),
			ok(createService(ipvs.Service{Key: web6, Persistence: time.Minute, PersistenceNetmask: 64})),
			ok(createService(ipvs.Service{Key: mark6, PersistenceNetmask: 200})),
			ok(createService(ipvs.Service{Key: mark4, PersistenceNetmask: 0})),
			reads(state(ipvs.Service{Key: web, Scheduler: "wlc", Persistence: time.Minute, PersistenceNetmask: 24}),
				state(ipvs.Service{Key: tls, Scheduler: "wlc", PersistenceNetmask: 8}),
				state(svc(dns, "wlc")),
				state(ipvs.Service{Key: web6, Scheduler: "wlc", Persistence: time.Minute, PersistenceNetmask: 64}),
				state(svc(mark6, "wlc")),
				state(svc(mark4, "wlc"))),
		}},
		{Name: "only the three scheduler flag bits are kept", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "sh", SchedulerFlags: ipvs.SHFallback | ipvs.SHPort})),
			ok(createService(ipvs.Service{Key: tls, Scheduler: "mh", SchedulerFlags: ipvs.MHFallback})),
			ok(createService(ipvs.Service{Key: dns, Scheduler: "rr", SchedulerFlags: 0xff})),
			reads(state(ipvs.Service{Key: web, Scheduler: "sh", PersistenceNetmask: 32, SchedulerFlags: ipvs.SHFallback | ipvs.SHPort}),
				state(ipvs.Service{Key: tls, Scheduler: "mh", PersistenceNetmask: 32, SchedulerFlags: ipvs.MHFallback}),
				state(ipvs.Service{Key: dns, Scheduler: "rr", PersistenceNetmask: 32, SchedulerFlags: 7})),
		}},
		{Name: "keys are normalized: family from the address, unmapped, no zone", Steps: []Step{
			ok(createService(ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv6, Protocol: ipvs.TCP, Address: ap("[::ffff:192.0.2.10]:80")}})),
			fails(createService(ipvs.Service{Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Address: vip}}), ipvs.ErrServiceExists),
			ok(createService(ipvs.Service{Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Address: ap("[2001:db8::10%eth0]:80")}})),
			reads(state(svc(web, "wlc")), state(svc(web6, "wlc"))),
			ok(deleteService(ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: ap("[::ffff:192.0.2.10]:80")})),
			reads(state(svc(web6, "wlc"))),
		}},
		{Name: "a firewall-mark key has no protocol and no address", Steps: []Step{
			ok(createService(ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.UDP, Address: vip, FWMark: 10}, Scheduler: "rr"})),
			reads(state(svc(mark4, "rr"))),
			ok(createDest(ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, FWMark: 10}, dest("10.0.0.5:0", 1, ipvs.DR))),
			reads(state(svc(mark4, "rr"), dest("10.0.0.5:0", 1, ipvs.DR))),
		}},
		{Name: "the kernel takes any protocol number and any service address", Steps: []Step{
			ok(createService(ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv4, Address: ap("192.0.2.1:80")}})),
			ok(createService(ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: 47, Address: ap("192.0.2.2:80")}})),
			ok(createService(ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, ap("0.0.0.0:80"))})),
			ok(createService(ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, ap("224.0.0.1:80"))})),
			ok(createService(ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, ap("192.0.2.3:0"))})),
			reads(state(svc(ipvs.ServiceKey{Family: ipvs.IPv4, Address: ap("192.0.2.1:80")}, "wlc")),
				state(svc(ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: 47, Address: ap("192.0.2.2:80")}, "wlc")),
				state(svc(ipvs.AddressKey(ipvs.TCP, ap("0.0.0.0:80")), "wlc")),
				state(svc(ipvs.AddressKey(ipvs.TCP, ap("224.0.0.1:80")), "wlc")),
				state(svc(ipvs.AddressKey(ipvs.TCP, ap("192.0.2.3:0")), "wlc"))),
			fails(deleteService(ipvs.AddressKey(ipvs.TCP, ap("192.0.2.1:80"))), ipvs.ErrServiceNotFound),
		}},
		{Name: "update replaces every setting and keeps the destinations", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "sh", Persistence: 300 * time.Second, PersistenceNetmask: 24, SchedulerFlags: ipvs.SHPort})),
			ok(createDest(web, dest("10.0.0.1:80", 5, ipvs.DR))),
			ok(updateService(ipvs.Service{Key: web, Scheduler: "rr"})),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 5, ipvs.DR))),
			ok(createService(ipvs.Service{Key: web6, Persistence: time.Minute, PersistenceNetmask: 64})),
			ok(updateService(ipvs.Service{Key: web6, Scheduler: "fo", Persistence: 2 * time.Minute, PersistenceNetmask: 48})),
			ok(createService(ipvs.Service{Key: mark6, Scheduler: "dh"})),
			ok(updateService(ipvs.Service{Key: mark6, Scheduler: "ovf", Persistence: time.Second})),
			ok(createService(ipvs.Service{Key: dns, Scheduler: "rr"})),
			ok(updateService(ipvs.Service{Key: dns, Scheduler: "lc", Persistence: 10 * time.Second})),
			ok(createService(ipvs.Service{Key: diam, Scheduler: "wrr"})),
			ok(updateService(ipvs.Service{Key: diam, Scheduler: "sed"})),
			ok(createService(ipvs.Service{Key: mark4, Scheduler: "lblc"})),
			ok(updateService(ipvs.Service{Key: mark4, Scheduler: "lblcr"})),
			ok(createService(ipvs.Service{Key: tls, Scheduler: "sh", SchedulerFlags: ipvs.SHFallback | ipvs.SHPort})),
			ok(updateService(ipvs.Service{Key: tls, Scheduler: "sh", SchedulerFlags: ipvs.SHPort})),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 5, ipvs.DR)),
				state(ipvs.Service{Key: web6, Scheduler: "fo", Persistence: 2 * time.Minute, PersistenceNetmask: 48}),
				state(ipvs.Service{Key: mark6, Scheduler: "ovf", Persistence: time.Second, PersistenceNetmask: 128}),
				state(ipvs.Service{Key: dns, Scheduler: "lc", Persistence: 10 * time.Second, PersistenceNetmask: 32}),
				state(svc(diam, "sed")),
				state(svc(mark4, "lblcr")),
				state(ipvs.Service{Key: tls, Scheduler: "sh", PersistenceNetmask: 32, SchedulerFlags: ipvs.SHPort})),
			ok(updateService(ipvs.Service{Key: tls, Scheduler: "mh", SchedulerFlags: ipvs.MHFallback})),
			ok(updateService(ipvs.Service{Key: dns, Scheduler: "lc"})),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 5, ipvs.DR)),
				state(ipvs.Service{Key: web6, Scheduler: "fo", Persistence: 2 * time.Minute, PersistenceNetmask: 48}),
				state(ipvs.Service{Key: mark6, Scheduler: "ovf", Persistence: time.Second, PersistenceNetmask: 128}),
				state(svc(dns, "lc")),
				state(svc(diam, "sed")),
				state(svc(mark4, "lblcr")),
				state(ipvs.Service{Key: tls, Scheduler: "mh", PersistenceNetmask: 32, SchedulerFlags: ipvs.MHFallback})),
		}},
		{Name: "delete removes a service with its destinations", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
			ok(createDest(web, dest("10.0.0.2:80", 1, ipvs.NAT))),
			ok(createService(ipvs.Service{Key: tls, Scheduler: "rr"})),
			ok(deleteService(web)),
			reads(state(svc(tls, "rr"))),
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			reads(state(svc(web, "rr")), state(svc(tls, "rr"))),
		}},

		// Destinations.
		{Name: "destinations read back with their weight and forwarding", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "wrr"})),
			ok(createDest(web, dest("10.0.0.1:8080", 100, ipvs.NAT))),
			ok(createDest(web, dest("10.0.0.2:80", 1, ipvs.DR))),
			ok(createDest(web, dest("10.0.0.3:80", 2, ipvs.TUN))),
			ok(createDest(web, dest("10.0.0.4:80", 0, ipvs.NAT))),
			ok(createDest(web, dest("10.0.0.5:80", math.MaxInt32, ipvs.NAT))),
			ok(createDest(web, dest("10.0.0.6:0", 1, ipvs.NAT))),
			reads(state(svc(web, "wrr"), dest("10.0.0.1:8080", 100, ipvs.NAT), dest("10.0.0.2:80", 1, ipvs.DR),
				dest("10.0.0.3:80", 2, ipvs.TUN), dest("10.0.0.4:80", 0, ipvs.NAT), dest("10.0.0.5:80", math.MaxInt32, ipvs.NAT),
				dest("10.0.0.6:0", 1, ipvs.NAT))),
		}},
		{Name: "update changes weight and forwarding", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "wrr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "wrr"})),
			ok(createService(ipvs.Service{Key: mark4, Scheduler: "wrr"})),
			ok(createDest(web, dest("10.0.0.1:8080", 100, ipvs.NAT))),
			ok(createDest(web, dest("10.0.0.2:80", 1, ipvs.DR))),
			ok(createDest(web, dest("10.0.0.3:80", 2, ipvs.TUN))),
			ok(createDest(web6, dest("[2001:db8::1]:80", 1, ipvs.NAT))),
			ok(createDest(web6, dest("10.0.0.4:80", 3, ipvs.TUN))),
			ok(createDest(mark4, dest("10.0.0.5:0", 1, ipvs.DR))),
			ok(updateDest(web, dest("10.0.0.1:8080", 0, ipvs.NAT))),
			ok(updateDest(web, dest("10.0.0.2:80", 5, ipvs.NAT))),
			ok(updateDest(web, dest("10.0.0.3:80", 2, ipvs.DR))),
			ok(updateDest(web6, dest("[2001:db8::1]:80", 9, ipvs.TUN))),
			ok(updateDest(web6, dest("10.0.0.4:80", 4, ipvs.TUN))),
			ok(updateDest(mark4, dest("10.0.0.5:0", 0, ipvs.DR))),
			reads(state(svc(web, "wrr"), dest("10.0.0.1:8080", 0, ipvs.NAT), dest("10.0.0.2:80", 5, ipvs.NAT), dest("10.0.0.3:80", 2, ipvs.DR)),
				state(svc(web6, "wrr"), dest("[2001:db8::1]:80", 9, ipvs.TUN), dest("10.0.0.4:80", 4, ipvs.TUN)),
				state(svc(mark4, "wrr"), dest("10.0.0.5:0", 0, ipvs.DR))),
			ok(deleteDest(web, "10.0.0.2:80")),
			ok(deleteDest(web6, "10.0.0.4:80")),
			ok(deleteDest(mark4, "10.0.0.5:0")),
			reads(state(svc(web, "wrr"), dest("10.0.0.1:8080", 0, ipvs.NAT), dest("10.0.0.3:80", 2, ipvs.DR)),
				state(svc(web6, "wrr"), dest("[2001:db8::1]:80", 9, ipvs.TUN)),
				state(svc(mark4, "wrr"))),
			ok(deleteDest(web, "10.0.0.1:8080")),
			ok(deleteDest(web, "10.0.0.3:80")),
			ok(deleteDest(web6, "[2001:db8::1]:80")),
			reads(state(svc(web, "wrr")), state(svc(web6, "wrr")), state(svc(mark4, "wrr"))),
		}},
		{Name: "tunnel encapsulations read back and change on update", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "rr"})),
			ok(createDest(web, tunDest("10.0.0.1:80", ipvs.Tunnel{}))),
			ok(createDest(web, tunDest("10.0.0.2:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}))),
			ok(createDest(web, tunDest("10.0.0.3:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6081, Flags: ipvs.TunnelCsum}))),
			ok(createDest(web, tunDest("10.0.0.4:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6082, Flags: ipvs.TunnelRemCsum}))),
			ok(createDest(web, tunDest("10.0.0.5:80", ipvs.Tunnel{Type: ipvs.TunnelGRE}))),
			ok(createDest(web, tunDest("10.0.0.6:80", ipvs.Tunnel{Type: ipvs.TunnelGRE, Flags: ipvs.TunnelCsum}))),
			ok(createDest(web6, tunDest("10.0.0.7:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}))), // IPv4 tunnel for an IPv6 service
			reads(state(svc(web, "rr"), tunDest("10.0.0.1:80", ipvs.Tunnel{}),
				tunDest("10.0.0.2:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}),
				tunDest("10.0.0.3:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6081, Flags: ipvs.TunnelCsum}),
				tunDest("10.0.0.4:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6082, Flags: ipvs.TunnelRemCsum}),
				tunDest("10.0.0.5:80", ipvs.Tunnel{Type: ipvs.TunnelGRE}),
				tunDest("10.0.0.6:80", ipvs.Tunnel{Type: ipvs.TunnelGRE, Flags: ipvs.TunnelCsum})),
				state(svc(web6, "rr"), tunDest("10.0.0.7:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}))),
			ok(updateDest(web, tunDest("10.0.0.1:80", ipvs.Tunnel{Type: ipvs.TunnelGRE}))),
			ok(updateDest(web, tunDest("10.0.0.2:80", ipvs.Tunnel{}))),
			ok(updateDest(web, tunDest("10.0.0.5:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 7000, Flags: ipvs.TunnelCsum}))),
			reads(state(svc(web, "rr"), tunDest("10.0.0.1:80", ipvs.Tunnel{Type: ipvs.TunnelGRE}),
				tunDest("10.0.0.2:80", ipvs.Tunnel{}),
				tunDest("10.0.0.3:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6081, Flags: ipvs.TunnelCsum}),
				tunDest("10.0.0.4:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6082, Flags: ipvs.TunnelRemCsum}),
				tunDest("10.0.0.5:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 7000, Flags: ipvs.TunnelCsum}),
				tunDest("10.0.0.6:80", ipvs.Tunnel{Type: ipvs.TunnelGRE, Flags: ipvs.TunnelCsum})),
				state(svc(web6, "rr"), tunDest("10.0.0.7:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}))),
		}},
		{Name: "a GUE tunnel needs a port", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			fails(createDest(web, tunDest("10.0.0.1:80", ipvs.Tunnel{Type: ipvs.TunnelGUE})), ipvs.ErrInvalid),
			ok(createDest(web, tunDest("10.0.0.1:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}))),
			fails(updateDest(web, tunDest("10.0.0.1:80", ipvs.Tunnel{Type: ipvs.TunnelGUE})), ipvs.ErrInvalid),
			fails(createDest(web, tunDest("10.0.0.2:80", ipvs.Tunnel{Type: 7})), ipvs.ErrInvalid),
			reads(state(svc(web, "rr"), tunDest("10.0.0.1:80", ipvs.Tunnel{Type: ipvs.TunnelGUE, Port: 6080}))),
		}},
		{Name: "a destination at a local address reads back with the forwarding it was given", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "rr"})),
			ok(createDest(web, dest("127.0.0.1:8080", 1, ipvs.DR))),
			ok(createDest(web, dest("127.0.0.2:8080", 1, ipvs.TUN))),
			ok(createDest(web, dest("127.0.0.3:8080", 1, ipvs.NAT))),
			ok(createDest(web6, dest("[::1]:8080", 1, ipvs.DR))),
			reads(state(svc(web, "rr"), dest("127.0.0.1:8080", 1, ipvs.DR), dest("127.0.0.2:8080", 1, ipvs.TUN), dest("127.0.0.3:8080", 1, ipvs.NAT)),
				state(svc(web6, "rr"), dest("[::1]:8080", 1, ipvs.DR))),
			ok(updateDest(web, dest("127.0.0.1:8080", 2, ipvs.NAT))),
			reads(state(svc(web, "rr"), dest("127.0.0.1:8080", 2, ipvs.NAT), dest("127.0.0.2:8080", 1, ipvs.TUN), dest("127.0.0.3:8080", 1, ipvs.NAT)),
				state(svc(web6, "rr"), dest("[::1]:8080", 1, ipvs.DR))),
		}},
		{Name: "Local forwarding reads back as Local until changed", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createDest(web, dest("10.0.0.9:80", 1, ipvs.Local))),
			reads(state(svc(web, "rr"), dest("10.0.0.9:80", 1, ipvs.Local))),
			ok(updateDest(web, dest("10.0.0.9:80", 2, ipvs.DR))),
			reads(state(svc(web, "rr"), dest("10.0.0.9:80", 2, ipvs.DR))),
		}},
		{Name: "a destination of the other family needs tunnelling", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: mark6, Scheduler: "rr"})),
			ok(createDest(web6, dest("10.0.0.4:80", 1, ipvs.TUN))),
			ok(createDest(web, dest("[2001:db8::4]:80", 1, ipvs.TUN))),
			ok(createDest(mark6, dest("10.0.0.4:0", 1, ipvs.TUN))),
			fails(createDest(web6, dest("10.0.0.1:80", 1, ipvs.DR)), ipvs.ErrInvalid),
			fails(createDest(web6, dest("10.0.0.1:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(web, dest("[2001:db8::1]:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(mark6, dest("10.0.0.1:0", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(updateDest(web6, dest("10.0.0.4:80", 1, ipvs.DR)), ipvs.ErrInvalid),
			reads(state(svc(web, "rr"), dest("[2001:db8::4]:80", 1, ipvs.TUN)),
				state(svc(web6, "rr"), dest("10.0.0.4:80", 1, ipvs.TUN)),
				state(svc(mark6, "rr"), dest("10.0.0.4:0", 1, ipvs.TUN))),
			ok(deleteDest(web6, "10.0.0.4:80")),
			reads(state(svc(web, "rr"), dest("[2001:db8::4]:80", 1, ipvs.TUN)), state(svc(web6, "rr")),
				state(svc(mark6, "rr"), dest("10.0.0.4:0", 1, ipvs.TUN))),
		}},
		{Name: "an IPv4-mapped destination is an IPv4 destination", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "rr"})),
			ok(createDest(web, dest("[::ffff:10.0.0.13]:80", 1, ipvs.NAT))),
			fails(createDest(web, dest("10.0.0.13:80", 2, ipvs.NAT)), ipvs.ErrDestinationExists),
			fails(createDest(web6, dest("[::ffff:10.0.0.1]:80", 1, ipvs.DR)), ipvs.ErrInvalid),
			reads(state(svc(web, "rr"), dest("10.0.0.13:80", 1, ipvs.NAT)), state(svc(web6, "rr"))),
			ok(deleteDest(web, "[::ffff:10.0.0.13]:80")),
			reads(state(svc(web, "rr")), state(svc(web6, "rr"))),
		}},
		{Name: "destinations are told apart by address and port", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
			ok(createDest(web, dest("10.0.0.1:8080", 2, ipvs.NAT))),
			fails(deleteDest(web, "10.0.0.1:81"), ipvs.ErrDestinationNotFound),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 1, ipvs.NAT), dest("10.0.0.1:8080", 2, ipvs.NAT))),
		}},
		{Name: "the kernel refuses addresses that cannot be a real server", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "rr"})),
			fails(createDest(web, dest("0.0.0.0:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(web, dest("255.255.255.255:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(web, dest("224.0.0.5:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(web6, dest("[::]:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(web6, dest("[ff02::1]:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(createDest(web6, dest("[fe80::1]:80", 1, ipvs.DR)), ipvs.ErrInvalid),
			// Unusual but unicast: taken.
			ok(createDest(web, dest("0.1.2.3:80", 1, ipvs.NAT))),
			ok(createDest(web, dest("169.254.0.5:80", 1, ipvs.NAT))),
			ok(createDest(web, dest("240.0.0.5:80", 1, ipvs.NAT))),
			ok(createDest(web6, dest("[fc00::1]:80", 1, ipvs.NAT))),
			reads(state(svc(web, "rr"), dest("0.1.2.3:80", 1, ipvs.NAT), dest("169.254.0.5:80", 1, ipvs.NAT), dest("240.0.0.5:80", 1, ipvs.NAT)),
				state(svc(web6, "rr"), dest("[fc00::1]:80", 1, ipvs.NAT))),
		}},
		{Name: "a weight above 2^31-1 is invalid", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "wrr"})),
			fails(createDest(web, dest("10.0.0.1:80", 1<<31, ipvs.NAT)), ipvs.ErrInvalid),
			ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
			fails(updateDest(web, dest("10.0.0.1:80", math.MaxUint32, ipvs.NAT)), ipvs.ErrInvalid),
			reads(state(svc(web, "wrr"), dest("10.0.0.1:80", 1, ipvs.NAT))),
		}},
		{Name: "a destination needs an address and a known forwarding method", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
			fails(createDest(web, ipvs.Destination{Weight: 1}), ipvs.ErrInvalid),
			fails(updateDest(web, ipvs.Destination{Weight: 1}), ipvs.ErrInvalid),
			fails(deleteDest(web, "0.0.0.0:0"), ipvs.ErrDestinationNotFound),
			fails(ipvs.Op{Kind: ipvs.OpDeleteDestination, Service: ipvs.Service{Key: web}}, ipvs.ErrInvalid),
			fails(createDest(web, dest("10.0.0.2:80", 1, ipvs.Local+1)), ipvs.ErrInvalid),
			fails(updateDest(web, dest("10.0.0.1:80", 1, ipvs.Local+1)), ipvs.ErrInvalid),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 1, ipvs.NAT))),
		}},

		// The sentinel errors.
		{Name: "creating a service twice: ErrServiceExists", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: web6, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: mark4, Scheduler: "rr"})),
			fails(createService(ipvs.Service{Key: web, Scheduler: "wlc", Persistence: time.Minute}), ipvs.ErrServiceExists),
			fails(createService(ipvs.Service{Key: web6, Scheduler: "rr"}), ipvs.ErrServiceExists),
			fails(createService(ipvs.Service{Key: mark4, Scheduler: "sh"}), ipvs.ErrServiceExists),
			reads(state(svc(web, "rr")), state(svc(web6, "rr")), state(svc(mark4, "rr"))),
		}},
		{Name: "a scheduler the kernel lacks: ErrUnknownScheduler", Steps: []Step{
			fails(createService(ipvs.Service{Key: tls, Scheduler: "bogus"}), ipvs.ErrUnknownScheduler),
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			fails(updateService(ipvs.Service{Key: web, Scheduler: "bogus"}), ipvs.ErrUnknownScheduler),
			reads(state(svc(web, "rr"))),
		}},
		{Name: "a missing service: ErrServiceNotFound", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createService(ipvs.Service{Key: mark4, Scheduler: "rr"})),
			fails(updateService(ipvs.Service{Key: tls, Scheduler: "rr"}), ipvs.ErrServiceNotFound),
			fails(deleteService(tls), ipvs.ErrServiceNotFound),
			fails(deleteService(ipvs.AddressKey(ipvs.UDP, vip)), ipvs.ErrServiceNotFound),
			fails(deleteService(mark6), ipvs.ErrServiceNotFound),
			fails(createDest(tls, dest("10.0.0.1:80", 1, ipvs.NAT)), ipvs.ErrServiceNotFound),
			fails(updateDest(tls, dest("10.0.0.1:80", 1, ipvs.NAT)), ipvs.ErrServiceNotFound),
			fails(deleteDest(tls, "10.0.0.1:80"), ipvs.ErrServiceNotFound),
			ok(deleteService(web)),
			fails(deleteService(web), ipvs.ErrServiceNotFound),
			reads(state(svc(mark4, "rr"))),
		}},
		{Name: "a destination twice or missing: ErrDestinationExists, ErrDestinationNotFound", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
			fails(createDest(web, dest("10.0.0.1:80", 7, ipvs.DR)), ipvs.ErrDestinationExists),
			fails(updateDest(web, dest("10.0.0.2:80", 1, ipvs.NAT)), ipvs.ErrDestinationNotFound),
			fails(deleteDest(web, "10.0.0.2:80"), ipvs.ErrDestinationNotFound),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 1, ipvs.NAT))),
			ok(deleteDest(web, "10.0.0.1:80")),
			fails(deleteDest(web, "10.0.0.1:80"), ipvs.ErrDestinationNotFound),
			reads(state(svc(web, "rr"))),
		}},
		{Name: "a key without a family or without an address and a mark: ErrInvalid", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			fails(createService(ipvs.Service{Key: ipvs.ServiceKey{FWMark: 1}}), ipvs.ErrInvalid),
			fails(createService(ipvs.Service{Key: ipvs.ServiceKey{Family: 7, FWMark: 1}}), ipvs.ErrInvalid),
			fails(createService(ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP}}), ipvs.ErrInvalid),
			fails(updateService(ipvs.Service{Key: ipvs.ServiceKey{FWMark: 1}}), ipvs.ErrInvalid),
			fails(deleteService(ipvs.ServiceKey{FWMark: 1}), ipvs.ErrInvalid),
			fails(createDest(ipvs.ServiceKey{FWMark: 1}, dest("10.0.0.1:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(updateDest(ipvs.ServiceKey{FWMark: 1}, dest("10.0.0.1:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			fails(deleteDest(ipvs.ServiceKey{FWMark: 1}, "10.0.0.1:80"), ipvs.ErrInvalid),
			reads(state(svc(web, "rr"))),
		}},
		{Name: "which error when several apply: the kernel's order", Steps: []Step{
			ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
			ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
			// The service is looked up before the scheduler is.
			fails(createService(ipvs.Service{Key: web, Scheduler: "bogus"}), ipvs.ErrServiceExists),
			fails(updateService(ipvs.Service{Key: tls, Scheduler: "bogus"}), ipvs.ErrServiceNotFound),
			// The service before the destination's address and family.
			fails(createDest(tls, dest("0.0.0.0:80", 1, ipvs.NAT)), ipvs.ErrServiceNotFound),
			fails(createDest(web6, dest("10.0.0.1:80", 1, ipvs.DR)), ipvs.ErrServiceNotFound),
			// What is checked before the kernel is asked comes first.
			fails(createDest(tls, ipvs.Destination{Weight: 1}), ipvs.ErrInvalid),
			fails(createDest(ipvs.ServiceKey{FWMark: 1}, ipvs.Destination{Weight: 1}), ipvs.ErrInvalid),
			// The weight before the destination is looked up.
			fails(createDest(web, dest("10.0.0.1:80", 1<<31, ipvs.NAT)), ipvs.ErrInvalid),
			// A new destination's address is checked only once it is known to be new.
			fails(updateDest(web, dest("0.0.0.0:80", 1, ipvs.NAT)), ipvs.ErrDestinationNotFound),
			fails(updateDest(web, dest("[2001:db8::1]:80", 1, ipvs.NAT)), ipvs.ErrInvalid),
			reads(state(svc(web, "rr"), dest("10.0.0.1:80", 1, ipvs.NAT))),
		}},
		{Name: "a done context: the context's error, nothing changed", Steps: everyCallFails(canceled)},
		{Name: "a caller without CAP_NET_ADMIN: ErrPermission, nothing changed", Steps: everyCallFails(unprivileged)},

		// Through Plan and Apply.
		{Name: "reconcile converges, then plans nothing, and leaves other services alone", Func: reconcileCase},
	}
}

// everyCallFails makes each call of the interface the way failing says
// on a table holding one service with one destination, which must be
// left as it was.
func everyCallFails(failing func(ipvs.Op) Step) []Step {
	steps := []Step{
		ok(createService(ipvs.Service{Key: web, Scheduler: "rr"})),
		ok(createDest(web, dest("10.0.0.1:80", 1, ipvs.NAT))),
	}
	for _, op := range []ipvs.Op{
		listServices,
		createService(ipvs.Service{Key: tls}),
		updateService(ipvs.Service{Key: web, Scheduler: "wlc"}),
		deleteService(web),
		createDest(web, dest("10.0.0.2:80", 1, ipvs.NAT)),
		updateDest(web, dest("10.0.0.1:80", 5, ipvs.NAT)),
		deleteDest(web, "10.0.0.1:80"),
	} {
		steps = append(steps, failing(op))
	}
	return append(steps, reads(state(svc(web, "rr"), dest("10.0.0.1:80", 1, ipvs.NAT))))
}

// schedulerSteps creates, reads back and deletes a service with each
// scheduler of the kernel.
func schedulerSteps() []Step {
	var steps []Step
	for _, name := range kernelSchedulers() {
		steps = append(steps,
			ok(createService(ipvs.Service{Key: web, Scheduler: name})),
			reads(state(svc(web, name))),
			ok(deleteService(web)))
	}
	return steps
}

// Sample is a desired table with every kind of service: TCP with
// persistence, UDP with direct routing, IPv6 with a scheduler flag and an
// IPv4 tunnel destination, and a firewall mark.
func Sample() []ipvs.DesiredService {
	return []ipvs.DesiredService{
		{Service: ipvs.Service{Key: web, Scheduler: "wlc", Persistence: time.Minute, PersistenceNetmask: 24},
			Destinations: []ipvs.Destination{dest("10.0.0.1:8080", 100, ipvs.NAT), dest("10.0.0.2:8080", 50, ipvs.NAT)}},
		{Service: ipvs.Service{Key: dns, Scheduler: "rr"},
			Destinations: []ipvs.Destination{dest("10.0.0.1:53", 1, ipvs.DR)}},
		{Service: ipvs.Service{Key: web6, Scheduler: "sh", SchedulerFlags: ipvs.SHFallback},
			Destinations: []ipvs.Destination{dest("[2001:db8::1]:80", 1, ipvs.NAT), dest("10.0.0.3:80", 1, ipvs.TUN)}},
		{Service: ipvs.Service{Key: mark4, Scheduler: "wrr"},
			Destinations: []ipvs.Destination{dest("10.0.0.1:0", 3, ipvs.TUN)}},
	}
}

// HandMade is a service Sample does not have, made as an operator would
// by hand: reconciling Sample must leave it alone.
var HandMade = ipvs.Service{Key: tls, Scheduler: "rr"}

func reconcileCase(t *testing.T, tb ipvs.Table) {
	ctx := context.Background()
	if err := tb.CreateService(ctx, HandMade); err != nil {
		t.Fatal(err)
	}
	local := ipvs.DesiredService{Service: ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, ap("192.0.2.12:80")), Scheduler: "rr"},
		Destinations: []ipvs.Destination{dest("127.0.0.1:8080", 1, ipvs.DR)}}
	step := func(name string, desired []ipvs.DesiredService, retired []ipvs.ServiceKey, wantOps int, want ...ipvs.ServiceState) {
		t.Helper()
		r, err := ipvs.Reconcile(ctx, tb, desired, retired)
		if err != nil || len(r.Errors) != 0 || len(r.Ops) != wantOps {
			t.Fatalf("%s: %d ops %v, errors %v %v; want %d ops", name, len(r.Ops), r.Ops, r.Errors, err, wantOps)
		}
		runStep(t, Target{}, tb, 0, reads(want...))
		if r, err := ipvs.Reconcile(ctx, tb, desired, retired); err != nil || len(r.Ops) != 0 {
			t.Fatalf("%s: the second reconcile planned %v (%v)", name, r.Ops, err)
		}
	}
	handMade := state(svc(tls, "rr"))
	webState := func(sched string, second uint32) ipvs.ServiceState {
		return state(ipvs.Service{Key: web, Scheduler: sched, Persistence: time.Minute, PersistenceNetmask: 24},
			dest("10.0.0.1:8080", 100, ipvs.NAT), dest("10.0.0.2:8080", second, ipvs.NAT))
	}
	dnsState := state(svc(dns, "rr"), dest("10.0.0.1:53", 1, ipvs.DR))
	web6State := func(f ipvs.Forwarding) ipvs.ServiceState {
		return state(ipvs.Service{Key: web6, Scheduler: "sh", PersistenceNetmask: 128, SchedulerFlags: ipvs.SHFallback},
			dest("[2001:db8::1]:80", 1, f), dest("10.0.0.3:80", 1, ipvs.TUN))
	}
	localState := state(svc(local.Key, "rr"), dest("127.0.0.1:8080", 1, ipvs.DR))

	desired := append(Sample(), local)
	step("create", desired, nil, 12, handMade, webState("wlc", 50), dnsState, web6State(ipvs.NAT),
		state(svc(mark4, "wrr"), dest("10.0.0.1:0", 3, ipvs.TUN)), localState)

	desired[0].Destinations[1].Weight = 0
	desired[0].Scheduler = "rr"
	desired[2].Destinations[0].Forwarding = ipvs.DR
	retired := []ipvs.ServiceKey{desired[3].Key}
	desired = slices.Delete(desired, 3, 4)
	step("change", desired, retired, 4, handMade, webState("rr", 0), dnsState, web6State(ipvs.DR), localState)

	retired = []ipvs.ServiceKey{web, dns, web6, local.Key}
	step("retire", nil, retired, 4, handMade)
}
