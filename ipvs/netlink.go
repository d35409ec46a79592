//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	kipvs "github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
)

// Netlink is the kernel's IPVS table, over generic netlink (in the network
// namespace the constructing thread was in). It is safe for concurrent use.
type Netlink struct {
	mu sync.Mutex
	c  kipvs.Client // nil once closed
}

var _ Table = (*Netlink)(nil)

// NewNetlink connects to the kernel's IPVS and probes it (reads its
// version and its services), so that a kernel without IPVS
// (ErrNotSupported) or missing privileges (ErrPermission) show at start.
func NewNetlink() (*Netlink, error) {
	c, err := kipvs.New()
	if err != nil {
		// c is a non-nil interface holding a nil pointer here: never use it.
		return nil, openError("connect to ipvs", err)
	}
	return newNetlink(c)
}

// newNetlink wraps a connected client and probes it; the client is closed
// when the probe fails.
func newNetlink(c kipvs.Client) (*Netlink, error) {
	n := &Netlink{c: c}
	if _, err := c.Info(); err != nil {
		n.Close()
		return nil, openError("read ipvs version", err)
	}
	if _, err := c.Services(); err != nil && !errors.Is(err, os.ErrNotExist) {
		n.Close()
		return nil, openError("list ipvs services", err)
	}
	return n, nil
}

// openError explains a failure to reach IPVS at start.
func openError(what string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.EAFNOSUPPORT):
		return fmt.Errorf("%s: %w: the kernel has no IPVS (ip_vs module): run `modprobe ip_vs`, or use -dry-run (%v)", what, ErrNotSupported, err)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: %w: run as root or grant the capability (%v)", what, ErrPermission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Close closes the netlink socket. Later calls fail with net.ErrClosed.
func (n *Netlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.c
	n.c = nil
	if cl, ok := c.(io.Closer); ok && c != nil {
		return cl.Close()
	}
	return nil
}

// client returns the client with n.mu held, or an error when ctx is done
// or n is closed.
func (n *Netlink) client(ctx context.Context) (kipvs.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n.c == nil {
		return nil, fmt.Errorf("ipvs: %w", net.ErrClosed)
	}
	return n.c, nil
}

// Services reads every service in the kernel with its destinations,
// sorted by key and address.
func (n *Netlink) Services(ctx context.Context) ([]ServiceState, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	ks, err := c.Services()
	if errors.Is(err, os.ErrNotExist) { // an empty table
		return []ServiceState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list services: %w", kernelError(err, opList))
	}
	out := make([]ServiceState, 0, len(ks))
	for _, s := range ks {
		st, ok := fromKernelService(s)
		if !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list destinations of %s: %w", st.Key, err)
		}
		kd, err := c.Destinations(s.Service)
		if err != nil && !errors.Is(err, os.ErrNotExist) { // none, or the service just went
			return nil, fmt.Errorf("list destinations of %s: %w", st.Key, kernelError(err, opList))
		}
		st.Destinations = make([]DestinationState, 0, len(kd))
		for _, d := range kd {
			if ds, ok := fromKernelDestination(d); ok {
				st.Destinations = append(st.Destinations, ds)
			}
		}
		slices.SortFunc(st.Destinations, func(a, b DestinationState) int { return a.Address.Compare(b.Address) })
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ServiceState) int { return a.Key.Compare(b.Key) })
	return out, nil
}

// CreateService adds a service.
func (n *Netlink) CreateService(ctx context.Context, s Service) error {
	return n.serviceCall(ctx, "create", s, opServiceSet, kipvs.Client.CreateService)
}

// UpdateService replaces every setting of a service with those of s.
func (n *Netlink) UpdateService(ctx context.Context, s Service) error {
	return n.serviceCall(ctx, "update", s, opServiceSet, kipvs.Client.UpdateService)
}

// DeleteService removes a service and its destinations.
func (n *Netlink) DeleteService(ctx context.Context, k ServiceKey) error {
	return n.serviceCall(ctx, "delete", Service{Key: k}, opServiceDelete, kipvs.Client.RemoveService)
}

