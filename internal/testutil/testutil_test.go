package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestCAIssuesTrustedLeaves(t *testing.T) {
	ca := TestCA(t)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("CA PEM does not parse")
	}
	verify := func(cert tls.Certificate, name string) error {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name})
		return err
	}
	for _, name := range []string{"test.example", "127.0.0.1", "::1"} {
		if err := verify(ca.ValidLeaf(t), name); err != nil {
			t.Errorf("valid leaf for %s: %v", name, err)
		}
	}
	if err := verify(ca.Leaf(t, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)), "test.example"); err == nil {
		t.Error("an expired leaf verifies")
	}
	if err := verify(SelfSigned(t), "test.example"); err == nil {
		t.Error("a self-signed leaf verifies against the CA")
	}
}

func TestServersOnLoopback(t *testing.T) {
	addr := ServeHTTP(t, Answer(http.StatusTeapot, "tea"))
	if code, _, body := Get(t, "http://"+addr.String()+"/"); code != http.StatusTeapot || body != "tea" {
		t.Errorf("got %d %q", code, body)
	}
	hang := HangingServer(t)
	c, err := net.Dial("tcp", hang.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the hanging server answered: %d bytes, %v", n, err)
	}
	if _, err := net.DialTimeout("tcp", ClosedPort(t).String(), time.Second); err == nil {
		t.Error("something listens on ClosedPort")
	}
}
