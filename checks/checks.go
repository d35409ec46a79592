// Package checks holds the probers that test a real server's health. Each
// prober checks one target with one spec and returns a Result; reporting and
// scheduling are the caller's job.
package checks

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Reason says why a probe failed, short and stable: "timeout",
	// "refused", "unreachable", "reset", "dns", "canceled", "status 503",
	// "body mismatch", "expect mismatch", "tls: <cause>" (e.g. "tls:
	// certificate signed by unknown authority", "tls: certificate
	// expired"), "icmp: <permission problem>", "error: <short>" for the
	// rest. Empty when OK.
	Reason   string
	Start    time.Time
	Duration time.Duration
}

// Prober runs one kind of check against one target. Probe must return by
// the context's deadline and close everything it opened.
type Prober interface {
	Probe(ctx context.Context) Result
}

// Spec is everything that defines one check of one target. Two equal specs
// are the same check: the scheduler runs it once and shares the result.
type Spec struct {
	Type     string         // "http", "https", "tcp", "icmp"
	Target   netip.AddrPort // address (and port, unused by icmp) to check
	Source   netip.Addr     // optional local address to send from
	Timeout  time.Duration  // bound on the whole check; callers also put it on the context
	Interval time.Duration  // how often the scheduler runs it (part of the identity)

	// http and https
	Method       string   // GET (default) or HEAD
	Path         string   // default "/"
	Host         string   // Host header, and TLS server name unless ServerName is set
	Headers      []Header // extra request headers, in order
	ExpectStatus []string // codes and ranges, "200", "200-299"; default 200-299
	ExpectBody   string   // regular expression over the first MaxBodyBytes of the body
	MaxBodyBytes int64    // default 64 KiB

	// TLS: https always; tcp when TLS is true
	TLS           bool
	TLSSkipVerify bool
	CAFile        string
	ServerName    string

	// tcp dialogue
	// Send is written after connect (and after the TLS handshake). Expect is a
	// regular expression the data read afterwards must match; with Send
	// empty it is matched against the server's greeting (banner). Both are
	// literal: no escape processing beyond what the config format does.
	Send   string
	Expect string

	// icmp
	Privileged bool // raw socket instead of an unprivileged ping socket
}

// Header is one extra HTTP request header.
type Header struct{ Name, Value string }

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// ParseStatusRanges parses expect_status entries: "200", "200-299".
func ParseStatusRanges(list []string) ([]StatusRange, error) {
	if len(list) == 0 {
		return []StatusRange{{200, 299}}, nil
	}
	out := make([]StatusRange, 0, len(list))
	for _, s := range list {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
		min, err1 := strconv.Atoi(strings.TrimSpace(lo))
		max := min
		var err2 error
		if isRange {
			max, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || min < 100 || max > 599 || min > max {
			return nil, fmt.Errorf("invalid status %q: want a code 100-599 or a range like \"200-299\"", s)
		}
		out = append(out, StatusRange{min, max})
	}
	return out, nil
}

// Defaults applied by New when a Spec leaves the field at its zero value.
const (
	// DefaultTimeout bounds a probe when neither Spec.Timeout nor the
	// context passed to Probe carries a deadline.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxBodyBytes is how much of an HTTP body expect_body sees.
	DefaultMaxBodyBytes int64 = 64 << 10
	// UserAgent is sent by the http and https probers unless the spec's
	// headers set their own.
	UserAgent = "director-healthcheck"
	// tcpReadCap is how much a tcp dialogue reads while waiting for Expect.
	tcpReadCap = 4 << 10
)

// New validates spec and returns the prober for spec.Type. Errors name the
// offending option, using the configuration file's spelling.
func New(spec Spec) (Prober, error) {
	if err := validateCommon(spec); err != nil {
		return nil, err
	}
	switch spec.Type {
	case "http", "https":
		return newHTTP(spec)
	case "tcp":
		return newTCP(spec)
	case "icmp":
		return newICMP(spec)
	}
	panic("unreachable: validateCommon accepted type " + spec.Type)
}

func validateCommon(spec Spec) error {
	switch spec.Type {
	case "http", "https", "tcp", "icmp":
	case "":
		return fmt.Errorf("type: missing check type (want http, https, tcp or icmp)")
	default:
		return fmt.Errorf("type: unknown check type %q (want http, https, tcp or icmp)", spec.Type)
	}
	if !spec.Target.Addr().IsValid() {
		return fmt.Errorf("%s check: missing target address", spec.Type)
	}
	if spec.Type != "icmp" && spec.Target.Port() == 0 {
		return fmt.Errorf("%s check of %s: target needs a port", spec.Type, spec.Target.Addr())
	}
	if spec.Target.Addr().IsUnspecified() {
		return fmt.Errorf("%s check: target %s is the unspecified address", spec.Type, spec.Target.Addr())
	}
	if a := spec.Target.Addr().Unmap(); a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%s check: target %s is a multicast or broadcast address", spec.Type, a)
	}
	if spec.Source.IsValid() && spec.Source.Unmap().Is4() != spec.Target.Addr().Unmap().Is4() {
		return fmt.Errorf("%s: source %s and target %s are different address families", spec, spec.Source, spec.Target.Addr())
	}
	if spec.Timeout < 0 {
		return fmt.Errorf("%s: timeout %s is negative", spec, spec.Timeout)
	}
	if spec.Interval < 0 {
		return fmt.Errorf("%s: interval %s is negative", spec, spec.Interval)
	}
	return nil
}

