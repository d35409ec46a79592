//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Alias tags every interface the director makes (`ip link` shows it as
// "alias director-datapath").
const Alias = "director-datapath"

// Manager owns the director's probe namespaces: Sync builds what a set
// of routes needs and removes what it no longer needs, Dial connects
// through one route, Close removes everything.
//
// Each namespace is anonymous: no name under /run/netns, held only by
// the Manager's file descriptor, so the kernel destroys it, and the
// macvlans, tunnels, rules and routes in it, when the last descriptor
// closes, whether the director stops, reloads or crashes. Nothing is
// ever added to the director's own namespace (the macvlans are created
// directly inside the probe namespace), so a crash leaves nothing behind
// to clean up at the next start.
type Manager struct {
	host *netlink.Handle
	log  *slog.Logger
	// origin is the namespace the director's threads run in, where a
	// dial's thread returns.
	origin netns.NsHandle

	// mu guards spaces and failed against Dial, which holds it (read)
	// only while it enters a namespace: Sync and Close may not close a
	// namespace's descriptor while a probe's thread is entering it.
	mu     sync.RWMutex
	spaces map[netip.Addr]*space
	failed map[Route]error // why a route of the last Sync has no path
}

// space is one built namespace.
type space struct {
	layout layout
	ns     netns.NsHandle
	h      *netlink.Handle
}

// New returns a Manager that looks up real servers and creates macvlans
// through host, a netlink handle in the director's own namespace (nil:
// the namespace of the calling thread).
func New(host *netlink.Handle, log *slog.Logger) (*Manager, error) {
	if host == nil {
		var err error
		if host, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return nil, fmt.Errorf("datapath: netlink: %w", err)
		}
	}
	if log == nil {
		log = slog.Default()
	}
	// Any thread the scheduler hands out is in the director's namespace:
	// threads moved elsewhere stay locked and end with their goroutine.
	runtime.LockOSThread()
	origin, err := netns.Get()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("datapath: the director's network namespace: %w", err)
	}
	return &Manager{host: host, log: log, origin: origin, spaces: map[netip.Addr]*space{}, failed: map[Route]error{}}, nil
}

