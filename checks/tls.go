package checks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strings"

	"github.com/lvsdirector/director/internal/safefile"
)

// TLSOptions are the TLS settings shared by https checks and tcp checks
// with tls = true.
type TLSOptions struct {
	TLSSkipVerify bool   // accept any certificate
	CAFile        string // PEM file of the CAs to trust instead of the system's
	ServerName    string // name to verify and send as SNI; default the Host, else the target
}

// tlsKeys are the keys of TLSOptions, in the order they are read.
var tlsKeys = []string{"tls_skip_verify", "ca_file", "server_name"}

// tlsOptionKeys are the keys of TLSOptions for a Kind that reads them
// when (see Key.When).
func tlsOptionKeys(when string) []Key {
	keys := make([]Key, len(tlsKeys))
	for i, name := range tlsKeys {
		keys[i] = Key{Name: name, When: when}
	}
	return keys
}

// switchedTLSKeys are the keys of a kind whose TLS is switched on with
// tls = true (tcp, grpc).
func switchedTLSKeys() []Key {
	return append([]Key{{Name: "tls", Note: "https checks always use TLS"}}, tlsOptionKeys("with tls = true")...)
}

// decodeSwitchedTLS reads tls and, when it is on, the TLS settings; when
// it is off they are unused.
func decodeSwitchedTLS(d Decoder) (bool, TLSOptions) {
	on, _ := d.Bool("tls")
	if !on {
		d.Unused(tlsKeys...)
		return false, TLSOptions{}
	}
	return true, decodeTLS(d)
}

func decodeTLS(d Decoder) TLSOptions {
	var o TLSOptions
	o.TLSSkipVerify, _ = d.Bool("tls_skip_verify")
	if path, ok := d.File("ca_file"); ok {
		if _, msg := loadCA(path); msg != "" {
			d.Errorf("ca_file", "%s", msg)
		} else {
			o.CAFile = path
		}
	}
	o.ServerName, _ = d.String("server_name")
	return o
}

func (o TLSOptions) canonical(c *canonical) {
	c.boolean("tls_skip_verify", o.TLSSkipVerify)
	c.str("ca_file", o.CAFile)
	c.str("server_name", o.ServerName)
}

// maxCAFileBytes caps the read of a ca_file: a bundle of every public CA
// is about 200 KB.
const maxCAFileBytes = 4 << 20

// loadCA reads a PEM file of CA certificates; msg says what is wrong with
// it, "" when nothing is.
func loadCA(path string) (pool *x509.CertPool, msg string) {
	pem, err := safefile.ReadFile(path, maxCAFileBytes)
	if errors.Is(err, safefile.ErrNotRegular) || errors.Is(err, safefile.ErrTooLarge) {
		return nil, err.Error()
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Sprintf("cannot read %s: %v", path, err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Sprintf("%s holds no PEM certificates", path)
	}
	return pool, ""
}

// tlsConfig builds the client TLS configuration of a check: certificates
// are verified against the system roots, or against CAFile's certificates
// when it is set, unless TLSSkipVerify. The server name is ServerName,
// else the host part of host (the Host header), else the target address.
func tlsConfig(spec *Spec, o TLSOptions, host string) (*tls.Config, error) {
	conf := &tls.Config{
		InsecureSkipVerify: o.TLSSkipVerify, //nolint:gosec // the operator's explicit choice
		ServerName:         tlsServerName(o.ServerName, host, spec.Target),
	}
	if o.CAFile != "" {
		pool, msg := loadCA(o.CAFile)
		if msg != "" {
			return nil, fmt.Errorf("%s: ca_file: %s", spec, msg)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

func tlsServerName(serverName, host string, target netip.AddrPort) string {
	if serverName != "" {
		return serverName
	}
	if host != "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			return h
		}
		return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	return target.Addr().WithZone("").Unmap().String()
}

// handshakeReason names err as tlsReason does when it is the failure of a
// TLS handshake a driver made itself (mysql, postgresql, ldap's StartTLS),
// which comes back without a *tlsError around it.
func handshakeReason(err error) (string, bool) {
	var (
		verifyErr  *tls.CertificateVerificationError
		authErr    x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		headerErr  tls.RecordHeaderError
		opErr      *net.OpError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &authErr) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &headerErr) ||
		errors.As(err, &opErr) && opErr.Op == "remote error" {
		return tlsReason(err), true
	}
	return "", false
}

// tlsNotOffered is the reason of a server that will not switch to TLS.
const tlsNotOffered = "tls: server does not offer TLS"