// compileRegexp compiles an expect_body or expect option.
func compileRegexp(spec Spec, option, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: invalid regular expression %q: %v", spec, option, expr, err)
	}
	return re, nil
}

// tlsConfig builds the client TLS configuration of a spec: certificates are
// verified against the system roots, or against CAFile's certificates when
// it is set, unless TLSSkipVerify. The server name is ServerName, else the
// host part of Host, else the target address.
func tlsConfig(spec Spec) (*tls.Config, error) {
	conf := &tls.Config{
		InsecureSkipVerify: spec.TLSSkipVerify, //nolint:gosec // the operator's explicit choice
		ServerName:         tlsServerName(spec),
	}
	if spec.CAFile != "" {
		pem, err := os.ReadFile(spec.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: ca_file: %v", spec, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: ca_file %s: no PEM certificates found", spec, spec.CAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

func tlsServerName(spec Spec) string {
	if spec.ServerName != "" {
		return spec.ServerName
	}
	if spec.Host != "" {
		if h, _, err := net.SplitHostPort(spec.Host); err == nil {
			return h
		}
		return strings.TrimSuffix(strings.TrimPrefix(spec.Host, "["), "]")
	}
	return spec.Target.Addr().WithZone("").Unmap().String()
}

// Key is a stable identity over every field of the spec: equal specs give
// equal keys and specs differing in any field give different keys. A nil
// and an empty list count as equal. Use it to share one prober between
// identical checks and to carry a check's state across reloads.
//
// It is a SHA-256 digest (16 bytes, as a string) of the spec's canonical
// text: the director holds one per check and uses it as a map key, and
// with tens of thousands of checks the text itself (hundreds of bytes
// each) was a measurable share of the heap.
func (s Spec) Key() string {
	sum := sha256.Sum256([]byte(s.canonical()))
	return string(sum[:16])
}

// canonical renders every field, quoted, in a fixed order.
func (s Spec) canonical() string {
	var b strings.Builder
	str := func(name, v string) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
		b.WriteByte(' ')
	}
	str("type", s.Type)
	str("target", s.Target.String())
	str("source", s.Source.String())
	str("timeout", s.Timeout.String())
	str("interval", s.Interval.String())
	str("method", s.Method)
	str("path", s.Path)
	str("host", s.Host)
	b.WriteString("headers=[")
	for _, h := range s.Headers {
		b.WriteString(strconv.Quote(h.Name))
		b.WriteByte(':')
		b.WriteString(strconv.Quote(h.Value))
		b.WriteByte(',')
	}
	b.WriteString("] expect_status=[")
	for _, st := range s.ExpectStatus {
		b.WriteString(strconv.Quote(st))
		b.WriteByte(',')
	}
	b.WriteString("] ")
	str("expect_body", s.ExpectBody)
	str("max_body_bytes", strconv.FormatInt(s.MaxBodyBytes, 10))
	str("tls", strconv.FormatBool(s.TLS))
	str("tls_skip_verify", strconv.FormatBool(s.TLSSkipVerify))
	str("ca_file", s.CAFile)
	str("server_name", s.ServerName)
	str("send", s.Send)
	str("expect", s.Expect)
	str("privileged", strconv.FormatBool(s.Privileged))
	return strings.TrimSuffix(b.String(), " ")
}

// String is a short human form of the check: "http://10.0.0.11:8080/healthz",
// "tcp 10.0.0.11:8080", "icmp 10.0.0.11".
func (s Spec) String() string {
	switch s.Type {
	case "http", "https":
		path := s.Path
		if path == "" {
			path = "/"
		}
		u := s.Type + "://" + s.Target.String() + path
		if strings.EqualFold(s.Method, "HEAD") {
			return "HEAD " + u
		}
		return u
	case "tcp":
		if s.TLS {
			return "tcp+tls " + s.Target.String()
		}
		return "tcp " + s.Target.String()
	case "icmp":
		return "icmp " + s.Target.Addr().String()
	}
	return s.Type + " " + s.Target.String()
}

// withDeadline bounds ctx by the spec's timeout, or by DefaultTimeout when
// neither carries a deadline, so that every probe ends.
func withDeadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	if _, ok := ctx.Deadline(); !ok {
		return context.WithTimeout(ctx, DefaultTimeout)
	}
	return context.WithCancel(ctx)
}

// result finishes a probe started at start.
func result(start time.Time, reason string) Result {
	return Result{OK: reason == "", Reason: reason, Start: start, Duration: time.Since(start)}
}
