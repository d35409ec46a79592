//go:build linux

package ipvs

// Tests against the real kernel IPVS. They run in a network namespace of
// their own, so they never touch the host's table, and skip where the
// kernel has no IPVS or the test lacks privileges, unless
// DIRECTOR_REQUIRE_IPVS=1 (the e2e VM sets it), which turns a skip into a
// failure.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kernelNetlink is a Netlink table in a network namespace of its own.
type kernelNetlink struct {
	*Netlink
	ns *os.File // the namespace, for running ipvsadm in it
}

// kernelTable returns a Netlink table in a fresh network namespace.
func kernelTable(t *testing.T) kernelNetlink {
	t.Helper()
	required := os.Getenv("DIRECTOR_REQUIRE_IPVS") == "1"
	var n *Netlink
	var ns *os.File
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread is left locked: it ends with this goroutine, so the
		// namespace never leaks to other goroutines. The netlink socket
		// stays in the namespace it was created in.
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("%w: unshare network namespace: %w", ErrPermission, err)
			return
		}
		if err = linkUp("lo"); err != nil { // the kernel rejects IPv4 real servers while lo is down
			return
		}
		if ns, err = os.Open("/proc/thread-self/ns/net"); err != nil {
			return
		}
		n, err = NewNetlink()
	}()
	<-done
	if err != nil {
		if !required && (errors.Is(err, ErrNotSupported) || errors.Is(err, ErrPermission)) {
			t.Skipf("no kernel IPVS here (set DIRECTOR_REQUIRE_IPVS=1 to fail instead): %v", err)
		}
		t.Fatalf("kernel IPVS: %v", err)
	}
	t.Cleanup(func() { n.Close(); ns.Close() })
	return kernelNetlink{n, ns}
}

// ipvsadm runs `ipvsadm -Ln` in the table's namespace, when ipvsadm and
// nsenter are installed.
func (k kernelNetlink) ipvsadm(t *testing.T) (string, bool) {
	t.Helper()
	ipvsadm, err1 := exec.LookPath("ipvsadm")
	nsenter, err2 := exec.LookPath("nsenter")
	if err1 != nil || err2 != nil {
		t.Log("no ipvsadm or nsenter: no cross-check")
		return "", false
	}
	cmd := exec.Command(nsenter, "--net=/proc/self/fd/3", ipvsadm, "-Ln")
	cmd.ExtraFiles = []*os.File{k.ns}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -Ln: %v\n%s", err, out)
	}
	return string(out), true
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

func lookup(t *testing.T, tb Table, k ServiceKey) (ServiceState, bool) {
	t.Helper()
	all, err := tb.Services(context.Background())
	if err != nil {
		t.Fatalf("services: %v", err)
	}
	for _, s := range all {
		if s.Key == k {
			return s, true
		}
	}
	return ServiceState{}, false
}

