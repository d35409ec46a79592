package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	probing "github.com/prometheus-community/pro-bing"
)

// icmpEchoes is how many echo requests a probe may send, spread over the
// timeout; the first reply ends the probe successfully.
const icmpEchoes = 3

// pingGroupRangeFile holds the groups allowed unprivileged ping sockets
// (for IPv4 and IPv6 alike).
const pingGroupRangeFile = "/proc/sys/net/ipv4/ping_group_range"

// ICMPOptions are the options of icmp checks.
type ICMPOptions struct {
	// Socket is what the privileged key says: which socket echo
	// requests go out on.
	Socket ICMPSocket
}

// ICMPSocket is the kind of socket icmp checks send from.
type ICMPSocket uint8

const (
	// ICMPSocketAuto (privileged unset) uses an unprivileged ping socket
	// and, when net.ipv4.ping_group_range refuses it and the process
	// holds CAP_NET_RAW, a raw socket, as ping(8) does.
	ICMPSocketAuto ICMPSocket = iota
	// ICMPSocketRaw (privileged = true) uses a raw socket only.
	ICMPSocketRaw
	// ICMPSocketPing (privileged = false) uses a ping socket only, and
	// fails with a hint when it is refused.
	ICMPSocketPing
)

// String is how Canonical renders the socket: "auto", "raw" or "ping".
func (s ICMPSocket) String() string {
	switch s {
	case ICMPSocketRaw:
		return "raw"
	case ICMPSocketPing:
		return "ping"
	}
	return "auto"
}

var icmpKind = Kind{
	Name: "icmp", Foreign: map[string]string{"ping": "ldirectord's ping"},
	Keys: []Key{{Name: "privileged"}}, NoPort: true, Zero: ICMPOptions{},
	Decode: func(d Decoder) Options {
		var o ICMPOptions
		switch privileged, ok := d.Bool("privileged"); {
		case !ok:
		case privileged:
			o.Socket = ICMPSocketRaw
		default:
			o.Socket = ICMPSocketPing
		}
		return o
	},
	build: newICMP,
}

// Validate judges the socket kind, which the config always sets right.
func (o ICMPOptions) Validate() []OptionError {
	if o.Socket > ICMPSocketPing {
		return []OptionError{{Key: "privileged", Msg: fmt.Sprintf("unknown socket kind %d", o.Socket)}}
	}
	return nil
}

// Canonical renders the one option.
func (o ICMPOptions) Canonical() string {
	var c canonical
	c.str("privileged", o.Socket.String())
	return c.text()
}

// Describe is "icmp 10.0.0.11".
func (o ICMPOptions) Describe(s Spec) string { return "icmp " + s.Target.Addr().String() }

// icmpProber sends ICMP (or ICMPv6) echo requests to the target address.
// By default it uses an unprivileged ping socket (SOCK_DGRAM, allowed by
// net.ipv4.ping_group_range), falling back to a raw socket (CAP_NET_RAW),
// which costs more when many checks run at once; see ICMPSocket.
type icmpProber struct {
	spec   *Spec
	socket ICMPSocket
	shared *Shared
	ip     net.IPAddr
	src    string
}

// newICMP builds the prober of a spec whose options passed Validate.
func newICMP(spec *Spec, shared *Shared) (Prober, error) {
	addr := spec.Target.Addr().Unmap()
	p := &icmpProber{spec: spec, socket: spec.Options.(ICMPOptions).Socket, shared: shared,
		ip: net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}}
	if spec.Source.IsValid() {
		p.src = spec.Source.Unmap().WithZone("").String()
	}
	return p, nil
}

// Probe sends up to three echo requests spread over the deadline and
// succeeds on the first reply. Its sockets and goroutines are gone when it
// returns.
func (p *icmpProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *icmpProber) probe(ctx context.Context) string {
	raw := p.socket == ICMPSocketRaw || (p.socket == ICMPSocketAuto && p.shared.icmpRaw.Load())
	reason, refused := p.ping(ctx, raw)
	if !refused {
		return reason
	}
	if p.socket != ICMPSocketAuto {
		return icmpPermission(p.socket, false)
	}
	if raw {
		// Raw sockets worked before and are refused now (capabilities
		// dropped?): say what both need.
		return icmpPermission(p.socket, true)
	}
	// The ping socket was refused: a raw one may be allowed, as ping(8)
	// finds. The first that is is the director's way from now on.
	reason, refused = p.ping(ctx, true)
	if refused {
		return icmpPermission(p.socket, true)
	}
	if p.shared.icmpRaw.CompareAndSwap(false, true) {
		rng, gid := pingGroupRange()
		p.shared.log.Warn("icmp checks use raw sockets: unprivileged ping sockets are refused",
			"ping_group_range", rng, "gid", gid,
			"hint", "raw sockets cost more with many icmp checks; widen net.ipv4.ping_group_range to include the gid (takes effect at restart), or set privileged = true to say raw is meant")
	}
	return reason
}

// ping sends the echo requests from a raw socket or a ping socket and
// returns the reason of a failure, or refused when the kernel did not
// allow the socket.
func (p *icmpProber) ping(ctx context.Context, raw bool) (reason string, refused bool) {
	dl, _ := ctx.Deadline() // withDeadline always sets one
	remaining := time.Until(dl)
	if remaining <= 0 {
		return "timeout", false
	}

	pinger := probing.New("")
	ip := p.ip // the pinger keeps the pointer
	pinger.SetIPAddr(&ip)
	pinger.SetPrivileged(raw)
	pinger.SetLogger(probing.NoopLogger{})
	pinger.Source = p.src
	pinger.Count = icmpEchoes
	pinger.Interval = max(remaining/icmpEchoes, time.Millisecond)
	pinger.Timeout = remaining
	pinger.RecordRtts = false
	pinger.RecordTTLs = false
	pinger.OnRecv = func(*probing.Packet) { pinger.Stop() }

	// RunWithContext waits for all its goroutines before returning.
	err := pinger.RunWithContext(ctx)
	if pinger.Statistics().PacketsRecv > 0 {
		return "", false
	}
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return "", true
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return classify(ctx, err), false
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != context.DeadlineExceeded {
			return "canceled", false
		}
	}
	return "timeout", false
}

// icmpPermission explains a socket the kernel refused to open: for socket
// kind s, and for the fallback to raw when both were refused.
func icmpPermission(s ICMPSocket, bothRefused bool) string {
	if s == ICMPSocketRaw {
		return "icmp: raw socket not permitted (needs root or CAP_NET_RAW)"
	}
	rng, gid := pingGroupRange()
	if bothRefused {
		return fmt.Sprintf("icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = %s excludes gid %d) and no CAP_NET_RAW for a raw socket; widen the range or grant CAP_NET_RAW", rng, gid)
	}
	return fmt.Sprintf("icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = %s excludes gid %d); widen it or set privileged = true", rng, gid)
}

// pingGroupRange is net.ipv4.ping_group_range as the kernel prints it
// ("?" when unreadable), and the group it is judged against.
func pingGroupRange() (string, int) {
	rng := "?"
	if b, err := os.ReadFile(pingGroupRangeFile); err == nil {
		rng = strings.Join(strings.Fields(string(b)), " ")
	}
	return rng, os.Getegid()
}
