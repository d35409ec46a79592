//go:build linux

package datapath_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/lvsdirector/director/datapath"
	"github.com/lvsdirector/director/internal/testutil"
)

// lab is a director and one DR real server in namespaces of the test's
// own, joined by a veth pair: the director holds the VIP on its lo, the
// real server may or may not.
type lab struct {
	director, rs *testutil.NetNS
	host, rsh    *netlink.Handle
	route        datapath.Route
	port         uint16
}

var (
	labVIP    = netip.MustParseAddr("10.77.100.1")
	labRIP    = netip.MustParseAddr("10.77.0.2")
	labSource = netip.MustParseAddr("10.77.0.50")
)

func newLab(t testing.TB) *lab {
	t.Helper()
	dir, err := testutil.NewNetNS()
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("needs CAP_SYS_ADMIN: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	rs, err := testutil.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	l := &lab{director: dir, rs: rs, route: datapath.Route{Source: labSource, RealServer: labRIP, VIP: labVIP}, port: 8080}
	if l.host, err = netlink.NewHandleAt(netns.NsHandle(dir.File().Fd()), unix.NETLINK_ROUTE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.host.Close)
	if l.rsh, err = netlink.NewHandleAt(netns.NsHandle(rs.File().Fd()), unix.NETLINK_ROUTE); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.rsh.Close)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d0"}, PeerName: "r0",
		PeerNamespace: netlink.NsFd(int(rs.File().Fd()))}
	if err := l.host.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	up := func(h *netlink.Handle, name, addr string) {
		t.Helper()
		link, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(addr)
		if err := h.AddrAdd(link, a); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
	up(l.host, "d0", "10.77.0.1/24")
	up(l.host, "lo", labVIP.String()+"/32") // the director holds the VIP
	up(l.rsh, "r0", labRIP.String()+"/24")
	return l
}

