package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	tgt = netip.MustParseAddrPort("10.0.0.11:8080")
)

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		spec Spec
		want string // substring of the error
	}{
		{"no type", Spec{Target: tgt}, "type: missing check type"},
		{"unknown type", Spec{Type: "smtp", Target: tgt}, `type: unknown check type "smtp"`},
		{"no target", Spec{Type: "http"}, "missing target"},
		{"no target icmp", Spec{Type: "icmp"}, "missing target"},
		{"no port", Spec{Type: "tcp", Target: netip.AddrPortFrom(tgt.Addr(), 0)}, "target needs a port"},
		{"unspecified", Spec{Type: "tcp", Target: netip.MustParseAddrPort("0.0.0.0:80")}, "unspecified"},
		{"multicast", Spec{Type: "icmp", Target: netip.MustParseAddrPort("224.0.0.1:0")}, "multicast or broadcast"},
		{"broadcast", Spec{Type: "icmp", Target: netip.MustParseAddrPort("255.255.255.255:0")}, "multicast or broadcast"},
		{"family", Spec{Type: "tcp", Target: tgt, Source: netip.MustParseAddr("::1")}, "different address families"},
		{"negative timeout", Spec{Type: "tcp", Target: tgt, Timeout: -1}, "timeout"},
		{"negative interval", Spec{Type: "tcp", Target: tgt, Interval: -1}, "interval"},
		{"method", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Method: "POST"}}, `method: unknown method "POST"; valid: GET, HEAD`},
		{"path", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Path: "healthz"}}, `path: "healthz" must start with "/"`},
		{"path space", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Path: "/a b"}}, "path:"},
		{"host", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Host: "a b"}}, "host:"},
		{"header name", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Headers: []Header{{"Bad Name", "x"}}}}, "headers:"},
		{"header value", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Headers: []Header{{"X-A", "a\r\nX-B: b"}}}}, "headers: header values must not contain line breaks"},
		{"header host", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Headers: []Header{{"host", "x"}}}}, "host option"},
		{"status", Spec{Type: "http", Target: tgt, Options: HTTPOptions{ExpectStatus: []string{"200-abc"}}}, "expect_status:"},
		{"status range", Spec{Type: "http", Target: tgt, Options: HTTPOptions{ExpectStatus: []string{"299-200"}}}, "expect_status:"},
		{"body regexp", Spec{Type: "http", Target: tgt, Options: HTTPOptions{ExpectBody: "("}}, "expect_body: invalid regular expression"},
		{"head body", Spec{Type: "http", Target: tgt, Options: HTTPOptions{Method: "HEAD", ExpectBody: "ok"}}, "expect_body: a HEAD response"},
		{"max body", Spec{Type: "http", Target: tgt, Options: HTTPOptions{MaxBodyBytes: -1}}, "max_body_bytes"},
		{"ca missing", Spec{Type: "https", Target: tgt, Options: HTTPOptions{TLSOptions: TLSOptions{CAFile: missing}}}, "ca_file: cannot read " + missing},
		{"ca not pem", Spec{Type: "https", Target: tgt, Options: HTTPOptions{TLSOptions: TLSOptions{CAFile: notPEM}}}, "no PEM certificates"},
		{"tcp ca", Spec{Type: "tcp", Target: tgt, Options: TCPOptions{TLS: true, TLSOptions: TLSOptions{CAFile: notPEM}}}, "ca_file"},
		{"tcp expect", Spec{Type: "tcp", Target: tgt, Options: TCPOptions{Expect: "[a-"}}, "expect: invalid regular expression"},
		{"options of another kind", Spec{Type: "tcp", Target: tgt, Options: HTTPOptions{}}, "options are checks.HTTPOptions, want checks.TCPOptions"},
		{"unknown type with options", Spec{Type: "smtp", Target: tgt, Options: TCPOptions{}}, `type: unknown check type "smtp" (want ` + orList(KindNames()) + ")"},
		{"udp send", Spec{Type: "udp", Target: tgt, Options: UDPOptions{Send: `\x0`}}, `send: \x at byte 0 needs two hex digits`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.spec)
			if err == nil {
				t.Fatalf("New accepted %+v: %T", tt.spec, p)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}

	// Options of other check types are not judged: a tcp check without TLS
	// ignores an unreadable ca_file.
	for _, spec := range []Spec{
		{Type: "http", Target: tgt},
		{Type: "https", Target: tgt, Options: HTTPOptions{Method: "head", Path: "/x?y=1", Host: "example.com:8443"}},
		{Type: "tcp", Target: tgt, Options: TCPOptions{TLSOptions: TLSOptions{CAFile: missing}}},
		{Type: "icmp", Target: netip.AddrPortFrom(tgt.Addr(), 0)},
		{Type: "icmp", Target: netip.MustParseAddrPort("[::1]:0"), Source: netip.MustParseAddr("::1")},
	} {
		if _, err := New(spec); err != nil {
			t.Errorf("New(%+v): %v", spec, err)
		}
	}
}

