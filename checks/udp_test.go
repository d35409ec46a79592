package checks

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// udpServer answers the n-th datagram it gets with answer(n, datagram);
// a nil answer sends nothing back.
func udpServer(t *testing.T, answer func(n int, in []byte) []byte) netip.AddrPort {
	t.Helper()
	n := 0
	return udpServerFrom(t, func(pc net.PacketConn, in []byte, from net.Addr) {
		n++
		if out := answer(n, in); out != nil {
			pc.WriteTo(out, from)
		}
	})
}

// udpServerFrom calls handle with each datagram and its sender, one at a
// time.
func udpServerFrom(t *testing.T, handle func(pc net.PacketConn, in []byte, from net.Addr)) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			handle(pc, buf[:k], from)
		}
	})
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return testutil.AddrPort(t, pc.LocalAddr())
}

// closedUDPPort is a loopback UDP port nobody listens on: datagrams to it
// draw an ICMP port unreachable.
func closedUDPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := testutil.AddrPort(t, pc.LocalAddr())
	pc.Close()
	return ap
}

func udpSpec(target netip.AddrPort, send, expect string) Spec {
	return Spec{Type: "udp", Target: target, Options: UDPOptions{Send: send, Expect: expect}}
}

func TestUDP(t *testing.T) {
	echo := udpServer(t, func(_ int, in []byte) []byte { return bytes.ToUpper(in) })
	wantOK(t, probeWithin(t, mustNew(t, udpSpec(echo, "ping", "^PING$")), 2*time.Second))
	// No expect: any reply, even an empty one, is up.
	empty := udpServer(t, func(int, []byte) []byte { return []byte{} })
	wantOK(t, probeWithin(t, mustNew(t, udpSpec(empty, "", "")), 2*time.Second))
	// Escapes reach the wire as bytes.
	seen := make(chan []byte, 1)
	binary := udpServer(t, func(_ int, in []byte) []byte { seen <- bytes.Clone(in); return []byte("\x00ok") })
	wantOK(t, probeWithin(t, mustNew(t, udpSpec(binary, `\x00\x01ab\r\n\\`, `^\x00ok`)), 2*time.Second))
	if got := <-seen; !bytes.Equal(got, []byte("\x00\x01ab\r\n\\")) {
		t.Errorf("server got %q", got)
	}

	// Wrong answer: reported at once, not at the timeout.
	res := probeWithin(t, mustNew(t, udpSpec(echo, "hello", "^PONG")), 2*time.Second)
	wantReason(t, res, "expect mismatch")
	if res.Duration > time.Second {
		t.Errorf("a wrong answer took %v to judge", res.Duration)
	}

	// Refused: the kernel's ICMP port unreachable.
	res = probeWithin(t, mustNew(t, udpSpec(closedUDPPort(t), "ping", "")), 2*time.Second)
	wantReason(t, res, "refused")
	if res.Duration > time.Second {
		t.Errorf("a refused probe took %v", res.Duration)
	}

	// Silence, from a server that reads and never answers: timeout.
	var got int
	var mu sync.Mutex
	silent := udpServer(t, func(n int, _ []byte) []byte { mu.Lock(); got = n; mu.Unlock(); return nil })
	p := mustNew(t, udpSpec(silent, "ping", ""))
	done := checkNoLeak(t)
	wantReason(t, probeWithin(t, p, 600*time.Millisecond), "timeout")
	done()
	mu.Lock()
	if got != udpSends {
		t.Errorf("the silent server got %d datagrams, want %d", got, udpSends)
	}
	mu.Unlock()

	// A lost datagram is sent again within the timeout.
	lossy := udpServer(t, func(n int, in []byte) []byte {
		if n == 1 {
			return nil
		}
		return in
	})
	wantOK(t, probeWithin(t, mustNew(t, udpSpec(lossy, "ping", "ping")), 900*time.Millisecond))

	// Long replies are matched on their first udpReadCap bytes.
	long := udpServer(t, func(int, []byte) []byte { return append(bytes.Repeat([]byte("x"), udpReadCap), "END"...) })
	wantReason(t, probeWithin(t, mustNew(t, udpSpec(long, "ping", "END")), 2*time.Second), "expect mismatch")
	wantOK(t, probeWithin(t, mustNew(t, udpSpec(long, "ping", "^x+$")), 2*time.Second))
}

// A reply from another port than the one checked is not an answer: the
// connected socket never sees it.
func TestUDPReplyFromElsewhere(t *testing.T) {
	other, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	sent := make(chan error, udpSends)
	target := udpServerFrom(t, func(_ net.PacketConn, in []byte, from net.Addr) {
		_, err := other.WriteTo(in, from)
		sent <- err
	})
	wantReason(t, probeWithin(t, mustNew(t, udpSpec(target, "ping", "")), 500*time.Millisecond), "timeout")
	if err := <-sent; err != nil {
		t.Fatalf("the other socket could not answer: %v", err)
	}
}

func TestUDPSource(t *testing.T) {
	from := make(chan string, udpSends)
	target := udpServerFrom(t, func(_ net.PacketConn, _ []byte, addr net.Addr) { from <- addr.String() })
	spec := udpSpec(target, "x", "")
	spec.Source = netip.MustParseAddr("127.0.0.2")
	probeWithin(t, mustNew(t, spec), 300*time.Millisecond)
	if host, _, _ := net.SplitHostPort(<-from); host != "127.0.0.2" {
		t.Errorf("the server saw the probe from %s, want 127.0.0.2", host)
	}
}

// memcached speaks UDP with an 8-byte frame header (request id, sequence,
// count, reserved): a real UDP server to check against.
func TestUDPMemcached(t *testing.T) {
	bin := needBinary(t, "memcached")
	port := freePort(t)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", strconv.Itoa(port), "-m", "8", "-t", "1"}
	if os.Geteuid() == 0 {
		// memcached will not run as root without being told whom to be.
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-u", u.Username)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	startDaemon(t, exec.Command(bin, args...), listening(addr.String()))

	const frame = `\x00\x07\x00\x00\x00\x01\x00\x00`
	wantOK(t, probeWithin(t, mustNew(t, udpSpec(addr, frame+`version\r\n`, `^\x00\x07\x00\x00\x00\x01\x00\x00VERSION \d`)), 2*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, udpSpec(addr, frame+`bogus\r\n`, `VERSION`)), 2*time.Second), "expect mismatch")
	// A datagram without the frame header is dropped: silence.
	wantReason(t, probeWithin(t, mustNew(t, udpSpec(addr, `version\r\n`, `VERSION`)), 500*time.Millisecond), "timeout")
}
