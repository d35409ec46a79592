//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	kipvs "github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
)

// fakeClient stands in for the library's client: it records what is sent
// and returns canned answers.
type fakeClient struct {
	infoErr     error
	services    []kipvs.ServiceExtended
	servicesErr error
	dests       map[kipvs.Service][]kipvs.DestinationExtended
	callErr     error // returned by every mutating call
	sentSvc     []kipvs.Service
	sentDest    []kipvs.Destination
	closed      bool
}

func (f *fakeClient) Info() (kipvs.Info, error)     { return kipvs.Info{}, f.infoErr }
func (f *fakeClient) Config() (kipvs.Config, error) { return kipvs.Config{}, nil }
func (f *fakeClient) SetConfig(kipvs.Config) error  { return nil }
func (f *fakeClient) Services() ([]kipvs.ServiceExtended, error) {
	if f.servicesErr != nil {
		return nil, f.servicesErr
	}
	if len(f.services) == 0 {
		return nil, os.ErrNotExist
	}
	return f.services, nil
}
func (f *fakeClient) Service(s kipvs.Service) (kipvs.ServiceExtended, error) {
	return kipvs.ServiceExtended{}, syscall.ESRCH
}
func (f *fakeClient) svc(s kipvs.Service) error           { f.sentSvc = append(f.sentSvc, s); return f.callErr }
func (f *fakeClient) CreateService(s kipvs.Service) error { return f.svc(s) }
func (f *fakeClient) UpdateService(s kipvs.Service) error { return f.svc(s) }
func (f *fakeClient) RemoveService(s kipvs.Service) error { return f.svc(s) }
func (f *fakeClient) Destinations(s kipvs.Service) ([]kipvs.DestinationExtended, error) {
	if d := f.dests[s]; len(d) > 0 {
		return d, nil
	}
	return nil, os.ErrNotExist
}
func (f *fakeClient) dest(s kipvs.Service, d kipvs.Destination) error {
	f.sentSvc = append(f.sentSvc, s)
	f.sentDest = append(f.sentDest, d)
	return f.callErr
}
func (f *fakeClient) CreateDestination(s kipvs.Service, d kipvs.Destination) error {
	return f.dest(s, d)
}
func (f *fakeClient) UpdateDestination(s kipvs.Service, d kipvs.Destination) error {
	return f.dest(s, d)
}
func (f *fakeClient) RemoveDestination(s kipvs.Service, d kipvs.Destination) error {
	return f.dest(s, d)
}
func (f *fakeClient) Close() error { f.closed = true; return nil }

// opErr looks like what mdlayher/netlink returns.
func opErr(errno syscall.Errno) error { return fmt.Errorf("netlink receive: %w", errno) }

func TestNetlinkProbe(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    *fakeClient
		want error
		text string
	}{
		{"no ipvs", &fakeClient{infoErr: opErr(syscall.ENOENT)}, ErrNotSupported, "modprobe ip_vs"},
		{"no permission", &fakeClient{infoErr: opErr(syscall.EPERM)}, ErrPermission, "CAP_NET_ADMIN"},
		{"no permission to list", &fakeClient{servicesErr: opErr(syscall.EACCES)}, ErrPermission, "run as root"},
		{"empty table is fine", &fakeClient{}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, err := newNetlink(tt.f)
			if !errors.Is(err, tt.want) || (err != nil && !strings.Contains(err.Error(), tt.text)) {
				t.Fatalf("got %v, want %v containing %q", err, tt.want, tt.text)
			}
			if err != nil && (n != nil || !tt.f.closed) {
				t.Error("client not closed after a failed probe")
			}
		})
	}
	if err := openError("x", opErr(syscall.ENOENT)); !strings.Contains(err.Error(), "-dry-run") {
		t.Error(err)
	}
}

func TestNetlinkNoIPVSHere(t *testing.T) {
	// On the machines without IPVS this is what the director sees at start.
	n, err := NewNetlink()
	if err == nil {
		n.Close()
		t.Skip("this kernel has IPVS")
	}
	t.Logf("NewNetlink: %v", err)
	if !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrPermission) {
		t.Errorf("got %v, want ErrNotSupported or ErrPermission", err)
	}
}