func TestString(t *testing.T) {
	six := netip.MustParseAddrPort("[2001:db8::1]:443")
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "http", Target: tgt, Options: HTTPOptions{Path: "/healthz"}}, "http://10.0.0.11:8080/healthz"},
		{Spec{Type: "http", Target: tgt}, "http://10.0.0.11:8080/"},
		{Spec{Type: "https", Target: six, Options: HTTPOptions{Method: "HEAD"}}, "HEAD https://[2001:db8::1]:443/"},
		{Spec{Type: "tcp", Target: tgt}, "tcp 10.0.0.11:8080"},
		{Spec{Type: "tcp", Target: tgt, Options: TCPOptions{TLS: true}}, "tcp+tls 10.0.0.11:8080"},
		{Spec{Type: "icmp", Target: tgt}, "icmp 10.0.0.11"},
		{Spec{Type: "icmp", Target: six}, "icmp 2001:db8::1"},
		{Spec{Type: "smtp", Target: tgt}, "smtp 10.0.0.11:8080"},
		{Spec{Type: "tcp", Target: tgt, Options: ICMPOptions{}}, "tcp 10.0.0.11:8080"},
	} {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	bg := context.Background()
	op := func(errno syscall.Errno) error {
		return &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: os.NewSyscallError("connect", errno)}}
	}
	expired, cancel := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel()
	canceled, cancel2 := context.WithCancel(bg)
	cancel2()
	// A context whose deadline has passed but whose timer has not fired
	// yet: the connection's deadline, the same instant, can beat it.
	lagging := laggingDeadline{bg, time.Now().Add(-time.Millisecond)}
	cert := &x509.Certificate{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	future := &x509.Certificate{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)}

	for _, tt := range []struct {
		ctx  context.Context
		err  error
		want string
	}{
		{bg, nil, ""},
		{bg, op(syscall.ECONNREFUSED), "refused"},
		{bg, op(syscall.EHOSTUNREACH), "unreachable"},
		{bg, op(syscall.ENETUNREACH), "unreachable"},
		{bg, op(syscall.ECONNRESET), "reset"},
		{bg, op(syscall.EPIPE), "reset"},
		{bg, op(syscall.EADDRNOTAVAIL), "error: connect: cannot assign requested address"},
		{expired, op(syscall.ECONNREFUSED), "timeout"},
		{bg, op(syscall.EMFILE), "local: too many open files"},
		{bg, op(syscall.ENFILE), "local: too many open files in the system"},
		{bg, op(syscall.ENOBUFS), "local: no buffer space"},
		{bg, op(syscall.ENOMEM), "local: out of memory"},
		{expired, op(syscall.EMFILE), "local: too many open files"},
		{bg, context.DeadlineExceeded, "timeout"},
		{lagging, errors.New(`malformed HTTP response "HTT"`), "timeout"},
		{bg, fmt.Errorf("read: %w", os.ErrDeadlineExceeded), "timeout"},
		{canceled, context.Canceled, "canceled"},
		{bg, &net.DNSError{Err: "no such host", Name: "x"}, "dns"},
		{bg, io.EOF, "error: connection closed"},
		{bg, errors.New("strange\nthing"), "error: strange thing"},
		{bg, errors.New(strings.Repeat("a", 500)), "error: " + strings.Repeat("a", 120) + "..."},
		{bg, &tlsError{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}},
			"tls: certificate signed by unknown authority"},
		{bg, &tlsError{&tls.CertificateVerificationError{Err: x509.HostnameError{
			Certificate: &x509.Certificate{DNSNames: []string{"a.example"}}, Host: "b.example"}}},
			"tls: certificate is valid for a.example, not b.example"},
		{bg, &tlsError{x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}}, "tls: certificate expired"},
		{bg, &tlsError{x509.CertificateInvalidError{Cert: future, Reason: x509.Expired}}, "tls: certificate not yet valid"},
		{bg, &tlsError{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}},
			"tls: server did not answer with TLS"},
		{bg, &tlsError{io.EOF}, "tls: connection closed during handshake"},
		{bg, &tlsError{errors.New("tls: no cipher suite supported by both client and server")},
			"tls: no cipher suite supported by both client and server"},
		{bg, &tlsError{op(syscall.ECONNRESET)}, "reset"},
		{bg, &tlsError{context.DeadlineExceeded}, "timeout"},
	} {
		if got := classify(tt.ctx, tt.err); got != tt.want {
			t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// laggingDeadline is a context past its deadline whose Err is still nil.
type laggingDeadline struct {
	context.Context
	dl time.Time
}

func (c laggingDeadline) Deadline() (time.Time, bool) { return c.dl, true }

func TestExpectIn(t *testing.T) {
	re := regexp.MustCompile("PONG")
	for _, tt := range []struct {
		name    string
		chunks  []string
		pending string
		limit   int
		rest    string
		ok      bool
		err     error
	}{
		{"split match", []string{"+PO", "NG\r\n", "more"}, "", 100, "\r\n", true, nil},
		{"match in what is pending", []string{"unread"}, "x PONG y", 100, " y", true, nil},
		{"pending and read", []string{"NG!"}, "+PO", 100, "!", true, nil},
		{"cap", []string{"xxxxxxxx", "PONG"}, "", 6, "xxxxxx", false, errReadCap},
		{"eof", []string{"nope"}, "", 100, "nope", false, io.EOF},
		{"match in the last read before eof", []string{"PONG"}, "", 100, "", true, nil},
	} {
		rest, ok, err := expectIn(&chunkReader{chunks: tt.chunks}, re, []byte(tt.pending), tt.limit)
		if string(rest) != tt.rest || ok != tt.ok || err != tt.err {
			t.Errorf("%s: %q %v %v, want %q %v %v", tt.name, rest, ok, err, tt.rest, tt.ok, tt.err)
		}
	}
}

type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}