// Sync makes the namespaces hold exactly routes: namespaces whose layout
// is unchanged are kept as they are (probes through them go on), changed
// ones are rebuilt, ones no route uses are removed. It returns every
// problem; a route the director cannot reach, or whose namespace could
// not be built, is left out, and Dial through it returns a SetupError
// saying why.
func (m *Manager) Sync(ctx context.Context, routes []Route) error {
	failed := map[Route]error{}
	var errs []error
	hops := map[netip.Addr]NextHop{}
	var usable []Route
	unreachable := map[netip.Addr]error{}
	for _, r := range routes {
		if !r.Source.Is4() || !r.RealServer.Is4() || !r.VIP.Is4() {
			failed[r] = fmt.Errorf("datapath: %s: only IPv4 is supported", r)
			errs = append(errs, failed[r])
			continue
		}
		if err := unreachable[r.RealServer]; err != nil {
			failed[r] = err
			continue
		}
		if _, ok := hops[r.RealServer]; !ok {
			hop, err := m.nextHop(r)
			if err != nil {
				failed[r], unreachable[r.RealServer] = err, err
				errs = append(errs, err)
				continue
			}
			hops[r.RealServer] = hop
		}
		usable = append(usable, r)
	}
	layouts, err := plan(usable, hops)
	if err != nil {
		// Nothing of the previous routes is kept: probes through them
		// fail with err rather than go on through a stale path.
		m.Close()
		m.mu.Lock()
		for _, r := range routes {
			m.failed[r] = err
		}
		m.mu.Unlock()
		return err
	}
	m.mu.Lock()
	var stale []*space
	for src, sp := range m.spaces {
		if l, ok := layouts[src]; !ok || !l.equal(&sp.layout) {
			stale = append(stale, sp)
			delete(m.spaces, src)
		}
	}
	m.failed = failed
	m.mu.Unlock()
	for _, sp := range stale {
		sp.close()
	}
	for _, src := range sortedKeys(layouts) {
		m.mu.RLock()
		_, kept := m.spaces[src]
		m.mu.RUnlock()
		if kept {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		l := layouts[src]
		sp, err := m.build(l)
		m.mu.Lock()
		if err != nil {
			for _, r := range usable {
				if r.Source == src {
					m.failed[r] = err
				}
			}
			errs = append(errs, err)
		} else {
			m.spaces[src] = sp
		}
		m.mu.Unlock()
		if err == nil {
			m.log.Info("datapath: probe namespace ready", "source", src, "links", len(l.links), "real_servers", len(l.paths))
		}
	}
	return errors.Join(errs...)
}

// nextHop asks the director's own routing table how it reaches r's real
// server, as the kernel's DR and TUN forwarding would.
func (m *Manager) nextHop(r Route) (NextHop, error) {
	rs, err := m.host.RouteGet(r.RealServer.AsSlice())
	if err != nil || len(rs) == 0 {
		return NextHop{}, fmt.Errorf("datapath: %s: no route to the real server: %w", r, hint(err, ""))
	}
	if rs[0].Type == unix.RTN_LOCAL {
		return NextHop{}, fmt.Errorf("datapath: %s: the real server's address is the director's own", r)
	}
	hop := NextHop{Link: rs[0].LinkIndex}
	if gw, ok := netip.AddrFromSlice(rs[0].Gw); ok && rs[0].Gw != nil {
		hop.Gateway = gw.Unmap()
	}
	return hop, nil
}

// build creates the namespace of l. On error nothing of it is left.
func (m *Manager) build(l layout) (sp *space, err error) {
	ns, err := newNamespace()
	if err != nil {
		return nil, err
	}
	sp = &space{layout: l, ns: ns}
	defer func() {
		if err != nil {
			sp.close()
			err = fmt.Errorf("datapath: probe namespace of source %s: %w", l.source, err)
		}
	}()
	if sp.h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
		return sp, fmt.Errorf("netlink in the namespace: %w", hint(err, ""))
	}
	lo, err := sp.h.LinkByName("lo")
	if err == nil {
		err = sp.h.LinkSetUp(lo)
	}
	if err != nil {
		return sp, fmt.Errorf("lo up: %w", hint(err, ""))
	}
	src32 := &net.IPNet{IP: l.source.AsSlice(), Mask: net.CIDRMask(32, 32)}
	links := map[int]int{} // parent -> macvlan in the namespace
	for _, parent := range l.links {
		name := fmt.Sprintf("dp%d", parent)
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent, Namespace: netlink.NsFd(int(ns))},
			Mode:      netlink.MACVLAN_MODE_BRIDGE,
		}
		// Made by the host's handle, so that the parent is looked up
		// there, and born inside the namespace.
		if err := m.host.LinkAdd(mv); err != nil {
			return sp, fmt.Errorf("macvlan on interface %d: %w", parent, hint(err, "macvlan"))
		}
		link, err := sp.h.LinkByName(name)
		if err != nil {
			return sp, fmt.Errorf("macvlan %s: %w", name, err)
		}
		if err := setUp(sp.h, link, src32); err != nil {
			return sp, fmt.Errorf("macvlan %s: %w", name, hint(err, ""))
		}
		links[parent] = link.Attrs().Index
	}
	for _, p := range l.paths {
		if err := sp.addPath(p, links[p.hop.Link], l.source); err != nil {
			return sp, fmt.Errorf("real server %s: %w", p.realServer, hint(err, "ipip"))
		}
	}
	return sp, nil
}

func setUp(h *netlink.Handle, link netlink.Link, addr *net.IPNet) error {
	if err := h.LinkSetAlias(link, Alias); err != nil {
		return err
	}
	if addr != nil {
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: addr}); err != nil {
			return err
		}
	}
	return h.LinkSetUp(link)
}

// addPath routes the VIPs of p, for sockets marked p.mark, to p's real
// server: for DR through the next hop's MAC address on link, for TUN
// into an IPIP tunnel to the real server.
func (sp *space) addPath(p path, link int, source netip.Addr) error {
	rule := netlink.NewRule()
	rule.Family = unix.AF_INET
	rule.Mark = p.mark
	rule.Table = int(p.mark)
	rule.Priority = firstMark
	if err := sp.h.RuleAdd(rule); err != nil {
		return fmt.Errorf("rule fwmark %d: %w", p.mark, err)
	}
	src := source.AsSlice()
	hop := p.realServer
	if p.hop.Gateway.IsValid() {
		hop = p.hop.Gateway
	}
	via := func(dst netip.Addr, table int) *netlink.Route {
		return &netlink.Route{Dst: host32(dst), Gw: hop.AsSlice(), LinkIndex: link, Flags: int(netlink.FLAG_ONLINK),
			Table: table, Src: src}
	}
	if !p.tunnel {
		for _, vip := range p.vips {
			if err := sp.h.RouteAdd(via(vip, int(p.mark))); err != nil {
				return fmt.Errorf("route %s: %w", vip, err)
			}
		}
		return nil
	}
	under := via(p.realServer, unix.RT_TABLE_MAIN)
	if !p.hop.Gateway.IsValid() {
		under = &netlink.Route{Dst: host32(p.realServer), LinkIndex: link, Scope: netlink.SCOPE_LINK, Src: src}
	}
	if err := sp.h.RouteReplace(under); err != nil {
		return fmt.Errorf("route %s: %w", p.realServer, err)
	}
	tun := &netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("dpt%d", p.mark)},
		Local: src, Remote: p.realServer.AsSlice(), Ttl: 64}
	if err := sp.h.LinkAdd(tun); err != nil {
		return fmt.Errorf("ipip tunnel: %w", err)
	}
	if err := setUp(sp.h, tun, nil); err != nil {
		return fmt.Errorf("ipip tunnel: %w", err)
	}
	for _, vip := range p.vips {
		r := &netlink.Route{Dst: host32(vip), LinkIndex: tun.Attrs().Index, Table: int(p.mark), Src: src,
			Scope: netlink.SCOPE_LINK}
		if err := sp.h.RouteAdd(r); err != nil {
			return fmt.Errorf("route %s: %w", vip, err)
		}
	}
	return nil
}