func (n *Netlink) serviceCall(ctx context.Context, verb string, s Service, op kernelOp, call func(kipvs.Client, kipvs.Service) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := func() error {
		c, err := n.client(ctx)
		if err != nil {
			return err
		}
		ks, err := toKernelService(s)
		if err != nil {
			return err
		}
		return kernelError(call(c, ks), op)
	}()
	if err != nil {
		return fmt.Errorf("%s service %s: %w", verb, s.Key, err)
	}
	return nil
}

// CreateDestination adds a destination to a service.
func (n *Netlink) CreateDestination(ctx context.Context, k ServiceKey, d Destination) error {
	return n.destinationCall(ctx, "create", k, d, kipvs.Client.CreateDestination)
}

// UpdateDestination replaces the weight and forwarding of a destination.
func (n *Netlink) UpdateDestination(ctx context.Context, k ServiceKey, d Destination) error {
	return n.destinationCall(ctx, "update", k, d, kipvs.Client.UpdateDestination)
}

// DeleteDestination removes a destination from a service.
func (n *Netlink) DeleteDestination(ctx context.Context, k ServiceKey, addr netip.AddrPort) error {
	return n.destinationCall(ctx, "delete", k, Destination{Address: addr}, kipvs.Client.RemoveDestination)
}

func (n *Netlink) destinationCall(ctx context.Context, verb string, k ServiceKey, d Destination, call func(kipvs.Client, kipvs.Service, kipvs.Destination) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := func() error {
		c, err := n.client(ctx)
		if err != nil {
			return err
		}
		ks, err := toKernelService(Service{Key: k})
		if err != nil {
			return err
		}
		kd, err := toKernelDestination(d)
		if err != nil {
			return err
		}
		return kernelError(call(c, ks, kd), opDestination)
	}()
	if err != nil {
		return fmt.Errorf("%s destination %s in %s: %w", verb, d.Address, k, err)
	}
	return nil
}

// kernelOp tells kernelError what an errno means for the call that got it.
type kernelOp uint8

const (
	opList          kernelOp = iota
	opServiceSet             // create/update service: ENOENT is an unknown scheduler
	opServiceDelete          // delete service
	opDestination            // destination calls: ENOENT is a missing destination
)

// kernelError maps an errno from the kernel to our sentinel errors,
// keeping the original error too.
func kernelError(err error, op kernelOp) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case errors.Is(err, syscall.EEXIST):
		sentinel = ErrServiceExists
		if op == opDestination {
			sentinel = ErrDestinationExists
		}
	case errors.Is(err, syscall.ESRCH):
		sentinel = ErrServiceNotFound
	case errors.Is(err, syscall.ENOENT):
		switch op {
		case opServiceSet:
			sentinel = ErrUnknownScheduler
		case opDestination:
			sentinel = ErrDestinationNotFound
		case opServiceDelete:
			sentinel = ErrServiceNotFound
		}
	// ERANGE: a weight above 2^31-1 (the kernel's weight is a signed int).
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ERANGE), errors.Is(err, os.ErrInvalid):
		sentinel = ErrInvalid
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w: run as root or grant the capability: %w", ErrPermission, err)
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EPROTONOSUPPORT):
		sentinel = ErrNotSupported
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// toKernelService converts s, normalized, to the library's service with
// every field set: the kernel replaces all of them on update.
func toKernelService(s Service) (kipvs.Service, error) {
	s = s.Normalize()
	k := s.Key
	var ks kipvs.Service
	if err := checkKey(k); err != nil {
		return ks, err
	}
	ks.Family = kipvs.INET
	if k.Family == IPv6 {
		ks.Family = kipvs.INET6
	}
	ks.Netmask = netmask.MaskFrom(int(s.PersistenceNetmask), int(k.Bits()))
	if k.FWMark != 0 {
		ks.FWMark = k.FWMark
	} else {
		ks.Address = k.Address.Addr()
		ks.Port = k.Address.Port()
		ks.Protocol = kipvs.Protocol(k.Protocol)
	}
	ks.Scheduler = s.Scheduler
	ks.Timeout = persistenceSeconds(s.Persistence)
	if ks.Timeout > 0 {
		ks.Flags |= kipvs.ServicePersistent
	}
	ks.Flags |= kipvs.Flags(s.SchedulerFlags) << 3 // SchedFlag1 is IP_VS_SVC_F_SCHED1 (0x08)
	if s.OnePacket {
		ks.Flags |= kipvs.ServiceOnePacket
	}
	return ks, nil
}

