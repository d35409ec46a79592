//go:build !linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
)

// Netlink is the kernel's IPVS table; it exists only on Linux.
type Netlink struct{}

var _ Table = (*Netlink)(nil)

var errNoIPVS = fmt.Errorf("%w: IPVS exists only on Linux, not %s: use -dry-run", ErrNotSupported, runtime.GOOS)

// NewNetlink fails with ErrNotSupported: IPVS exists only on Linux.
func NewNetlink() (*Netlink, error) { return nil, errNoIPVS }

func (*Netlink) Close() error { return nil }

func (*Netlink) Services(context.Context) ([]ServiceState, error) { return nil, errNoIPVS }
func (*Netlink) CreateService(context.Context, Service) error     { return errNoIPVS }
func (*Netlink) UpdateService(context.Context, Service) error     { return errNoIPVS }
func (*Netlink) DeleteService(context.Context, ServiceKey) error  { return errNoIPVS }
func (*Netlink) CreateDestination(context.Context, ServiceKey, Destination) error {
	return errNoIPVS
}
func (*Netlink) UpdateDestination(context.Context, ServiceKey, Destination) error {
	return errNoIPVS
}
func (*Netlink) DeleteDestination(context.Context, ServiceKey, netip.AddrPort) error {
	return errNoIPVS
}