func TestKernelServices(t *testing.T) {
	n := kernelTable(t)
	ctx := context.Background()
	if all, err := n.Services(ctx); err != nil || len(all) != 0 {
		t.Fatalf("fresh namespace: %v, %v", all, err)
	}
	for _, tt := range []struct {
		name      string
		s, update Service
	}{
		{"tcp v4", Service{Key: web, Scheduler: "wlc"}, Service{Key: web, Scheduler: "rr"}},
		{"udp", Service{Key: AddressKey(UDP, netip.MustParseAddrPort("192.0.2.10:53")), Scheduler: "rr"},
			Service{Key: AddressKey(UDP, netip.MustParseAddrPort("192.0.2.10:53")), Scheduler: "lc", Persistence: 10 * time.Second}},
		{"sctp", Service{Key: AddressKey(SCTP, netip.MustParseAddrPort("192.0.2.10:3868")), Scheduler: "wrr"},
			Service{Key: AddressKey(SCTP, netip.MustParseAddrPort("192.0.2.10:3868")), Scheduler: "sed"}},
		{"ipv6", Service{Key: web6, Scheduler: "nq"}, Service{Key: web6, Scheduler: "fo"}},
		{"fwmark v4", Service{Key: mark4, Scheduler: "lblc"}, Service{Key: mark4, Scheduler: "lblcr"}},
		{"fwmark v6", Service{Key: mark6, Scheduler: "dh"}, Service{Key: mark6, Scheduler: "ovf"}},
		{"persistence and netmask v4", Service{Key: tls, Scheduler: "wlc", Persistence: 300 * time.Second, PersistenceNetmask: 24},
			Service{Key: tls, Scheduler: "wlc"}},
		{"persistence and netmask v6", Service{Key: web6, Scheduler: "wlc", Persistence: 60 * time.Second, PersistenceNetmask: 64},
			Service{Key: web6, Scheduler: "wlc", Persistence: 120 * time.Second, PersistenceNetmask: 48}},
		{"sh flags", Service{Key: web, Scheduler: "sh", SchedulerFlags: SHFallback | SHPort},
			Service{Key: web, Scheduler: "sh", SchedulerFlags: SHPort}},
		{"mh flags", Service{Key: web, Scheduler: "mh", SchedulerFlags: MHFallback},
			Service{Key: web, Scheduler: "wlc"}}, // twos exists from Linux 6.2 only
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i, s := range []Service{tt.s, tt.update} {
				var err error
				if i == 0 {
					err = n.CreateService(ctx, s)
				} else {
					err = n.UpdateService(ctx, s)
				}
				if err != nil {
					t.Fatal(err)
				}
				got, ok := lookup(t, n, s.Key)
				if !ok {
					t.Fatalf("%s not read back", s.Key)
				}
				if got.Service != s.Normalize() {
					t.Errorf("read back %+v\n     want %+v", got.Service, s.Normalize())
				}
			}
			if err := n.DeleteService(ctx, tt.s.Key); err != nil {
				t.Fatal(err)
			}
			if _, ok := lookup(t, n, tt.s.Key); ok {
				t.Error("still there after delete")
			}
		})
	}
}

func TestKernelDestinations(t *testing.T) {
	n := kernelTable(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		key  ServiceKey
		d    Destination
		upd  Destination
	}{
		{"nat", web, Destination{Address: netip.MustParseAddrPort("10.0.0.1:8080"), Weight: 100, Forwarding: NAT},
			Destination{Address: netip.MustParseAddrPort("10.0.0.1:8080"), Weight: 0, Forwarding: NAT}},
		{"dr", web, Destination{Address: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 1, Forwarding: DR},
			Destination{Address: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 5, Forwarding: NAT}},
		{"tun", web, Destination{Address: netip.MustParseAddrPort("10.0.0.3:80"), Weight: 2, Forwarding: TUN},
			Destination{Address: netip.MustParseAddrPort("10.0.0.3:80"), Weight: 2, Forwarding: DR}},
		{"ipv6 nat", web6, Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Weight: 1, Forwarding: NAT},
			Destination{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Weight: 9, Forwarding: TUN}},
		{"ipv4 tun in ipv6 service", web6, Destination{Address: netip.MustParseAddrPort("10.0.0.4:80"), Weight: 3, Forwarding: TUN},
			Destination{Address: netip.MustParseAddrPort("10.0.0.4:80"), Weight: 4, Forwarding: TUN}},
		{"fwmark port 0", mark4, Destination{Address: netip.MustParseAddrPort("10.0.0.5:0"), Weight: 1, Forwarding: DR},
			Destination{Address: netip.MustParseAddrPort("10.0.0.5:0"), Weight: 0, Forwarding: DR}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := lookup(t, n, tt.key); !ok {
				if err := n.CreateService(ctx, Service{Key: tt.key, Scheduler: "wrr"}); err != nil {
					t.Fatal(err)
				}
			}
			for i, d := range []Destination{tt.d, tt.upd} {
				var err error
				if i == 0 {
					err = n.CreateDestination(ctx, tt.key, d)
				} else {
					err = n.UpdateDestination(ctx, tt.key, d)
				}
				if err != nil {
					t.Fatal(err)
				}
				s, _ := lookup(t, n, tt.key)
				found := false
				for _, got := range s.Destinations {
					if got.Address == d.Address {
						found = true
						if got.Destination != d {
							t.Errorf("read back %+v, want %+v", got.Destination, d)
						}
					}
				}
				if !found {
					t.Errorf("%s not read back: %+v", d.Address, s.Destinations)
				}
			}
			if err := n.DeleteDestination(ctx, tt.key, tt.d.Address); err != nil {
				t.Fatal(err)
			}
			s, _ := lookup(t, n, tt.key)
			for _, got := range s.Destinations {
				if got.Address == tt.d.Address {
					t.Errorf("still there after delete")
				}
			}
		})
	}
	t.Run("local address reads back as local", func(t *testing.T) {
		d := Destination{Address: netip.MustParseAddrPort("127.0.0.1:8080"), Weight: 1, Forwarding: DR}
		if err := n.CreateDestination(ctx, web, d); err != nil {
			t.Fatal(err)
		}
		s, _ := lookup(t, n, web)
		for _, got := range s.Destinations {
			if got.Address == d.Address {
				t.Logf("127.0.0.1 configured as dr reads back as %s", got.Forwarding)
			}
		}
		desired := []DesiredService{{Service: s.Service, Destinations: []Destination{d}}}
		if ops := Plan(desired, []ServiceState{s}, nil); len(ops) != 0 {
			t.Errorf("planned %q", opStrings(ops))
		}
	})
}

