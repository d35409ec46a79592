//go:build linux

package guest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// The guest's network. The test process, the director and ipvsadm live in
// the initial namespace (the director's); the client and each backend have
// a namespace of their own, joined to it by a veth pair:
//
//	client  eth0 10.0.1.2/24  fd00:1::2/64    <-> cl   10.0.1.1   fd00:1::1
//	rsN     eth0 10.0.1N.2/24 fd00:1N::2/64   <-> rsN  10.0.1N.1  fd00:1N::1   (N = 1..6)
//
// 10.0.100.0/24 and fd00:100::/64 are local to the director: the VIPs.
// Every namespace routes everything else through the director, which
// forwards, so NAT replies pass the director and DR replies reach the client.

// netns is a network namespace held open by a sleeping process.
type netns struct {
	name string
	cmd  *exec.Cmd // nil for the initial namespace
	path string
}

var rootNS = &netns{name: "director", path: "/proc/1/ns/net"}

func newNetns(name string) (*netns, error) {
	cmd := exec.Command("unshare", "-n", "sleep", "1000000")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("unshare for %s: %w", name, err)
	}
	n := &netns{name: name, cmd: cmd, path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	root, _ := os.Readlink(rootNS.path)
	for i := 0; ; i++ {
		// Ask nsenter itself: right after the start it was seen entering
		// the initial namespace although the path already named the new
		// one (a bridge made "in" the namespace was then missing there).
		out, err := exec.Command("nsenter", "-t", fmt.Sprint(cmd.Process.Pid), "-n", "readlink", "/proc/self/ns/net").Output()
		if cur := strings.TrimSpace(string(out)); err == nil && cur != "" && cur != root {
			return n, nil
		}
		if i > 500 {
			return nil, fmt.Errorf("namespace %s never appeared", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sh runs a shell script in the namespace and fails with its output.
func (n *netns) sh(script string) error {
	var cmd *exec.Cmd
	if n.cmd == nil {
		cmd = exec.Command("sh", "-ec", script)
	} else {
		cmd = exec.Command("nsenter", "-t", fmt.Sprint(n.cmd.Process.Pid), "-n", "sh", "-ec", script)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("in %s: %s: %v: %s", n.name, strings.ReplaceAll(script, "\n", "; "), err, out)
	}
	return nil
}

// do runs f on a thread that has joined the namespace. Sockets f creates
// stay in the namespace. The thread is discarded afterwards.
func (n *netns) do(f func() error) error {
	return testutil.InNetNS(n.path, f)
}

// dial connects from inside the namespace.
func (n *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func writeSysctl(name, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")), []byte(value), 0o644)
}

// link joins ns to the director's namespace with a veth pair: hostSide in
// the initial namespace, eth0 in ns.
func link(ns *netns, hostSide string, v4host, v4peer, v6host, v6peer string) error {
	peer, err := addVeth(hostSide)
	if err != nil {
		return err
	}
	if err := rootNS.sh(fmt.Sprintf(`ip link set dev %s netns %d
ip addr add %s/24 dev %s
ip -6 addr add %s/64 dev %s
ip link set %s up`, peer, ns.cmd.Process.Pid, v4host, hostSide, v6host, hostSide, hostSide)); err != nil {
		return err
	}
	return ns.sh(fmt.Sprintf(`ip link set lo up
ip link set dev %s name eth0
ip addr add %s/24 dev eth0
ip -6 addr add %s/64 dev eth0
ip link set eth0 up
ip route add default via %s
ip -6 route add default via %s`, peer, v4peer, v6peer, v4host, v6host))
}

// addVeth makes a veth pair in the initial namespace and returns the
// name of name's peer: Debian's busybox ip cannot name it, so it is found
// by its ifindex.
func addVeth(name string) (string, error) {
	if err := rootNS.sh("ip link add " + name + " type veth"); err != nil {
		return "", err
	}
	b, err := os.ReadFile("/sys/class/net/" + name + "/iflink")
	if err != nil {
		return "", err
	}
	idx := strings.TrimSpace(string(b))
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		if b, err := os.ReadFile("/sys/class/net/" + e.Name() + "/ifindex"); err == nil && strings.TrimSpace(string(b)) == idx {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no veth peer of %s", name)
}

// backend is a real server in a namespace of its own: HTTP on port 80
// (body: its name; /healthz: "ok" or 503), HTTPS on 443 with a
// switchable certificate, and a UDP responder on 5353 (reply: its name).
type backend struct {
	name    string
	ns      *netns
	ip4     netip.Addr
	ip6     netip.Addr
	host4   netip.Addr // the director's side of the link
	host6   netip.Addr
	healthy atomic.Bool
	cert    atomic.Pointer[tls.Certificate]

	mu    sync.Mutex
	http  net.Listener // nil while stopped
	https net.Listener
	udp   net.PacketConn
}

func (b *backend) addr4(port uint16) string { return netip.AddrPortFrom(b.ip4, port).String() }
func (b *backend) addr6(port uint16) string { return netip.AddrPortFrom(b.ip6, port).String() }

func (b *backend) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !b.healthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, b.name+"\n")
	})
	return mux
}

// startHTTP (re)opens the HTTP listener on port 80; idempotent.
func (b *backend) startHTTP() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.http != nil {
		return nil
	}
	var ln net.Listener
	if err := b.ns.do(func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		return fmt.Errorf("%s: listen :80: %w", b.name, err)
	}
	b.http = ln
	go (&http.Server{Handler: b.handler(), ReadHeaderTimeout: 5 * time.Second}).Serve(ln)
	return nil
}

// stopHTTP closes the HTTP listener: connections are refused.
func (b *backend) stopHTTP() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.http != nil {
		b.http.Close()
		b.http = nil
	}
}

