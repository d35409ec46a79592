// Package bench is the load harness: it starts many loopback backends, runs
// the director (a real `director run -dry-run` process) or a minimal
// reference checker against them, and reports what each did and what it
// cost. Backends, director and reference checker run as separate processes
// so that each one's CPU is measured on its own.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// backendAddr is the i-th backend address: 127.1.0.1, 127.1.0.2, ... The
// whole of 127.0.0.0/8 is local on Linux, so each backend gets its own
// address and the checks cross a real TCP handshake each.
func backendAddr(i, port int) netip.AddrPort {
	n := i/254*256 + i%254 + 1 // skip .0 and .255 in the last octet
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(1 + n>>16), byte(n >> 8), byte(n)}), uint16(port))
}

// Group is a set of real servers checked alike: kind and interval.
type Group struct {
	Kind     string // one of Kinds
	N        int
	Interval time.Duration
}

// ParseGroups reads "http:10000:5s,tcp:10000:2s" (interval optional in
// contexts that do not need it: "http:100").
func ParseGroups(s string) ([]Group, error) {
	var out []Group
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("group %q: want kind:n[:interval]", part)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 || !knownKind(f[0]) {
			return nil, fmt.Errorf("group %q: want a kind (%s) and a positive count", part, strings.Join(Kinds, ", "))
		}
		g := Group{Kind: f[0], N: n}
		if len(f) == 3 {
			if g.Interval, err = time.ParseDuration(f[2]); err != nil || g.Interval <= 0 {
				return nil, fmt.Errorf("group %q: bad interval", part)
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// Kinds are the check kinds the harness has backends for. http, tcp and
// dialogue backends listen on TCP; udp and sip ones on UDP; icmp (ping
// sockets) and icmp-raw (raw sockets) need none, the kernel answers echo
// requests to any 127/8 address; exec (running /bin/true) and none touch
// no backend.
// The protocol kinds of kinds.go follow.
var Kinds = append([]string{"http", "tcp", "dialogue", "udp", "sip", "icmp", "icmp-raw", "exec", "none"}, protocolKinds...)

func knownKind(k string) bool { return slices.Contains(Kinds, k) }

// noBackend says the kind's checks reach no backend the harness runs.
func noBackend(k string) bool { return strings.HasPrefix(k, "icmp") || k == "exec" || k == "none" }

// overUDP says the kind's backends listen on UDP.
func overUDP(k string) bool { return k == "udp" || k == "sip" }

// FormatGroups is the inverse of ParseGroups.
func FormatGroups(gs []Group) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = fmt.Sprintf("%s:%d:%s", g.Kind, g.N, g.Interval)
	}
	return strings.Join(parts, ",")
}

// Backends are listeners that answer checks and count them.
type Backends struct {
	addrs []netip.AddrPort
	lns   []net.Listener
	pcs   []net.PacketConn // UDP backends; Kill does not reach them
	stops []func()         // servers and daemons of the protocol kinds (kinds.go)

	daemons map[string]*daemon // by kind, started on first use
	count   atomic.Uint64
	wg      sync.WaitGroup

	mu     sync.Mutex
	killed int
}

var httpOK = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")

// StartBackends listens on one loopback address per real server, groups
// one after the other, from the first-th address on. http backends read a
// request head and answer 200 "ok"; tcp backends accept and close;
// dialogue backends answer each "PING" line with "+PONG" (as Redis does);
// udp backends answer each datagram with "pong"; sip backends answer each
// OPTIONS request with 200 OK. Each counts every connection or datagram.
func StartBackends(groups []Group, first, port int) (*Backends, error) {
	b := &Backends{}
	i := first
	for _, g := range groups {
		if !knownKind(g.Kind) {
			b.Close()
			return nil, fmt.Errorf("backend kind %q: want one of %s", g.Kind, strings.Join(Kinds, ", "))
		}
		if noBackend(g.Kind) {
			i += g.N // nothing to listen on, and nothing to count on this side
			continue
		}
		for range g.N {
			a := backendAddr(i, port)
			i++
			kind := g.Kind
			if protocolKind(kind) {
				if err := b.startProtocol(kind, a); err != nil {
					b.Close()
					return nil, fmt.Errorf("backend %d (%s) on %s: %w", i, kind, a, err)
				}
				continue
			}
			if overUDP(kind) {
				pc, err := net.ListenPacket("udp", a.String())
				if err != nil {
					b.Close()
					return nil, fmt.Errorf("backend %d on %s/udp: %w (raise the open-files limit, ulimit -n, for large N)", i, a, err)
				}
				b.pcs = append(b.pcs, pc)
				b.wg.Go(func() { b.serveUDP(pc, kind) })
				continue
			}
			ln, err := net.Listen("tcp", a.String())
			if err != nil {
				b.Close()
				return nil, fmt.Errorf("backend %d on %s: %w (raise the open-files limit, ulimit -n, for large N)", i, a, err)
			}
			b.addrs = append(b.addrs, a)
			b.lns = append(b.lns, ln)
			b.wg.Go(func() { b.serve(ln, kind) })
		}
	}
	return b, nil
}

func (b *Backends) serve(ln net.Listener, kind string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.count.Add(1)
		switch kind {
		case "tcp":
			c.Close()
		case "dialogue":
			go answerPing(c)
		default:
			go answerHTTP(c)
		}
	}
}

// answerPing answers each PING line with +PONG until the client hangs up.
func answerPing(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(c, 256)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, []byte("PING")) {
			c.Write(pong)
		}
	}
}

var pong = []byte("+PONG\r\n")

// serveUDP answers datagrams until the socket is closed: "pong" for udp,
// 200 OK to a SIP request for sip.
func (b *Backends) serveUDP(pc net.PacketConn, kind string) {
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		b.count.Add(1)
		if kind == "udp" {
			pc.WriteTo([]byte("pong"), from)
			continue
		}
		if msg, err := sip.ParseMessage(buf[:n]); err == nil {
			if req, ok := msg.(*sip.Request); ok {
				pc.WriteTo([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()), from)
			}
		}
	}
}

func answerHTTP(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(c, 1024)
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) && !bytes.HasSuffix(head, []byte("\n\n")) {
		line, err := r.ReadSlice('\n')
		if err != nil || len(head) > 8<<10 {
			return
		}
		head = append(head, line...)
	}
	c.Write(httpOK)
}

// Addrs returns the backends' addresses.
func (b *Backends) Addrs() []netip.AddrPort { return b.addrs }

// Count is the number of connections accepted so far.
func (b *Backends) Count() uint64 { return b.count.Load() }

// Kill closes the listeners of the next k live backends at one instant, so
// that their checks are refused from then on, and returns when that was.
func (b *Backends) Kill(k int) (time.Time, []netip.AddrPort) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k = min(k, len(b.lns)-b.killed)
	victims := b.lns[b.killed : b.killed+k]
	at := time.Now()
	for _, ln := range victims {
		ln.Close()
	}
	addrs := b.addrs[b.killed : b.killed+k]
	b.killed += k
	return at, addrs
}

// Close stops every backend and waits for the accept loops.
func (b *Backends) Close() {
	for _, ln := range b.lns {
		ln.Close()
	}
	for _, pc := range b.pcs {
		pc.Close()
	}
	for _, stop := range b.stops {
		stop()
	}
	b.wg.Wait()
}

// Wait blocks until ctx ends, then closes the backends.
func (b *Backends) Wait(ctx context.Context) {
	<-ctx.Done()
	b.Close()
}
