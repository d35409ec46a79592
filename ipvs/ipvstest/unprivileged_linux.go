//go:build linux

package ipvstest

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"golang.org/x/sys/unix"
)

// WithoutNetAdmin returns a view of tb whose calls are made on a thread
// that has dropped CAP_NET_ADMIN from its effective capabilities: the
// kernel checks the capability of the thread sending each request, so
// this is a caller without the privilege, on a table opened with it.
// The rest of the process keeps its capabilities.
func WithoutNetAdmin(tb ipvs.Table) ipvs.Table { return noNetAdmin{tb} }

type noNetAdmin struct{ tb ipvs.Table }

func (u noNetAdmin) call(f func() error) error {
	return testutil.OnOwnThread(func() error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return fmt.Errorf("ipvstest: read capabilities: %w", err)
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("ipvstest: drop CAP_NET_ADMIN: %w", err)
		}
		return f()
	})
}

func (u noNetAdmin) Services(ctx context.Context) (all []ipvs.ServiceState, err error) {
	err = u.call(func() error { all, err = u.tb.Services(ctx); return err })
	return all, err
}

func (u noNetAdmin) CreateService(ctx context.Context, s ipvs.Service) error {
	return u.call(func() error { return u.tb.CreateService(ctx, s) })
}

func (u noNetAdmin) UpdateService(ctx context.Context, s ipvs.Service) error {
	return u.call(func() error { return u.tb.UpdateService(ctx, s) })
}

func (u noNetAdmin) DeleteService(ctx context.Context, k ipvs.ServiceKey) error {
	return u.call(func() error { return u.tb.DeleteService(ctx, k) })
}

func (u noNetAdmin) CreateDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	return u.call(func() error { return u.tb.CreateDestination(ctx, k, d) })
}

func (u noNetAdmin) UpdateDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	return u.call(func() error { return u.tb.UpdateDestination(ctx, k, d) })
}

func (u noNetAdmin) DeleteDestination(ctx context.Context, k ipvs.ServiceKey, a netip.AddrPort) error {
	return u.call(func() error { return u.tb.DeleteDestination(ctx, k, a) })
}