// fromKernelService converts a service read from the kernel.
func fromKernelService(ks kipvs.ServiceExtended) (ServiceState, bool) {
	var k ServiceKey
	switch ks.Family {
	case kipvs.INET:
		k.Family = IPv4
	case kipvs.INET6:
		k.Family = IPv6
	default:
		return ServiceState{}, false
	}
	if ks.FWMark != 0 {
		k.FWMark = ks.FWMark
	} else {
		k.Protocol = Protocol(ks.Protocol)
		k.Address = netip.AddrPortFrom(ks.Address.Unmap(), ks.Port)
	}
	flags := ks.Flags &^ kipvs.ServiceHashed // set by the kernel on every service it returns
	s := Service{Key: k, Scheduler: ks.Scheduler, SchedulerFlags: uint8(flags>>3) & 7, OnePacket: flags&kipvs.ServiceOnePacket != 0}
	if flags&kipvs.ServicePersistent != 0 {
		s.Persistence = time.Duration(ks.Timeout) * time.Second
	}
	s.PersistenceNetmask = k.Bits()
	if b := ks.Netmask.Bits(); b >= 0 && b <= int(k.Bits()) {
		s.PersistenceNetmask = uint8(b)
	}
	return ServiceState{Service: s, Counters: countersOf(ks.Stats64, ks.Stats)}, true
}

func countersOf(s64, s32 kipvs.Stats) Counters {
	s := s64
	if s64 == (kipvs.Stats{}) { // a kernel without the 64-bit attributes
		s = s32
	}
	return Counters{
		Connections: s.Connections,
		PacketsIn:   s.IncomingPackets,
		PacketsOut:  s.OutgoingPackets,
		BytesIn:     s.IncomingBytes,
		BytesOut:    s.OutgoingBytes,
	}
}

// toKernelDestination converts d; the family follows the address, so an
// IPv4 tunnel destination can sit in an IPv6 service.
func toKernelDestination(d Destination) (kipvs.Destination, error) {
	if err := checkDestination(d); err != nil {
		return kipvs.Destination{}, err
	}
	a := d.Address.Addr().Unmap().WithZone("")
	kd := kipvs.Destination{Address: a, Port: d.Address.Port(), Weight: d.Weight, Family: kipvs.INET6,
		TunnelType: kipvs.TunnelType(d.Tunnel.Type), TunnelPort: d.Tunnel.Port, TunnelFlags: kipvs.TunnelFlags(d.Tunnel.Flags)}
	if a.Is4() {
		kd.Family = kipvs.INET
	}
	switch d.Forwarding {
	case NAT:
		kd.FwdMethod = kipvs.Masquerade
	case DR:
		kd.FwdMethod = kipvs.DirectRoute
	case TUN:
		kd.FwdMethod = kipvs.Tunnel
	case Local:
		kd.FwdMethod = kipvs.Local
	}
	return kd, nil
}

// fromKernelDestination converts a destination read from the kernel.
func fromKernelDestination(kd kipvs.DestinationExtended) (DestinationState, bool) {
	if !kd.Address.IsValid() {
		return DestinationState{}, false
	}
	d := Destination{Address: netip.AddrPortFrom(kd.Address.Unmap(), kd.Port), Weight: kd.Weight,
		Tunnel: Tunnel{Type: TunnelType(kd.TunnelType), Port: kd.TunnelPort, Flags: TunnelFlags(kd.TunnelFlags)}}
	switch kd.FwdMethod {
	case kipvs.Masquerade:
		d.Forwarding = NAT
	case kipvs.DirectRoute:
		d.Forwarding = DR
	case kipvs.Tunnel:
		d.Forwarding = TUN
	default: // Local, Bypass
		d.Forwarding = Local
	}
	c := countersOf(kd.Stats64, kd.Stats)
	c.ActiveConns = kd.ActiveConnections
	c.InactiveConns = kd.InactiveConnections
	c.PersistentConns = kd.PersistentConnections
	return DestinationState{Destination: d, Counters: c}, true
}
