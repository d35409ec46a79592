package checks

import (
	"context"
	"errors"
	"os"
	"regexp"
	"time"
)

// UDPOptions are the options of udp checks: one datagram out, one back.
type UDPOptions struct {
	// Send is the datagram sent, with escapes (\r \n \t \0 \\ \xNN, see
	// unescape); empty sends an empty datagram.
	Send string
	// Expect is a regular expression the reply must match; empty accepts
	// any reply.
	Expect string
}

// udpSends is how many times a probe sends its datagram, spread over the
// timeout, while no reply has come: one lost datagram is not a failed
// check.
const udpSends = 3

// udpReadCap is how much of a reply is read and matched; the rest of a
// longer datagram is dropped.
const udpReadCap = 4 << 10

var udpKind = Kind{
	Name:    "udp",
	Foreign: map[string]string{"udp_check": "keepalived's UDP_CHECK"},
	Keys:    []Key{{Name: "send"}, {Name: "expect"}},
	Zero:    UDPOptions{},
	Decode: func(d Decoder) Options {
		var o UDPOptions
		o.Send, _ = d.String("send")
		o.Expect, _ = d.String("expect")
		return o
	},
	build: newUDP,
}

// Validate checks send's escapes and that expect is a regular expression.
func (o UDPOptions) Validate() []OptionError {
	var errs []OptionError
	if msg := escapeProblem(o.Send); msg != "" {
		errs = append(errs, OptionError{Key: "send", Msg: msg})
	}
	if msg := regexpProblem(o.Expect); msg != "" {
		errs = append(errs, OptionError{Key: "expect", Msg: msg})
	}
	return errs
}

// Canonical renders send as the bytes it sends, so that "\x41" and "A"
// are the same check.
func (o UDPOptions) Canonical() string {
	var c canonical
	c.str("send", sentBytes(o.Send))
	c.str("expect", o.Expect)
	return c.text()
}

// Describe is "udp 10.0.0.11:53".
func (o UDPOptions) Describe(s Spec) string { return "udp " + s.Target.String() }

// udpProber sends a datagram from a connected socket and waits for the
// answer. Connecting matters twice: the kernel drops datagrams from any
// other address, and an ICMP port unreachable for the target surfaces as
// ECONNREFUSED on the socket ("refused"). A server that answers from
// another address than the one checked is therefore never heard
// ("timeout").
type udpProber struct {
	spec   *Spec
	send   []byte
	expect *regexp.Regexp // nil accepts any reply
}

func newUDP(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(UDPOptions)
	send, _ := unescape(o.Send) // Validate checked it
	p := &udpProber{spec: spec, send: []byte(send)}
	if o.Expect != "" {
		p.expect = regexp.MustCompile(o.Expect)
	}
	return p, nil
}

// Probe sends the datagram up to udpSends times and judges the first
// reply: a match is up, anything else "expect mismatch".
func (p *udpProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *udpProber) probe(ctx context.Context) string {
	conn, err := dialNetwork(ctx, p.spec, "udp")
	if err != nil {
		return classify(ctx, err)
	}
	defer conn.Close()
	defer deadlineConn(ctx, conn)()
	dl, _ := ctx.Deadline() // run always sets one

	buf := make([]byte, udpReadCap)
	every := time.Until(dl) / udpSends
	for i := 1; ; i++ {
		if _, err := conn.Write(p.send); err != nil {
			return classify(ctx, err)
		}
		if i < udpSends {
			next := time.Now().Add(every)
			if next.After(dl) {
				next = dl
			}
			conn.SetReadDeadline(next)
			// The context may have ended before that deadline replaced
			// the one its AfterFunc set.
			if ctx.Err() != nil {
				return classify(ctx, ctx.Err())
			}
		} else {
			conn.SetReadDeadline(dl)
		}
		n, err := conn.Read(buf)
		switch {
		case err == nil:
			if p.expect == nil || p.expect.Match(buf[:n]) {
				return ""
			}
			return "expect mismatch"
		case i < udpSends && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
			continue // silence so far: send again
		}
		return classify(ctx, err)
	}
}