// vipOnRealServer adds (or removes) the VIP on the real server's lo.
func (l *lab) vipOnRealServer(t testing.TB, on bool) {
	t.Helper()
	lo, err := l.rsh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netlink.ParseAddr(labVIP.String() + "/32")
	if on {
		err = l.rsh.AddrAdd(lo, a)
	} else {
		err = l.rsh.AddrDel(lo, a)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// serve listens on the real server's port on all its addresses and
// greets each connection with the address it was made to.
func (l *lab) serve(t testing.TB) {
	t.Helper()
	var ln net.Listener
	err := l.rs.Do(func() (err error) {
		ln, err = net.Listen("tcp4", ":8080")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.ServeConns(t, ln, func(c net.Conn) { io.WriteString(c, c.LocalAddr().String()+"\n") })
}

func (l *lab) manager(t *testing.T) *datapath.Manager {
	t.Helper()
	m, err := datapath.New(l.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func greeting(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestDialReachesTheRealServerThroughTheVIP(t *testing.T) {
	l := newLab(t)
	l.serve(t)
	l.vipOnRealServer(t, true)
	m := l.manager(t)
	before, err := l.host.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(context.Background(), []datapath.Route{l.route}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := m.Dial(ctx, "tcp", l.route, l.port)
	if err != nil {
		t.Fatalf("dial through the data path: %v", err)
	}
	// The real server saw a connection to the VIP, not to its own address.
	if got, want := greeting(t, c), netip.AddrPortFrom(labVIP, l.port).String(); got != want {
		t.Errorf("real server accepted on %s, want %s", got, want)
	}

	// Dialing threads go back to the director's namespace: none that
	// the scheduler hands out later is left in the probe namespace.
	for range 20 {
		if c, err := m.Dial(ctx, "tcp", l.route, l.port); err == nil {
			c.Close()
		}
	}
	// Threads that entered a namespace of the test's end soon after;
	// none may stay in the probe namespace.
	probe := fmt.Sprintf("net:[%d]", m.NamespaceInode(labSource))
	var away []string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		away = away[:0]
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			if task.Name() == strconv.Itoa(os.Getpid()) {
				// The main thread is parked for good, never ended, when
				// a goroutine ends locked to it: it runs nothing more.
				continue
			}
			if ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && ns == probe {
				away = append(away, task.Name()+":"+ns)
			}
		}
		if len(away) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(away) > 0 {
		t.Errorf("threads left in the probe namespace (%s) after dials: %v", probe, away)
	}

	// Nothing was added to the director's own namespace.
	after, err := l.host.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("the director's namespace has %d links after Sync, %d before", len(after), len(before))
	}

	// The pitfall the namespace avoids: the director's own stack
	// delivers the VIP locally, where nothing listens.
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = l.director.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(labVIP, l.port).String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("a plain dial to the VIP from the director: %v, want refused (delivered locally)", err)
	}
}

func TestDialGetsNoAnswerWithoutTheVIPOnTheRealServer(t *testing.T) {
	l := newLab(t)
	l.serve(t)
	m := l.manager(t)
	if err := m.Sync(context.Background(), []datapath.Route{l.route}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := m.Dial(ctx, "tcp", l.route, l.port)
	if err == nil {
		c.Close()
		t.Fatal("dial through the data path of a real server without the VIP succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !os.IsTimeout(err) {
		t.Errorf("err = %v, want a timeout (the real server drops packets for an address it lacks)", err)
	}
	// Its own address answers all the same: a plain check passes.
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = l.director.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(labRIP, l.port).String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Errorf("plain dial to the real server's address: %v", err)
	}
}

func TestSyncKeepsRebuildsAndRemoves(t *testing.T) {
	l := newLab(t)
	m := l.manager(t)
	ctx := context.Background()
	if err := m.Sync(ctx, []datapath.Route{l.route}); err != nil {
		t.Fatal(err)
	}
	ino := func() uint64 {
		t.Helper()
		n := m.NamespaceInode(labSource)
		if n == 0 {
			t.Fatal("no namespace for the source")
		}
		return n
	}
	first := ino()
	if err := m.Sync(ctx, []datapath.Route{l.route, l.route}); err != nil {
		t.Fatal(err)
	}
	if ino() != first {
		t.Error("an unchanged route set rebuilt the namespace")
	}
	other := l.route
	other.VIP = netip.MustParseAddr("10.77.100.2")
	if err := m.Sync(ctx, []datapath.Route{l.route, other}); err != nil {
		t.Fatal(err)
	}
	if ino() == first {
		t.Error("a changed route set kept the old namespace")
	}
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := m.Sources(); len(got) != 0 {
		t.Errorf("namespaces %v left after an empty Sync", got)
	}
	_, err := m.Dial(ctx, "tcp", l.route, l.port)
	var setup *datapath.SetupError
	if !errors.As(err, &setup) {
		t.Errorf("dial through a removed route: %v, want a SetupError", err)
	}
}

func TestSyncSaysWhatIsMissing(t *testing.T) {
	l := newLab(t)
	m := l.manager(t)
	tun := l.route
	tun.Tunnel = true
	err := m.Sync(context.Background(), []datapath.Route{tun})
	if err == nil {
		if _, e := os.Stat("/sys/module/ipip"); e == nil {
			t.Skip("this kernel has ipip")
		}
		t.Fatal("Sync of a TUN route succeeded on a kernel without ipip")
	}
	if _, e := os.Stat("/sys/module/ipip"); e == nil {
		t.Fatalf("Sync of a TUN route on a kernel with ipip: %v", err)
	}
	if !strings.Contains(err.Error(), "modprobe ipip") {
		t.Errorf("err = %v, want a hint to load ipip", err)
	}
	_, derr := m.Dial(context.Background(), "tcp", tun, l.port)
	if derr == nil || !strings.Contains(derr.Error(), "modprobe ipip") {
		t.Errorf("dial through the failed namespace: %v, want the Sync error", derr)
	}

	unrouted := l.route
	unrouted.RealServer = netip.MustParseAddr("10.99.0.2")
	// One real server the director cannot reach does not take the
	// others' data path down.
	if err := m.Sync(context.Background(), []datapath.Route{unrouted, l.route}); err == nil || !strings.Contains(err.Error(), "no route to the real server") {
		t.Errorf("a real server the director cannot reach: %v", err)
	}
	if got := m.Sources(); len(got) != 1 || got[0] != labSource {
		t.Errorf("namespaces %v, want the one of %s for the reachable real server", got, labSource)
	}
	_, derr = m.Dial(context.Background(), "tcp", unrouted, l.port)
	var setup *datapath.SetupError
	if !errors.As(derr, &setup) || !strings.Contains(derr.Error(), "no route to the real server") {
		t.Errorf("dial through the unreachable real server: %v, want a SetupError saying why", derr)
	}
}

// BenchmarkDial compares a connection through the data path (a thread
// that enters the probe namespace, per dial) with a plain one from the
// director's namespace to the real server's address, in the same run.
func BenchmarkDial(b *testing.B) {
	l := newLab(b)
	l.serve(b)
	l.vipOnRealServer(b, true)
	m, err := datapath.New(l.host, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if err := m.Sync(context.Background(), []datapath.Route{l.route}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("datapath", func(b *testing.B) {
		for b.Loop() {
			c, err := m.Dial(ctx, "tcp", l.route, l.port)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("plain", func(b *testing.B) {
		err := l.director.Do(func() error {
			for b.Loop() {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(labRIP, l.port).String())
				if err != nil {
					return err
				}
				c.Close()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}