func TestKernelErrors(t *testing.T) {
	n := kernelTable(t)
	ctx := context.Background()
	d := Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 1}
	steps := []struct {
		name string
		err  error
		want error
	}{
		{"create", n.CreateService(ctx, Service{Key: web}), nil},
		{"create again", n.CreateService(ctx, Service{Key: web}), ErrServiceExists},
		{"update missing", n.UpdateService(ctx, Service{Key: tls}), ErrServiceNotFound},
		{"delete missing", n.DeleteService(ctx, tls), ErrServiceNotFound},
		{"unknown scheduler", n.CreateService(ctx, Service{Key: tls, Scheduler: "bogus"}), ErrUnknownScheduler},
		{"unknown scheduler on update", n.UpdateService(ctx, Service{Key: web, Scheduler: "bogus"}), ErrUnknownScheduler},
		{"dest create", n.CreateDestination(ctx, web, d), nil},
		{"dest create again", n.CreateDestination(ctx, web, d), ErrDestinationExists},
		{"dest in missing service", n.CreateDestination(ctx, tls, d), ErrServiceNotFound},
		{"dest update missing", n.UpdateDestination(ctx, web, rs("10.0.0.2:80", 1)), ErrDestinationNotFound},
		{"dest delete missing", n.DeleteDestination(ctx, web, netip.MustParseAddrPort("10.0.0.2:80")), ErrDestinationNotFound},
		{"dest delete in missing service", n.DeleteDestination(ctx, tls, d.Address), ErrServiceNotFound},
		{"v6 nat dest in v4 service", n.CreateDestination(ctx, web, rs("[2001:db8::1]:80", 1)), ErrInvalid},
		{"delete", n.DeleteService(ctx, web), nil},
	}
	for _, s := range steps {
		if !errors.Is(s.err, s.want) {
			t.Errorf("%s: got %v, want %v", s.name, s.err, s.want)
		} else if s.err != nil {
			t.Logf("%s: %v", s.name, s.err)
		}
	}
}

