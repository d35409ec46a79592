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
	"reflect"
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
		{"method", Spec{Type: "http", Target: tgt, Method: "POST"}, `method: "POST" is not supported`},
		{"path", Spec{Type: "http", Target: tgt, Path: "healthz"}, `path: "healthz" must start with "/"`},
		{"path space", Spec{Type: "http", Target: tgt, Path: "/a b"}, "path:"},
		{"host", Spec{Type: "http", Target: tgt, Host: "a b"}, "host:"},
		{"header name", Spec{Type: "http", Target: tgt, Headers: []Header{{"Bad Name", "x"}}}, "headers:"},
		{"header value", Spec{Type: "http", Target: tgt, Headers: []Header{{"X-A", "a\r\nX-B: b"}}}, "headers: value of X-A"},
		{"header host", Spec{Type: "http", Target: tgt, Headers: []Header{{"host", "x"}}}, "host option"},
		{"status", Spec{Type: "http", Target: tgt, ExpectStatus: []string{"200-abc"}}, "expect_status:"},
		{"status range", Spec{Type: "http", Target: tgt, ExpectStatus: []string{"299-200"}}, "expect_status:"},
		{"body regexp", Spec{Type: "http", Target: tgt, ExpectBody: "("}, "expect_body: invalid regular expression"},
		{"head body", Spec{Type: "http", Target: tgt, Method: "HEAD", ExpectBody: "ok"}, "expect_body: a HEAD response"},
		{"max body", Spec{Type: "http", Target: tgt, MaxBodyBytes: -1}, "max_body_bytes"},
		{"ca missing", Spec{Type: "https", Target: tgt, CAFile: missing}, "ca_file: open " + missing},
		{"ca not pem", Spec{Type: "https", Target: tgt, CAFile: notPEM}, "no PEM certificates"},
		{"tcp ca", Spec{Type: "tcp", Target: tgt, TLS: true, CAFile: notPEM}, "ca_file"},
		{"tcp expect", Spec{Type: "tcp", Target: tgt, Expect: "[a-"}, "expect: invalid regular expression"},
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
		{Type: "https", Target: tgt, Method: "head", Path: "/x?y=1", Host: "example.com:8443"},
		{Type: "tcp", Target: tgt, CAFile: missing},
		{Type: "icmp", Target: netip.AddrPortFrom(tgt.Addr(), 0)},
		{Type: "icmp", Target: netip.MustParseAddrPort("[::1]:0"), Source: netip.MustParseAddr("::1")},
	} {
		if _, err := New(spec); err != nil {
			t.Errorf("New(%+v): %v", spec, err)
		}
	}
}

// mutate changes v, whatever its type, to a different value.
func mutate(t *testing.T, v reflect.Value) {
	switch x := v.Interface().(type) {
	case netip.AddrPort:
		v.Set(reflect.ValueOf(netip.MustParseAddrPort("10.9.9.9:9")))
	case netip.Addr:
		v.Set(reflect.ValueOf(netip.MustParseAddr("10.9.9.8")))
	case time.Duration:
		v.Set(reflect.ValueOf(x + time.Nanosecond))
	case []Header:
		v.Set(reflect.ValueOf(append(append([]Header(nil), x...), Header{"X", "y"})))
	case []string:
		v.Set(reflect.ValueOf(append(append([]string(nil), x...), "204")))
	case string:
		v.SetString(x + "x")
	case bool:
		v.SetBool(!x)
	case int64:
		v.SetInt(x + 1)
	default:
		t.Fatalf("mutate: no rule for %T: extend the test (and check Key covers it)", x)
	}
}

func fullSpec() Spec {
	return Spec{
		Type: "https", Target: tgt, Source: netip.MustParseAddr("10.0.0.1"),
		Timeout: time.Second, Interval: 2 * time.Second,
		Method: "GET", Path: "/healthz", Host: "example.com",
		Headers:      []Header{{"X-A", "1"}, {"X-B", "2"}},
		ExpectStatus: []string{"200-299", "301"}, ExpectBody: "ok",
		MaxBodyBytes: 100, TLS: true, TLSSkipVerify: false, CAFile: "/etc/ca.pem",
		ServerName: "sni.example", Send: "PING\r\n", Expect: "PONG", Privileged: true,
	}
}

func TestKey(t *testing.T) {
	a, b := fullSpec(), fullSpec()
	if a.Key() != b.Key() {
		t.Fatalf("equal specs, different keys:\n%s\n%s", a.canonical(), b.canonical())
	}
	if (Spec{}).Key() != (Spec{Headers: []Header{}, ExpectStatus: []string{}}).Key() {
		t.Error("nil and empty lists give different keys")
	}

	for _, base := range []Spec{fullSpec(), {}} {
		typ := reflect.TypeOf(base)
		for i := range typ.NumField() {
			s := base
			mutate(t, reflect.ValueOf(&s).Elem().Field(i))
			if s.Key() == base.Key() {
				t.Errorf("changing %s does not change the key %s", typ.Field(i).Name, s.canonical())
			}
		}
	}

	// Values cannot run into each other across fields.
	x := Spec{Headers: []Header{{"A", "b"}}}
	y := Spec{Headers: []Header{{"A:", "b"}}}
	z := Spec{Send: `" expect="x`}
	w := Spec{Expect: "x"}
	if x.Key() == y.Key() || z.Key() == w.Key() {
		t.Error("keys are ambiguous")
	}
	// A header's order matters.
	h1 := Spec{Headers: []Header{{"A", "1"}, {"B", "2"}}}
	h2 := Spec{Headers: []Header{{"B", "2"}, {"A", "1"}}}
	if h1.Key() == h2.Key() {
		t.Error("header order does not change the key")
	}
}

func TestString(t *testing.T) {
	six := netip.MustParseAddrPort("[2001:db8::1]:443")
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "http", Target: tgt, Path: "/healthz"}, "http://10.0.0.11:8080/healthz"},
		{Spec{Type: "http", Target: tgt}, "http://10.0.0.11:8080/"},
		{Spec{Type: "https", Target: six, Method: "HEAD"}, "HEAD https://[2001:db8::1]:443/"},
		{Spec{Type: "tcp", Target: tgt}, "tcp 10.0.0.11:8080"},
		{Spec{Type: "tcp", Target: tgt, TLS: true}, "tcp+tls 10.0.0.11:8080"},
		{Spec{Type: "icmp", Target: tgt}, "icmp 10.0.0.11"},
		{Spec{Type: "icmp", Target: six}, "icmp 2001:db8::1"},
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

func TestReadMatch(t *testing.T) {
	re := regexp.MustCompile("PONG")
	ok, n, err := readMatch(&chunkReader{chunks: []string{"+PO", "NG\r\n", "more"}}, re, 100)
	if !ok || n != 7 || err != nil {
		t.Errorf("split match: %v %d %v", ok, n, err)
	}
	ok, n, err = readMatch(&chunkReader{chunks: []string{"xxxxxxxx", "PONG"}}, re, 6)
	if ok || n != 6 || err != errReadCap {
		t.Errorf("cap: %v %d %v", ok, n, err)
	}
	ok, n, err = readMatch(&chunkReader{chunks: []string{"nope"}}, re, 100)
	if ok || n != 4 || err != io.EOF {
		t.Errorf("eof: %v %d %v", ok, n, err)
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
