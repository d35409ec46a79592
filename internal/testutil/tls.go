package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for TLS tests.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA's certificate, PEM-encoded: what a client trusts.
	PEM []byte
}

// NewCA makes a CA named name, valid from an hour ago for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue makes a server certificate for host (a DNS name), 127.0.0.1 and
// ::1, valid from notBefore to notAfter, signed by ca; a nil ca makes it
// its own issuer, which no client trusts.
func (ca *CA) Issue(host string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, parentKey := tmpl, key
	if ca != nil {
		parent, parentKey = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// TestCA is a CA for one test; it fails the test on error.
func TestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("director test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// File writes the CA's certificate into the test's temporary directory
// and returns its path.
func (ca *CA) File(t testing.TB) string {
	t.Helper()
	return WriteFile(t, t.TempDir(), "ca.pem", string(ca.PEM))
}

// Leaf is Issue for test.example, failing the test on error.
func (ca *CA) Leaf(t testing.TB, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	cert, err := ca.Issue("test.example", notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// ValidLeaf is a certificate for test.example valid from an hour ago for
// an hour.
func (ca *CA) ValidLeaf(t testing.TB) tls.Certificate {
	t.Helper()
	return ca.Leaf(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// SelfSigned is a certificate for test.example, valid now, that is its
// own issuer.
func SelfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	var none *CA
	return none.ValidLeaf(t)
}

// WriteFile writes text to dir/name (mode 0644) and returns the path.
func WriteFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
