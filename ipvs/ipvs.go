// Package ipvs models the kernel's IPVS table in the director's own terms,
// and keeps the kernel matching a desired table: Plan computes the
// operations, Apply carries them out against a Table (the kernel through
// netlink, see NewNetlink, or an in-memory stand-in, see NewMemory), and
// Reconcile does both.
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Family is an address family of a service or destination.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// Protocol is the transport protocol of an address-based service.
type Protocol uint8

const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Forwarding is how IPVS delivers packets to a destination.
type Forwarding uint8

const (
	NAT   Forwarding = iota // masquerading
	DR                      // direct routing ("gatewaying")
	TUN                     // IP-in-IP tunnelling
	Local                   // reported by the kernel for local destinations; never configured
)

func (f Forwarding) String() string {
	switch f {
	case NAT:
		return "nat"
	case DR:
		return "dr"
	case TUN:
		return "tun"
	case Local:
		return "local"
	}
	return fmt.Sprintf("forwarding(%d)", uint8(f))
}

// ServiceKey identifies a virtual service in the kernel: either an
// address+port+protocol, or a firewall mark within an address family.
type ServiceKey struct {
	Family   Family
	Protocol Protocol       // zero for fwmark services
	Address  netip.AddrPort // zero for fwmark services
	FWMark   uint32         // zero for address services
}

// String renders the key the way ipvsadm -Ln names services: "TCP 192.0.2.10:80", "FWM 10 IPv4".
func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		return fmt.Sprintf("fwmark %d %s", k.FWMark, k.Family)
	}
	return fmt.Sprintf("%s %s", k.Protocol, k.Address)
}

// Service is a virtual service with the settings the director programs.
type Service struct {
	Key       ServiceKey
	Scheduler string
	// Persistence is the persistence timeout; zero means not persistent.
	Persistence time.Duration
	// PersistenceNetmask is the prefix length that groups clients for
	// persistence (32/128 when unset: one client per address).
	PersistenceNetmask uint8
	// SchedulerFlags are the scheduler option flags (sh-fallback, sh-port, mh-...): bits 1..3.
	SchedulerFlags uint8
	// OnePacket is one-packet scheduling (ipvsadm --ops): every UDP
	// datagram is scheduled on its own, with no connection entry kept.
	OnePacket bool
}

// Destination is a real server inside a service.
type Destination struct {
	Address    netip.AddrPort
	Weight     uint32
	Forwarding Forwarding
	// Tunnel is how a TUN destination's packets are encapsulated
	// (Linux 5.2+ for the type and port, 5.3+ for the flags); the zero
	// value is plain IPIP, all older kernels do. The kernel stores and
	// reports it for every destination, but uses it only for TUN.
	Tunnel Tunnel
}

// Tunnel is a TUN destination's encapsulation (IPVS_DEST_ATTR_TUN_TYPE,
// _TUN_PORT, _TUN_FLAGS).
type Tunnel struct {
	Type TunnelType
	// Port is the GUE destination port (the real server's fou/gue
	// listener); the kernel refuses GUE without one.
	Port  uint16
	Flags TunnelFlags
}

// TunnelType is the kernel's IP_VS_CONN_F_TUNNEL_TYPE_*.
type TunnelType uint8

const (
	TunnelIPIP TunnelType = iota
	TunnelGUE
	TunnelGRE
)

func (t TunnelType) String() string {
	switch t {
	case TunnelIPIP:
		return "ipip"
	case TunnelGUE:
		return "gue"
	case TunnelGRE:
		return "gre"
	}
	return fmt.Sprintf("tunnel(%d)", uint8(t))
}

// TunnelFlags are the kernel's IP_VS_TUNNEL_ENCAP_FLAG_* bits: outer
// checksums for GUE and GRE, remote checksum offload for GUE.
type TunnelFlags uint16

const (
	TunnelNoCsum  TunnelFlags = 0
	TunnelCsum    TunnelFlags = 1 << 0
	TunnelRemCsum TunnelFlags = 1 << 1
)

func (f TunnelFlags) String() string {
	switch f {
	case TunnelNoCsum:
		return "none"
	case TunnelCsum:
		return "csum"
	case TunnelRemCsum:
		return "remcsum"
	}
	return fmt.Sprintf("flags(%#x)", uint16(f))
}

