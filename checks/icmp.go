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
	// Privileged uses a raw socket instead of an unprivileged ping socket.
	Privileged bool
}

var icmpKind = Kind{
	Name: "icmp", Foreign: map[string]string{"ping": "ldirectord's ping"},
	Keys: []Key{{Name: "privileged"}}, NoPort: true, Zero: ICMPOptions{},
	Decode: func(d Decoder) Options {
		var o ICMPOptions
		o.Privileged, _ = d.Bool("privileged")
		return o
	},
	build: newICMP,
}

// Validate has nothing to judge: every value is usable.
func (o ICMPOptions) Validate() []OptionError { return nil }

// Canonical renders the one option.
func (o ICMPOptions) Canonical() string {
	var c canonical
	c.boolean("privileged", o.Privileged)
	return c.text()
}

// Describe is "icmp 10.0.0.11".
func (o ICMPOptions) Describe(s Spec) string { return "icmp " + s.Target.Addr().String() }

// icmpProber sends ICMP (or ICMPv6) echo requests to the target address.
// By default it uses an unprivileged ping socket (SOCK_DGRAM, allowed by
// net.ipv4.ping_group_range); Privileged uses a raw socket (CAP_NET_RAW),
// which costs more when many checks run at once.
type icmpProber struct {
	spec       Spec
	privileged bool
	ip         net.IPAddr
	src        string
}

// newICMP builds the prober of a spec whose options passed Validate.
func newICMP(spec Spec, _ *Shared) (Prober, error) {
	addr := spec.Target.Addr().Unmap()
	p := &icmpProber{spec: spec, privileged: spec.Options.(ICMPOptions).Privileged,
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
	dl, _ := ctx.Deadline() // withDeadline always sets one
	remaining := time.Until(dl)
	if remaining <= 0 {
		return "timeout"
	}

	pinger := probing.New("")
	ip := p.ip // the pinger keeps the pointer
	pinger.SetIPAddr(&ip)
	pinger.SetPrivileged(p.privileged)
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
		return ""
	}
	if err != nil {
		if reason := icmpPermission(err, p.privileged); reason != "" {
			return reason
		}
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			return classify(ctx, err)
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != context.DeadlineExceeded {
			return "canceled"
		}
	}
	return "timeout"
}

// icmpPermission explains a socket the kernel refused to open.
func icmpPermission(err error, privileged bool) string {
	if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) {
		return ""
	}
	if privileged {
		return "icmp: raw socket not permitted (needs root or CAP_NET_RAW)"
	}
	gid := os.Getegid()
	rng := "?"
	if b, err := os.ReadFile(pingGroupRangeFile); err == nil {
		rng = strings.Join(strings.Fields(string(b)), " ")
	}
	return fmt.Sprintf("icmp: unprivileged ping not permitted (net.ipv4.ping_group_range = %s excludes gid %d); widen it or set privileged = true", rng, gid)
}
