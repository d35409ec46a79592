package checks

import (
	"context"
	"crypto/tls"
	"io"
	"regexp"
	"time"
)

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
	spec   Spec
	expect *regexp.Regexp
	tls    *tls.Config // nil without TLS
}

func newTCP(spec Spec) (*tcpProber, error) {
	p := &tcpProber{spec: spec}
	var err error
	if p.expect, err = compileRegexp(spec, "expect", spec.Expect); err != nil {
		return nil, err
	}
	if spec.TLS {
		if p.tls, err = tlsConfig(spec); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Probe connects, runs the dialogue and closes the connection, all within
// the deadline.
func (p *tcpProber) Probe(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := withDeadline(ctx, p.spec.Timeout)
	defer cancel()
	return result(start, p.probe(ctx))
}

func (p *tcpProber) probe(ctx context.Context) string {
	conn, err := dial(ctx, &p.spec, p.tls)
	if err != nil {
		return classify(ctx, err)
	}
	defer conn.Close()
	if p.spec.Send == "" && p.expect == nil {
		return ""
	}

	// Reads and writes obey the deadline, and an earlier cancellation
	// unblocks them too.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if p.spec.Send != "" {
		if _, err := io.WriteString(conn, p.spec.Send); err != nil {
			return classify(ctx, err)
		}
	}
	if p.expect == nil {
		return ""
	}
	matched, n, err := readMatch(conn, p.expect, tcpReadCap)
	switch {
	case matched:
		return ""
	case n > 0 || err == errReadCap:
		return "expect mismatch"
	}
	return classify(ctx, err)
}
