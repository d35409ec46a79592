package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lvsdirector/director/datapath"
)

// dial connects to spec.Target from spec.Source and, when conf is not nil,
// completes a TLS handshake. Both steps are bounded by ctx. Handshake
// failures come back as *tlsError so that classify can tell them apart.
func dial(ctx context.Context, spec *Spec, conf *tls.Config) (net.Conn, error) {
	conn, err := dialNetwork(ctx, spec, "tcp")
	if err != nil {
		return nil, err
	}
	conn = lookAtDeadline(conn) // late.go
	if conf == nil {
		return conn, nil
	}
	tc, err := handshake(ctx, conn, conf) // looks once when starved (late.go)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// dialNetwork connects to spec.Target over network ("tcp" or "udp") from
// spec.Source, bounded by ctx. A UDP socket is connected, so an ICMP port
// unreachable comes back as ECONNREFUSED on the next read.
func dialNetwork(ctx context.Context, spec *Spec, network string) (net.Conn, error) {
	if r, ok := spec.DataPathRoute(); ok {
		return dialDataPath(ctx, spec, network, r)
	}
	d := net.Dialer{KeepAlive: -1}
	if src := spec.Source; src.IsValid() {
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: src.AsSlice(), Zone: src.Zone()}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice(), Zone: src.Zone()}
		}
	}
	if network == "tcp" {
		return dialTCP(ctx, &d, spec.Target.String()) // looks once after a timeout (late.go)
	}
	return d.DialContext(ctx, network, spec.Target.String())
}

// dialDataPath connects to the VIP through the real server's data path.
// A connection that times out is a real server that does not answer for
// the VIP (classify says "datapath: no answer for VIP"); a data path the
// director could not set up says nothing of the server.
func dialDataPath(ctx context.Context, spec *Spec, network string, r datapath.Route) (net.Conn, error) {
	dialer := spec.dataPathDialer()
	if dialer == nil {
		return nil, &datapath.SetupError{Err: errors.New("datapath: no probe namespaces (only a running director builds them)")}
	}
	conn, err := dialer.Dial(ctx, network, r, spec.Target.Port())
	var setup *datapath.SetupError
	var nerr net.Error
	switch {
	case err == nil, errors.As(err, &setup), errors.Is(ctx.Err(), context.Canceled):
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded),
		errors.As(err, &nerr) && nerr.Timeout():
		return nil, &noAnswerError{err}
	}
	return conn, err
}

// noAnswerError is a data-path connection that timed out.
type noAnswerError struct{ err error }

func (e *noAnswerError) Error() string { return "datapath: no answer for VIP: " + e.err.Error() }
func (e *noAnswerError) Unwrap() error { return e.err }

// reasonNoAnswer is the reason of a data-path check whose real server
// does not answer for the VIP (typically: the VIP is not on its lo).
const reasonNoAnswer = "datapath: no answer for VIP"

// deadlineConn makes conn's reads and writes obey ctx: its deadline, and
// an earlier cancellation. Call the returned function when done.
func deadlineConn(ctx context.Context, conn net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// tlsError marks an error of the TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// localErrors are the director's own resources running out: a probe that
// fails with one says nothing about the server (Result.Inconclusive).
var localErrors = []struct {
	errno  syscall.Errno
	reason string
}{
	{syscall.EMFILE, localPrefix + "too many open files"},
	{syscall.ENFILE, localPrefix + "too many open files in the system"},
	{syscall.ENOBUFS, localPrefix + "no buffer space"},
	{syscall.ENOMEM, localPrefix + "out of memory"},
}

// classify turns the error of a failed probe into a short, stable reason.
// Once ctx's deadline has passed every error is a "timeout": whatever broke
// broke because time ran out, unless the director's own resources ran out.
func classify(ctx context.Context, err error) string {
	dl, _ := ctx.Deadline()
	return classifyAt(err, ctx.Err(), dl)
}

// classifyAt is classify for a probe whose context ended with ctxErr (nil
// while it has not) and has deadline (zero for none): the loop's runs
// (fast.go) have no context of their own.
func classifyAt(err, ctxErr error, deadline time.Time) string {
	if err == nil {
		return ""
	}
	for _, l := range localErrors {
		if errors.Is(err, l.errno) {
			return l.reason
		}
	}
	var noAnswer *noAnswerError
	var setup *datapath.SetupError
	switch {
	case errors.As(err, &setup):
		return localPrefix + clip(setup.Err.Error())
	case errors.As(err, &noAnswer):
		return reasonNoAnswer
	}
	var late *lateError
	if errors.As(err, &late) && !errors.Is(ctxErr, context.Canceled) {
		return reasonStarved
	}
	// A TLS handshake failed on what the server sent (its certificate,
	// an alert, bytes that are not TLS), which a starved handshake reads
	// at its deadline (late.go): the server's answer, not the time.
	if reason, ok := handshakeReason(err); ok && !errors.Is(ctxErr, context.Canceled) {
		return reason
	}
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return "timeout"
	}
	// A cancellation ends blocked reads by moving the connection's
	// deadline (deadlineConn), so the error itself says "timeout".
	if errors.Is(ctxErr, context.Canceled) {
		return "canceled"
	}
	// The connection's deadline is the context's, and it can fire a moment
	// before the context's own timer: a read cut short by it may surface
	// as another error (net/http parses a status line cut at the deadline
	// as malformed) while ctx.Err is still nil.
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return "timeout"
	}
	var nerr net.Error
	var terr *tlsError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return "unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &terr):
		return tlsReason(terr.err)
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "error: connection closed"
	}
	return "error: " + shortError(err)
}