func TestNetlinkReadBack(t *testing.T) {
	v6 := kipvs.Service{Address: netip.MustParseAddr("2001:db8::10"), Port: 80, Protocol: kipvs.TCP, Family: kipvs.INET6,
		Scheduler: "sh", Netmask: netmask.MaskFrom(64, 128), Timeout: 300,
		Flags: kipvs.ServiceHashed | kipvs.ServicePersistent | kipvs.ServiceSchedulerOpt1 | kipvs.ServiceSchedulerOpt2}
	fw := kipvs.Service{FWMark: 7, Family: kipvs.INET, Scheduler: "rr", Netmask: netmask.MaskFrom(32, 32), Timeout: 60, Flags: kipvs.ServiceHashed}
	f := &fakeClient{
		services: []kipvs.ServiceExtended{
			{Service: v6, Stats64: kipvs.Stats{Connections: 3, IncomingBytes: 1 << 40}, Stats: kipvs.Stats{Connections: 1}},
			{Service: fw, Stats: kipvs.Stats{Connections: 2}},
		},
		dests: map[kipvs.Service][]kipvs.DestinationExtended{
			v6: {
				{Destination: kipvs.Destination{Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Family: kipvs.INET, FwdMethod: kipvs.Tunnel, Weight: 2},
					ActiveConnections: 4, InactiveConnections: 5, PersistentConnections: 6, Stats64: kipvs.Stats{OutgoingPackets: 8}},
				{Destination: kipvs.Destination{Address: netip.MustParseAddr("2001:db8::1"), Port: 80, Family: kipvs.INET6, FwdMethod: kipvs.Bypass}},
				{Destination: kipvs.Destination{Address: netip.MustParseAddr("2001:db8::2"), Port: 80, Family: kipvs.INET6, FwdMethod: kipvs.DirectRoute}},
			},
		},
	}
	n, err := newNetlink(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := n.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []ServiceState{
		{Service: Service{Key: mark4, Scheduler: "rr", PersistenceNetmask: 32}, Counters: Counters{Connections: 2}, Destinations: []DestinationState{}},
		{Service: Service{Key: web6, Scheduler: "sh", Persistence: 300 * time.Second, PersistenceNetmask: 64, SchedulerFlags: SHFallback | SHPort},
			Counters: Counters{Connections: 3, BytesIn: 1 << 40},
			Destinations: []DestinationState{
				{Destination: Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 2, Forwarding: TUN},
					Counters: Counters{PacketsOut: 8, ActiveConns: 4, InactiveConns: 5, PersistentConns: 6}},
				{Destination: Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Forwarding: Local}},
				{Destination: Destination{Address: netip.MustParseAddrPort("[2001:db8::2]:80"), Forwarding: DR}},
			}},
	}
	mark4 := FWMarkKey(IPv4, 7)
	want[0].Key = mark4
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}

	// Empty table.
	n, _ = newNetlink(&fakeClient{})
	if got, err := n.Services(context.Background()); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
}

