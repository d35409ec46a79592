package checks

import (
	"context"
	"crypto/tls"
	"io"
	"regexp"
	"slices"
)

// TCPOptions are the options of tcp checks: a connection, optionally in
// TLS, and an optional one-step dialogue.
type TCPOptions struct {
	// Send is written after connect (and after the TLS handshake). Expect
	// is a regular expression the data read afterwards must match; with
	// Send empty it is matched against the server's greeting (banner).
	// Both are literal: no escape processing beyond what the config format
	// does.
	Send   string
	Expect string
	TLS    bool // complete a TLS handshake first
	TLSOptions
}

// tcpReadCap is how much a tcp dialogue reads while waiting for Expect.
const tcpReadCap = 4 << 10

var tcpKind = Kind{
	Name:     "tcp",
	Foreign:  map[string]string{"connect": "ldirectord's connect", "tcp_check": "keepalived's TCP_CHECK"},
	Keys:     slices.Concat([]Key{{Name: "send"}, {Name: "expect"}}, switchedTLSKeys()),
	Zero:     TCPOptions{},
	Decode:   decodeTCP,
	build:    newTCP,
	DataPath: true,
}

func decodeTCP(d Decoder) Options {
	var o TCPOptions
	o.Send, _ = d.String("send")
	o.Expect, _ = d.String("expect")
	o.TLS, o.TLSOptions = decodeSwitchedTLS(d)
	return o
}

// Validate checks that expect is a regular expression.
func (o TCPOptions) Validate() []OptionError {
	if msg := regexpProblem(o.Expect); msg != "" {
		return []OptionError{{Key: "expect", Msg: msg}}
	}
	return nil
}

// Canonical renders every option.
func (o TCPOptions) Canonical() string {
	var c canonical
	c.str("send", o.Send)
	c.str("expect", o.Expect)
	c.boolean("tls", o.TLS)
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is "tcp 10.0.0.11:8080", or "tcp+tls 10.0.0.11:8080".
func (o TCPOptions) Describe(s Spec) string {
	if o.TLS {
		return "tcp+tls " + s.Target.String()
	}
	return "tcp " + s.Target.String()
}

// tcpProber checks that a TCP port accepts connections, optionally
// completing a TLS handshake and a one-step dialogue:
//
//   - Send and Expect empty: connecting (and the handshake) is the check.
//   - Expect only: the server's greeting (SMTP, FTP, POP3, IMAP banners)
//     must match Expect.
//   - Send, optionally Expect: Send is written, then the answer must match
//     Expect when it is set.
//
// The answer is read until Expect matches, up to 4 KiB. When no match
// comes, the reason is "expect mismatch" if anything at all was read, and
// otherwise the reason the read stopped: "timeout" for a silent server,
// "error: connection closed" for one that hung up, "reset", ...
type tcpProber struct {
	spec *Spec
	// dialogue is nil for a plain connect, the usual check: out of line,
	// a prober is 80 bytes, not 112 (docs/performance.md, "Memory,
	// second pass: checks").
	dialogue *tcpDialogue
	fast     fastSpec // how a FastLoop runs it; unset (fastOf): only Probe
}

// tcpDialogue is what a TCP check does beyond connecting.
type tcpDialogue struct {
	send   string
	expect *regexp.Regexp
	tls    *tls.Config // nil without TLS
}

// newTCP builds the prober of a spec whose options passed Validate.
func newTCP(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(TCPOptions)
	p := &tcpProber{spec: spec}
	if !o.TLS && o.Send == "" && o.Expect == "" {
		p.fast.init(p.spec)
		return p, nil
	}
	d := &tcpDialogue{send: o.Send}
	if o.Expect != "" {
		d.expect = regexp.MustCompile(o.Expect) // Validate compiled it
	}
	if o.TLS {
		var err error
		if d.tls, err = tlsConfig(spec, o.TLSOptions, ""); err != nil {
			return nil, err
		}
	}
	p.dialogue = d
	return p, nil
}

// Probe connects, runs the dialogue and closes the connection, all within
// the deadline.
func (p *tcpProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *tcpProber) probe(ctx context.Context) string {
	var d tcpDialogue // zero: a plain connect
	if p.dialogue != nil {
		d = *p.dialogue
	}
	conn, err := dial(ctx, p.spec, d.tls)
	if err != nil {
		if lateConnect(err) && p.dialogue == nil {
			// The connection was made and connecting is the whole
			// check: it passes, as on the fast loop (late.go).
			return ""
		}
		return classify(ctx, err)
	}
	defer conn.Close()
	if d.send == "" && d.expect == nil {
		return ""
	}

	defer deadlineConn(ctx, conn)()

	if d.send != "" {
		if _, err := io.WriteString(conn, d.send); err != nil {
			return classify(ctx, err)
		}
	}
	if d.expect == nil {
		return ""
	}
	read, matched, err := expectIn(conn, d.expect, nil, tcpReadCap)
	switch {
	case matched:
		return ""
	case len(read) > 0 || err == errReadCap:
		return "expect mismatch"
	}
	return classify(ctx, err)
}