// tlsReason describes a handshake failure as "tls: <short cause>".
func tlsReason(err error) string {
	var (
		hostErr    x509.HostnameError
		authErr    x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		headerErr  tls.RecordHeaderError
		opErr      *net.OpError
	)
	switch {
	case errors.As(err, &authErr):
		return "tls: certificate signed by unknown authority"
	case errors.As(err, &hostErr):
		return "tls: " + clip(strings.TrimPrefix(hostErr.Error(), "x509: "))
	case errors.As(err, &invalidErr):
		switch invalidErr.Reason {
		case x509.Expired:
			if invalidErr.Cert != nil && time.Now().Before(invalidErr.Cert.NotBefore) {
				return "tls: certificate not yet valid"
			}
			return "tls: certificate expired"
		case x509.NotAuthorizedToSign:
			return "tls: certificate not authorized to sign other certificates"
		case x509.IncompatibleUsage:
			return "tls: certificate not valid for server authentication"
		}
		return "tls: invalid certificate"
	case errors.As(err, &headerErr):
		return "tls: server did not answer with TLS"
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return "tls: remote error: " + strings.TrimPrefix(opErr.Err.Error(), "tls: ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "tls: connection closed during handshake"
	}
	return tlsMessage(shortError(err))
}

// tlsMessage makes a handshake failure's text a reason: "tls: " and the
// cause without the prefixes that repeat it. It is all there is of a
// failure a library reports only as text (ldap's StartTLS).
func tlsMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "tls: ")
	msg = strings.TrimPrefix(msg, "failed to verify certificate: ")
	msg = strings.TrimPrefix(msg, "x509: ")
	return "tls: " + msg
}

// shortError strips the wrappers that repeat what the check already says
// (the URL, "dial tcp a->b") and clips the rest.
func shortError(err error) string {
	for {
		var uerr *url.Error
		var oerr *net.OpError
		switch {
		case errors.As(err, &uerr) && uerr.Err != nil:
			err = uerr.Err
			continue
		case errors.As(err, &oerr) && oerr.Err != nil:
			err = oerr.Err
			continue
		}
		break
	}
	return clip(err.Error())
}

// clip keeps reasons to one short line.
func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 120
	if len(s) > max {
		// Cut on a rune boundary.
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// regexpProblem says what is wrong with an expect or expect_body regular
// expression, "" when nothing is.
func regexpProblem(expr string) string {
	if _, err := regexp.Compile(expr); err != nil {
		return fmt.Sprintf("invalid regular expression: %v", err)
	}
	return ""
}

// errReadCap means expectIn read up to its limit without a match.
var errReadCap = errors.New("read limit reached")

// expectIn reads from r onto pending until re matches it, r fails or
// pending holds limit bytes. On a match it returns what follows the match
// (data for whatever is read next) and true. Otherwise it returns
// everything read, false, and the error that stopped it (errReadCap at the
// limit). The regular expression sees only the data received so far, so
// `$` matches the end of what has arrived, not of the stream.
func expectIn(r io.Reader, re *regexp.Regexp, pending []byte, limit int) ([]byte, bool, error) {
	var err error
	for {
		if loc := re.FindIndex(pending); loc != nil {
			return pending[:copy(pending, pending[loc[1]:])], true, nil
		}
		if err != nil {
			return pending, false, err
		}
		if len(pending) >= limit {
			return pending, false, errReadCap
		}
		if len(pending) == cap(pending) {
			pending = slices.Grow(pending, min(limit, max(512, 2*cap(pending)))-len(pending))
		}
		var n int
		n, err = r.Read(pending[len(pending):min(cap(pending), limit)])
		pending = pending[:len(pending)+n]
	}
}