// String is "ipip", or "gue port 6080 csum" and the like.
func (t Tunnel) String() string {
	s := t.Type.String()
	if t.Type == TunnelGUE || t.Port != 0 {
		s += fmt.Sprintf(" port %d", t.Port)
	}
	if t.Flags != TunnelNoCsum {
		s += " " + t.Flags.String()
	}
	return s
}

// Counters are the kernel's traffic counters for a service or destination.
type Counters struct {
	Connections     uint64
	PacketsIn       uint64
	PacketsOut      uint64
	BytesIn         uint64
	BytesOut        uint64
	ActiveConns     uint32 // destinations only
	InactiveConns   uint32 // destinations only
	PersistentConns uint32 // destinations only
}

// DestinationState is a destination as read back from a table, with counters.
type DestinationState struct {
	Destination
	Counters Counters
}

// ServiceState is a service as read back from a table, with its destinations.
type ServiceState struct {
	Service
	Counters     Counters
	Destinations []DestinationState
}

// Table is the kernel IPVS table (or a stand-in). Implementations must be
// safe for concurrent use. Errors wrap the sentinel errors below where the
// cause is one of them.
type Table interface {
	// Services returns every service in the table (not only ours) with destinations.
	Services(ctx context.Context) ([]ServiceState, error)
	CreateService(ctx context.Context, s Service) error
	UpdateService(ctx context.Context, s Service) error
	DeleteService(ctx context.Context, k ServiceKey) error
	CreateDestination(ctx context.Context, k ServiceKey, d Destination) error
	UpdateDestination(ctx context.Context, k ServiceKey, d Destination) error
	DeleteDestination(ctx context.Context, k ServiceKey, addr netip.AddrPort) error
}

var (
	ErrServiceExists       = errors.New("ipvs: service already exists")
	ErrServiceNotFound     = errors.New("ipvs: no such service")
	ErrDestinationExists   = errors.New("ipvs: destination already exists")
	ErrDestinationNotFound = errors.New("ipvs: no such destination")
	ErrPermission          = errors.New("ipvs: operation not permitted (needs CAP_NET_ADMIN)")
	ErrNotSupported        = errors.New("ipvs: kernel has no IPVS support")
	ErrInvalid             = errors.New("ipvs: kernel rejected the request as invalid")
	ErrUnknownScheduler    = errors.New("ipvs: unknown scheduler")
)

// Scheduler option flags for Service.SchedulerFlags (the kernel's
// IP_VS_SVC_F_SCHED1..3). Their meaning depends on the scheduler.
const (
	SchedFlag1 uint8 = 1 << iota
	SchedFlag2
	SchedFlag3

	SHFallback = SchedFlag1 // sh: skip overloaded or weight-0 servers
	SHPort     = SchedFlag2 // sh: hash the source port too
	MHFallback = SchedFlag1 // mh: skip overloaded or weight-0 servers
	MHPort     = SchedFlag2 // mh: hash the source port too
)

// DefaultScheduler is used for a service whose Scheduler is empty (as ipvsadm does).
const DefaultScheduler = "wlc"

// Schedulers are the scheduler names the Linux kernel knows.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}

// KnownScheduler reports whether name is one of the kernel's schedulers.
func KnownScheduler(name string) bool {
	for _, s := range Schedulers {
		if s == name {
			return true
		}
	}
	return false
}

// ParseProtocol parses "tcp", "udp" or "sctp".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	case "sctp":
		return SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", s)
}

// ParseForwarding parses "nat", "dr" or "tun" (and the ipvsadm words
// "masq", "gate"/"route", "ipip").
func ParseForwarding(s string) (Forwarding, error) {
	switch s {
	case "nat", "masq", "masquerade":
		return NAT, nil
	case "dr", "gate", "route", "direct":
		return DR, nil
	case "tun", "ipip", "tunnel":
		return TUN, nil
	}
	return 0, fmt.Errorf("unknown forwarding method %q (want nat, dr or tun)", s)
}

// ParseFamily parses "ipv4" or "ipv6".
func ParseFamily(s string) (Family, error) {
	switch s {
	case "ipv4", "inet", "4":
		return IPv4, nil
	case "ipv6", "inet6", "6":
		return IPv6, nil
	}
	return 0, fmt.Errorf("unknown address family %q (want ipv4 or ipv6)", s)
}

