//go:build linux

package announcer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/policy/announce"
)

// RouteProtocol marks the routes the director installs (the kernel's
// rtm_protocol, "proto 212" in `ip route`), so that a restart finds and
// removes the ones a previous run left, and nothing else.
const RouteProtocol = 212

// RouteTable is route-table mode: each announced VIP is a host route
// (/32, /128) through the configured device in the configured kernel
// table, for a routing daemon (BIRD, FRR) to redistribute.
type RouteTable struct {
	h     *netlink.Handle
	table int
	dev   string
}

// NewRouteTable installs routes through h (nil: the current network
// namespace) and removes any of ours a previous run left in the table.
func NewRouteTable(cfg config.RouteTable, h *netlink.Handle) (*RouteTable, error) {
	if h == nil {
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return nil, fmt.Errorf("route_table: netlink: %w", err)
		}
	}
	t := &RouteTable{h: h, table: int(cfg.Table), dev: cfg.Device}
	if _, err := t.link(); err != nil {
		return nil, err
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		stale, err := h.RouteListFiltered(fam, &netlink.Route{Table: t.table, Protocol: RouteProtocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, fmt.Errorf("route_table: listing table %d: %w", t.table, permission(err))
		}
		for _, r := range stale {
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
				return nil, fmt.Errorf("route_table: removing the previous run's route %s from table %d: %w", r.Dst, t.table, permission(err))
			}
		}
	}
	return t, nil
}

func permission(err error) error {
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%w (needs CAP_NET_ADMIN)", err)
	}
	return err
}

// link looks the device up each time: it may have been recreated.
func (t *RouteTable) link() (netlink.Link, error) {
	l, err := t.h.LinkByName(t.dev)
	if err != nil {
		return nil, fmt.Errorf("route_table: device %q: %w", t.dev, err)
	}
	return l, nil
}

// Name is "route_table".
func (t *RouteTable) Name() string { return "route_table" }

func (t *RouteTable) route(p netip.Prefix, link int) *netlink.Route {
	return &netlink.Route{
		Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		LinkIndex: link, Table: t.table, Protocol: RouteProtocol, Scope: netlink.SCOPE_LINK,
	}
}

// Add installs r as a host route (its BGP attributes are the routing
// daemon's business).
func (t *RouteTable) Add(_ context.Context, r announce.Route) error {
	l, err := t.link()
	if err != nil {
		return err
	}
	if err := t.h.RouteReplace(t.route(r.Prefix, l.Attrs().Index)); err != nil {
		return fmt.Errorf("route_table: adding %s to table %d: %w", r.Prefix, t.table, permission(err))
	}
	return nil
}

// Delete removes the route for p; one already gone is fine.
func (t *RouteTable) Delete(_ context.Context, p netip.Prefix) error {
	err := t.h.RouteDel(t.route(p, 0))
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("route_table: removing %s from table %d: %w", p, t.table, permission(err))
	}
	return nil
}

// Routes lists the host routes of ours in the table.
func (t *RouteTable) Routes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := t.h.RouteListFiltered(fam, &netlink.Route{Table: t.table, Protocol: RouteProtocol}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if a, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				ones, _ := r.Dst.Mask.Size()
				out = append(out, netip.PrefixFrom(a.Unmap(), ones))
			}
		}
	}
	return out, nil
}