func host32(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// close releases the namespace: with its last descriptor gone the kernel
// deletes it and everything in it.
func (sp *space) close() {
	if sp.h != nil {
		sp.h.Close()
	}
	sp.ns.Close()
}

// newNamespace creates an anonymous network namespace and returns its
// descriptor. Reverse-path filtering is turned off in it: answers come
// from the VIP, which only marked sockets route, so a reverse-path check
// would drop them (IPv4 settings are inherited from the host's).
func newNamespace() (netns.NsHandle, error) {
	return onOwnThread(func() (netns.NsHandle, error) {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return -1, fmt.Errorf("creating a network namespace: %w", hint(err, ""))
		}
		for _, conf := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+conf+"/rp_filter", []byte("0"), 0); err != nil {
				return -1, fmt.Errorf("rp_filter off: %w", err)
			}
		}
		return netns.Get()
	})
}

// onOwnThread runs f on an OS thread of its own and returns its result.
// The thread is never unlocked: f may move it into another namespace,
// and Go ends a locked thread with its goroutine, so no other goroutine
// ever runs there.
func onOwnThread[T any](f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		v, err := f()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// SetupError says a probe could not be sent because the director's own
// data-path setup is missing: it says nothing of the real server.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// Dial connects over network ("tcp") to r's VIP at port, delivered
// through r's data path. The connection is usable from any goroutine.
func (m *Manager) Dial(ctx context.Context, network string, r Route, port uint16) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The socket is made on a thread in the probe namespace; the
		// connection stays there whichever thread uses it. The thread
		// then goes back to the director's namespace and to the
		// scheduler (a thread made and ended per probe made a dial cost
		// 3 to 9 times a plain one, BenchmarkDial); if it cannot, it
		// stays locked and ends with
		// this goroutine, so no other goroutine ever runs there.
		runtime.LockOSThread()
		mark, err := m.enter(r)
		if err != nil {
			ch <- result{nil, &SetupError{err}}
			return
		}
		d := net.Dialer{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}); err != nil {
				return err
			}
			return serr
		}}
		c, err := d.DialContext(ctx, network, netip.AddrPortFrom(r.VIP, port).String())
		if netns.Set(m.origin) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	res := <-ch
	return res.c, res.err
}

// enter moves the calling thread into the namespace of r and returns the
// mark of r's path there.
func (m *Manager) enter(r Route) (uint32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.failed[r]; err != nil {
		return 0, err
	}
	sp := m.spaces[r.Source]
	if sp == nil {
		return 0, fmt.Errorf("datapath: no probe namespace for source %s", r.Source)
	}
	mark := sp.layout.mark(r)
	if mark == 0 {
		return 0, fmt.Errorf("datapath: no path for %s", r)
	}
	if err := netns.Set(sp.ns); err != nil {
		return 0, fmt.Errorf("datapath: entering the probe namespace: %w", hint(err, ""))
	}
	return mark, nil
}

// Close removes every namespace.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for src, sp := range m.spaces {
		sp.close()
		delete(m.spaces, src)
	}
	m.failed = map[Route]error{}
	return nil
}

// Sources lists the source addresses that have a namespace, ascending.
func (m *Manager) Sources() []netip.Addr {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return sortedKeys(m.spaces)
}

// hint adds what to do to the errors an operator can fix: a missing
// capability, or a kernel without the link type kind.
func hint(err error, kind string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (data-path checks need CAP_NET_ADMIN and CAP_SYS_ADMIN: the director creates network namespaces)", err)
	case kind != "" && errors.Is(err, unix.EOPNOTSUPP):
		option := "CONFIG_MACVLAN"
		if kind == "ipip" {
			option = "CONFIG_NET_IPIP"
		}
		return fmt.Errorf("%w (the kernel lacks %s: modprobe %s, or build it with %s)", err, kind, kind, option)
	}
	return err
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	keys := make([]netip.Addr, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, netip.Addr.Compare)
	return keys
}
