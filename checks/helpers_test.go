package checks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/leaktest"
)

// slack is how much later than its timeout a probe may return before a
// test calls it stuck. Generous: the machines running tests are noisy.
const slack = 2 * time.Second

// probeWithin runs p with timeout on the context and fails the test if it
// does not return within timeout+slack.
func probeWithin(t *testing.T, p Prober, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	res := p.Probe(ctx)
	if el := time.Since(start); el > timeout+slack {
		t.Errorf("Probe took %v with a timeout of %v", el, timeout)
	}
	if res.Start.IsZero() || res.Duration <= 0 {
		t.Errorf("Result without Start/Duration: %+v", res)
	}
	if res.OK != (res.Reason == "") {
		t.Errorf("Result OK=%v with reason %q", res.OK, res.Reason)
	}
	return res
}

func mustNew(t *testing.T, spec Spec) Prober {
	t.Helper()
	p, err := New(spec)
	if err != nil {
		t.Fatalf("New(%s): %v", spec, err)
	}
	return p
}

func wantOK(t *testing.T, res Result) {
	t.Helper()
	if !res.OK {
		t.Fatalf("probe failed: %q, want OK", res.Reason)
	}
}

func wantReason(t *testing.T, res Result, want string) {
	t.Helper()
	if res.OK || res.Reason != want {
		t.Fatalf("probe: OK=%v reason %q, want failure %q", res.OK, res.Reason, want)
	}
}

func wantReasonPrefix(t *testing.T, res Result, prefix string) {
	t.Helper()
	if res.OK || !strings.HasPrefix(res.Reason, prefix) {
		t.Fatalf("probe: OK=%v reason %q, want failure starting %q", res.OK, res.Reason, prefix)
	}
}

// checkNoLeak fails the test unless the goroutines started between the
// call and the call of the function it returns have ended: call it around
// a probe while its server starts no goroutines of its own.
func checkNoLeak(t *testing.T) func() { t.Helper(); return leaktest.Around(t) }

// noLeaks fails the test unless every goroutine started during it has
// ended once the test and its cleanups are done. Call it first.
func noLeaks(t *testing.T) { t.Helper(); leaktest.Check(t) }

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := addrPort(t, l.Addr())
	l.Close()
	return ap
}

// hangingServer accepts connections and never reads or writes. It holds
// them in a slice, so no goroutine per connection exists.
func hangingServer(t *testing.T) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return addrPort(t, l.Addr())
}

// connServer runs handle on each accepted connection, then closes it.
func connServer(t *testing.T, l net.Listener, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return addrPort(t, l.Addr())
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testPKI is a throwaway CA and certificates it signed.
type testPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string // PEM of the CA certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "director test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, caKey: key, caFile: file}
}

// leaf issues a server certificate for test.example and 127.0.0.1, ::1,
// valid from notBefore to notAfter.
func (p *testPKI) leaf(t *testing.T, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "test.example"},
		DNSNames:     []string{"test.example"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// selfSigned is a server certificate for test.example and 127.0.0.1 that
// is its own issuer.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test.example"},
		DNSNames: []string{"test.example"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) validLeaf(t *testing.T) tls.Certificate {
	return p.leaf(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// ipv6Loopback reports whether ::1 can be used.
func ipv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}