func (b *backend) startHTTPS() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.https != nil {
		return nil
	}
	var ln net.Listener
	if err := b.ns.do(func() (err error) { ln, err = net.Listen("tcp", ":443"); return err }); err != nil {
		return fmt.Errorf("%s: listen :443: %w", b.name, err)
	}
	b.https = ln
	cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return b.cert.Load(), nil }}
	// Handshakes the checks fail on purpose (a bad certificate) are not news.
	quiet := log.New(io.Discard, "", 0)
	go (&http.Server{Handler: b.handler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: quiet}).Serve(tls.NewListener(ln, cfg))
	return nil
}

func (b *backend) startUDP() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.udp != nil {
		return nil
	}
	var pc net.PacketConn
	if err := b.ns.do(func() (err error) { pc, err = net.ListenPacket("udp", ":5353"); return err }); err != nil {
		return fmt.Errorf("%s: listen udp :5353: %w", b.name, err)
	}
	b.udp = pc
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(b.name+"\n"), from)
		}
	}()
	return nil
}

// linkDown takes the backend's interface down (it stops answering pings);
// linkUp brings it back with its routes.
func (b *backend) linkDown() error { return b.ns.sh("ip link set eth0 down") }

func (b *backend) linkUp() error {
	return b.ns.sh(fmt.Sprintf(`ip link set eth0 up
ip route replace default via %s
ip -6 route replace default via %s`, b.host4, b.host6))
}

// reset puts the backend back to its healthy default for the next scenario.
func (b *backend) reset() error {
	b.healthy.Store(true)
	b.cert.Store(goodCert)
	if err := b.linkUp(); err != nil {
		return err
	}
	for _, f := range []func() error{b.startHTTP, b.startHTTPS, b.startUDP} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// client makes requests from the client namespace, a new connection each.
type client struct{ ns *netns }

func (c *client) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       c.ns.dial,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the VIP's certificate is not what is tested
		},
	}
}

// get fetches url and returns the body (a backend's name), trimmed.
func (c *client) get(url string) (string, error) {
	resp, err := c.httpClient(10 * time.Second).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return strings.TrimSpace(string(body)), nil
}

// udp sends one datagram from a fresh socket (a new IPVS connection) and
// returns the reply.
func (c *client) udp(addr string) (string, error) {
	var reply string
	err := c.ns.do(func() error {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("who?")); err != nil {
			return err
		}
		buf := make([]byte, 100)
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		reply = strings.TrimSpace(string(buf[:n]))
		return nil
	})
	return reply, err
}