func TestNetlinkSends(t *testing.T) {
	ctx := context.Background()
	f := &fakeClient{}
	n, err := newNetlink(f)
	if err != nil {
		t.Fatal(err)
	}
	// Not persistent: full netmask, no flags, no timeout, default scheduler.
	n.CreateService(ctx, Service{Key: web})
	// Persistent IPv6 with netmask and scheduler flags.
	n.UpdateService(ctx, Service{Key: web6, Scheduler: "mh", Persistence: 90 * time.Second, PersistenceNetmask: 64, SchedulerFlags: MHPort})
	n.CreateService(ctx, Service{Key: mark6, Scheduler: "rr", Persistence: 500 * time.Millisecond})
	want := []kipvs.Service{
		{Address: vip.Addr(), Port: 80, Protocol: kipvs.TCP, Family: kipvs.INET, Scheduler: "wlc", Netmask: netmask.MaskFrom(32, 32)},
		{Address: vip6.Addr(), Port: 80, Protocol: kipvs.TCP, Family: kipvs.INET6, Scheduler: "mh", Netmask: netmask.MaskFrom(64, 128),
			Timeout: 90, Flags: kipvs.ServicePersistent | kipvs.ServiceSchedulerOpt2},
		{FWMark: 10, Family: kipvs.INET6, Scheduler: "rr", Netmask: netmask.MaskFrom(128, 128), Timeout: 1, Flags: kipvs.ServicePersistent},
	}
	for i := range want {
		if f.sentSvc[i] != want[i] {
			t.Errorf("sent %+v\nwant %+v", f.sentSvc[i], want[i])
		}
	}

	f.sentSvc = nil
	n.CreateDestination(ctx, web6, Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 3, Forwarding: TUN})
	n.UpdateDestination(ctx, web, Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 0, Forwarding: DR})
	n.DeleteDestination(ctx, web6, netip.MustParseAddrPort("[2001:db8::1]:80"))
	wantD := []kipvs.Destination{
		{Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Family: kipvs.INET, FwdMethod: kipvs.Tunnel, Weight: 3},
		{Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Family: kipvs.INET, FwdMethod: kipvs.DirectRoute},
		{Address: netip.MustParseAddr("2001:db8::1"), Port: 80, Family: kipvs.INET6, FwdMethod: kipvs.Masquerade},
	}
	for i := range wantD {
		if f.sentDest[i] != wantD[i] {
			t.Errorf("sent %+v\nwant %+v", f.sentDest[i], wantD[i])
		}
	}
	if f.sentSvc[0].Family != kipvs.INET6 || !f.sentSvc[0].Netmask.IsValid() {
		t.Errorf("service of a destination call: %+v", f.sentSvc[0])
	}

	// A fwmark service needs a family; nothing is sent.
	f.sentSvc = nil
	if err := n.CreateService(ctx, Service{Key: ServiceKey{FWMark: 3}}); !errors.Is(err, ErrInvalid) || len(f.sentSvc) != 0 {
		t.Errorf("got %v, sent %v", err, f.sentSvc)
	}
	// A done context: nothing is sent.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := n.CreateService(cctx, Service{Key: web}); !errors.Is(err, context.Canceled) || len(f.sentSvc) != 0 {
		t.Errorf("got %v, sent %v", err, f.sentSvc)
	}
	if _, err := n.Services(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	n.Close()
	if err := n.CreateService(ctx, Service{Key: web}); err == nil {
		t.Error("call after Close succeeded")
	}
	if err := n.Close(); err != nil {
		t.Error(err)
	}
}

func TestNetlinkErrors(t *testing.T) {
	ctx := context.Background()
	d := rs("10.0.0.1:8080", 1)
	for _, tt := range []struct {
		errno syscall.Errno
		call  func(n *Netlink) error
		want  error
		text  string
	}{
		{syscall.EEXIST, func(n *Netlink) error { return n.CreateService(ctx, Service{Key: web}) }, ErrServiceExists, "create service tcp 192.0.2.10:80: "},
		{syscall.ENOENT, func(n *Netlink) error { return n.CreateService(ctx, Service{Key: web, Scheduler: "x"}) }, ErrUnknownScheduler, "create service"},
		{syscall.ENOENT, func(n *Netlink) error { return n.UpdateService(ctx, Service{Key: web, Scheduler: "x"}) }, ErrUnknownScheduler, "update service"},
		{syscall.ESRCH, func(n *Netlink) error { return n.UpdateService(ctx, Service{Key: web}) }, ErrServiceNotFound, "update service"},
		{syscall.ESRCH, func(n *Netlink) error { return n.DeleteService(ctx, web) }, ErrServiceNotFound, "delete service tcp 192.0.2.10:80"},
		{syscall.EINVAL, func(n *Netlink) error { return n.CreateService(ctx, Service{Key: web}) }, ErrInvalid, ""},
		{syscall.EPERM, func(n *Netlink) error { return n.CreateService(ctx, Service{Key: web}) }, ErrPermission, "CAP_NET_ADMIN"},
		{syscall.EEXIST, func(n *Netlink) error { return n.CreateDestination(ctx, web, d) }, ErrDestinationExists, "create destination 10.0.0.1:8080 in tcp 192.0.2.10:80: "},
		{syscall.ESRCH, func(n *Netlink) error { return n.CreateDestination(ctx, web, d) }, ErrServiceNotFound, ""},
		{syscall.ENOENT, func(n *Netlink) error { return n.UpdateDestination(ctx, web, d) }, ErrDestinationNotFound, "update destination"},
		{syscall.ENOENT, func(n *Netlink) error { return n.DeleteDestination(ctx, web, d.Address) }, ErrDestinationNotFound, "delete destination"},
	} {
		f := &fakeClient{}
		n, _ := newNetlink(f)
		f.callErr = opErr(tt.errno)
		err := tt.call(n)
		if !errors.Is(err, tt.want) || !errors.Is(err, tt.errno) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%v: got %v, want %v containing %q", tt.errno, err, tt.want, tt.text)
		}
	}
}