func TestKernelReconcile(t *testing.T) {
	n := kernelTable(t)
	m := NewMemory()
	ctx := context.Background()
	handMade := Service{Key: tls, Scheduler: "rr"}
	for _, tb := range []Table{n, m} {
		if err := tb.CreateService(ctx, handMade); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, desired []DesiredService, retired []ServiceKey, wantOps int) {
		t.Helper()
		r := mustReconcile(t, n, desired, retired)
		if len(r.Errors) != 0 || len(r.Ops) != wantOps {
			t.Fatalf("%s: %d ops %q, errors %v", step, len(r.Ops), opStrings(r.Ops), r.Errors)
		}
		for _, op := range r.Ops {
			t.Logf("%s: %s", step, op)
		}
		if r := mustReconcile(t, n, desired, retired); len(r.Ops) != 0 {
			t.Fatalf("%s: second reconcile planned %q", step, opStrings(r.Ops))
		}
		// The in-memory table, given the same plan, reads back the same.
		mustReconcile(t, m, desired, retired)
		kt, _ := n.Services(ctx)
		mt, _ := m.Services(ctx)
		if fmt.Sprintf("%+v", kt) != fmt.Sprintf("%+v", mt) {
			t.Errorf("%s: kernel and memory differ:\nkernel %+v\nmemory %+v", step, kt, mt)
		}
	}
	check("create", sample(), nil, 10)
	if out, ok := n.ipvsadm(t); ok {
		t.Logf("ipvsadm -Ln:\n%s", out)
		for _, re := range []string{
			`TCP  192\.0\.2\.10:80 wlc persistent 60 mask 255\.255\.255\.0\n  -> 10\.0\.0\.1:8080 +Masq +100 .*\n  -> 10\.0\.0\.2:8080 +Masq +50 `,
			`UDP  192\.0\.2\.10:53 rr\n  -> 10\.0\.0\.1:53 +Route +1 `,
			`FWM  10 wrr\n  -> 10\.0\.0\.1:0 +Tunnel +3 `,
			`TCP  \[2001:db8::10\]:80 sh \(sh-fallback\)\n  -> 10\.0\.0\.3:80 +Tunnel +1 .*\n  -> \[2001:db8::1\]:80 +Masq +1 `,
			`TCP  192\.0\.2\.11:443 rr\n`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("ipvsadm -Ln does not match %s", re)
			}
		}
	}
	d := sample()
	d[0].Destinations[1].Weight = 0
	d[0].Scheduler = "rr"
	d[2].Destinations[0].Forwarding = DR
	retired := []ServiceKey{d[3].Key}
	check("change", d[:3], retired, 4)
	if _, ok := lookup(t, n, tls); !ok {
		t.Error("hand-made service removed")
	}
	check("retire all", nil, []ServiceKey{d[0].Key, d[1].Key, d[2].Key}, 3)
	if all, _ := n.Services(ctx); len(all) != 1 || all[0].Key != tls {
		t.Errorf("left: %+v", all)
	}
}

// TestKernelPermission runs the probe as an unprivileged user (the test
// binary again, as nobody) and expects ErrPermission.
func TestKernelPermission(t *testing.T) {
	if os.Getenv("DIRECTOR_PROBE_CHILD") == "1" {
		_, err := NewNetlink()
		fmt.Printf("probe: %v\n", err)
		if !errors.Is(err, ErrPermission) {
			os.Exit(1)
		}
		return
	}
	kernelTable(t) // skips without IPVS
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKernelPermission$")
	cmd.Env = append(os.Environ(), "DIRECTOR_PROBE_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as uid 65534: %s", out)
	if err != nil {
		t.Errorf("unprivileged probe did not fail with ErrPermission: %v", err)
	}
}

// inNS runs f on a thread in the table's network namespace.
func (k kernelNetlink) inNS(f func() error) error {
	ch := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(int(k.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- err
			return
		}
		ch <- f()
	}()
	return <-ch
}

// TestKernelCounters sends a connection through a NAT service on the
// loopback and reads the counters back.
func TestKernelCounters(t *testing.T) {
	n := kernelTable(t)
	ctx := context.Background()
	var ln net.Listener
	if err := n.inNS(func() (err error) { ln, err = net.Listen("tcp4", "127.0.0.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	key := AddressKey(TCP, netip.MustParseAddrPort("127.0.0.2:80"))
	real := netip.MustParseAddrPort("127.0.0.1:8080")
	if err := n.CreateService(ctx, Service{Key: key, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateDestination(ctx, key, Destination{Address: real, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	if err := n.inNS(func() (err error) {
		conn, err = net.DialTimeout("tcp4", key.Address.String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial through the service: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo through the service: %q %v", buf, err)
	}
	deadline := time.Now().Add(6 * time.Second) // byte counters refresh every 2 s
	for {
		s, _ := lookup(t, n, key)
		if len(s.Destinations) != 1 {
			t.Fatalf("destinations: %+v", s.Destinations)
		}
		d := s.Destinations[0]
		if d.Counters.ActiveConns == 1 && d.Counters.Connections == 1 && d.Counters.PacketsIn > 0 && d.Counters.BytesIn > 0 && s.Counters.Connections == 1 {
			t.Logf("service %+v\ndestination %s %+v", s.Counters, d.Forwarding, d.Counters)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters did not show the connection: service %+v, destination %+v", s.Counters, d.Counters)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