// FamilyOf returns the family of an address (IPv4-mapped IPv6 counts as IPv4).
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// AddressKey returns the key of an address-based service; the family
// follows the address, which is unmapped.
func AddressKey(p Protocol, addr netip.AddrPort) ServiceKey {
	a := addr.Addr().Unmap()
	return ServiceKey{Family: FamilyOf(a), Protocol: p, Address: netip.AddrPortFrom(a, addr.Port())}
}

// FWMarkKey returns the key of a firewall-mark service.
func FWMarkKey(f Family, mark uint32) ServiceKey {
	return ServiceKey{Family: f, FWMark: mark}
}

// Normalize returns the key in the canonical form tables use: address
// unmapped and without zone, family derived from the address for address
// services, protocol and address cleared for fwmark services.
func (k ServiceKey) Normalize() ServiceKey {
	if k.FWMark != 0 {
		if k.Family == 0 && k.Address.IsValid() {
			k.Family = FamilyOf(k.Address.Addr())
		}
		return ServiceKey{Family: k.Family, FWMark: k.FWMark}
	}
	a := k.Address.Addr().Unmap().WithZone("")
	k.Address = netip.AddrPortFrom(a, k.Address.Port())
	if a.IsValid() {
		k.Family = FamilyOf(a)
	}
	return k
}

// Compare orders keys: by family, address services before fwmark ones,
// then protocol, address and mark. It returns -1, 0 or +1.
func (k ServiceKey) Compare(o ServiceKey) int {
	switch {
	case k.Family != o.Family:
		return cmpInt(int(k.Family), int(o.Family))
	case (k.FWMark != 0) != (o.FWMark != 0):
		if k.FWMark == 0 {
			return -1
		}
		return 1
	case k.Protocol != o.Protocol:
		return cmpInt(int(k.Protocol), int(o.Protocol))
	case k.Address != o.Address:
		return k.Address.Compare(o.Address)
	}
	return cmpInt(int(k.FWMark), int(o.FWMark))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Bits is the full prefix length of the key's family (32 or 128).
func (k ServiceKey) Bits() uint8 {
	if k.Family == IPv6 {
		return 128
	}
	return 32
}

// Normalize returns the service in the form a table stores and reads back:
// key normalized, default scheduler filled in, persistence in whole seconds
// (rounded up), persistence netmask set (full prefix when zero), only the
// three scheduler flag bits kept.
func (s Service) Normalize() Service {
	s.Key = s.Key.Normalize()
	if s.Scheduler == "" {
		s.Scheduler = DefaultScheduler
	}
	s.Persistence = time.Duration(persistenceSeconds(s.Persistence)) * time.Second
	if s.PersistenceNetmask == 0 || s.PersistenceNetmask > s.Key.Bits() {
		s.PersistenceNetmask = s.Key.Bits()
	}
	s.SchedulerFlags &= SchedFlag1 | SchedFlag2 | SchedFlag3
	return s
}

// checkKey is what a table checks on a normalized service key before
// the kernel sees it: a family, and an address or a firewall mark. The
// kernel itself checks neither the address nor the protocol.
func checkKey(k ServiceKey) error {
	if k.Family != IPv4 && k.Family != IPv6 {
		return fmt.Errorf("%w: address family %s", ErrInvalid, k.Family)
	}
	if k.FWMark == 0 && !k.Address.Addr().IsValid() {
		return fmt.Errorf("%w: no address and no firewall mark", ErrInvalid)
	}
	return nil
}

// checkDestination is what a table checks on a destination before the
// kernel sees it: an address, and a forwarding method it has a code for.
func checkDestination(d Destination) error {
	if !d.Address.Addr().IsValid() {
		return fmt.Errorf("%w: no destination address", ErrInvalid)
	}
	if d.Forwarding > Local {
		return fmt.Errorf("%w: %s", ErrInvalid, d.Forwarding)
	}
	if d.Tunnel.Type > TunnelGRE {
		return fmt.Errorf("%w: %s", ErrInvalid, d.Tunnel.Type)
	}
	return nil
}

// persistenceSeconds is the kernel's persistence timeout for d: whole
// seconds, rounded up, so that any positive d stays persistent.
func persistenceSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > 1<<31 {
		s = 1 << 31
	}
	return uint32(s)
}
