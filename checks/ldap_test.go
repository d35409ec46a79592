package checks

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// startSlapd runs Debian's OpenLDAP server on a loopback port with a
// temporary slapd.conf and an mdb database loaded by slapadd:
// dc=example,dc=test with ou=people (holding cn=probe, password "s3cret")
// and an empty ou=empty. Anonymous binds may read everything.
func startSlapd(t *testing.T) (plain, ldaps netip.AddrPort, caFile string) {
	t.Helper()
	slapd := needBinary(t, "slapd")
	slapadd := needBinary(t, "slapadd")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	writeFile(t, conf, fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
database mdb
maxsize 16777216
suffix "dc=example,dc=test"
rootdn "cn=admin,dc=example,dc=test"
rootpw admin-pw
directory %[2]s
access to * by * read
`, dir, db), 0o600)
	// TLS for LDAPS and StartTLS, global settings ahead of the database.
	caFile, certFile, keyFile := serverCert(t, dir)
	writeFile(t, conf, fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", caFile, certFile, keyFile)+
		readFile(t, conf), 0o600)
	ldif := filepath.Join(dir, "data.ldif")
	writeFile(t, ldif, `dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=test
objectClass: organizationalUnit
ou: people

dn: cn=probe,ou=people,dc=example,dc=test
objectClass: person
cn: probe
sn: Probe
userPassword: s3cret

dn: ou=empty,dc=example,dc=test
objectClass: organizationalUnit
ou: empty
`, 0o600)
	runTool(t, exec.Command(slapadd, "-f", conf, "-l", ldif))
	loopback := netip.MustParseAddr("127.0.0.1")
	plain = netip.AddrPortFrom(loopback, uint16(freePort(t)))
	ldaps = netip.AddrPortFrom(loopback, uint16(freePort(t)))
	// -d 0: stay in the foreground, log nothing.
	startDaemon(t, exec.Command(slapd, "-d", "0", "-f", conf, "-h", fmt.Sprintf("ldap://%s/ ldaps://%s/", plain, ldaps)), func() bool {
		for _, a := range []netip.AddrPort{plain, ldaps} {
			c, err := net.DialTimeout("tcp", a.String(), 200*time.Millisecond)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
	return plain, ldaps, caFile
}

// readFile returns a fixture's text, failing the test on error.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLDAP(t *testing.T) {
	target, ldaps, caFile := startSlapd(t)
	password := secretFile(t, "s3cret\n")
	wrong := secretFile(t, "not-it")
	const probe = "cn=probe,ou=people,dc=example,dc=test"
	for _, tt := range []struct {
		name   string
		opts   LDAPOptions
		reason string
	}{
		{"anonymous bind", LDAPOptions{}, ""},
		{"bind", LDAPOptions{BindDN: probe, PasswordFile: password}, ""},
		{"search", LDAPOptions{BindDN: probe, PasswordFile: password, SearchBase: "dc=example,dc=test"}, ""},
		{"anonymous search with a filter", LDAPOptions{SearchBase: "ou=people,dc=example,dc=test", SearchFilter: "(&(objectClass=person)(cn=probe))"}, ""},
		{"search with many entries", LDAPOptions{SearchBase: "dc=example,dc=test", SearchFilter: "(objectClass=*)"}, ""},
		{"search finding nothing", LDAPOptions{SearchBase: "ou=empty,dc=example,dc=test", SearchFilter: "(objectClass=person)"}, "no entries"},
		{"search base missing", LDAPOptions{SearchBase: "ou=nosuch,dc=example,dc=test"}, "error: ldap No Such Object"},
		{"wrong password", LDAPOptions{BindDN: probe, PasswordFile: wrong}, "auth failed"},
		{"unknown DN", LDAPOptions{BindDN: "cn=nobody,ou=people,dc=example,dc=test", PasswordFile: password}, "auth failed"},
		{"password file gone", LDAPOptions{BindDN: probe, PasswordFile: password + ".gone"},
			"error: password_file: cannot read " + password + ".gone: no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "ldap", Target: target, Options: tt.opts}), 5*time.Second), tt.reason)
		})
	}

	// LDAPS on its own port, StartTLS on the plain one: both verified.
	search := LDAPOptions{BindDN: probe, PasswordFile: password, SearchBase: "ou=people,dc=example,dc=test", SearchFilter: "(cn=probe)"}
	for _, mode := range []struct {
		name   string
		target netip.AddrPort
		with   func(LDAPOptions, TLSOptions) LDAPOptions
	}{
		{"ldaps", ldaps, func(o LDAPOptions, t TLSOptions) LDAPOptions { o.TLS, o.TLSOptions = true, t; return o }},
		{"starttls", target, func(o LDAPOptions, t TLSOptions) LDAPOptions { o.StartTLS, o.TLSOptions = true, t; return o }},
	} {
		cases := append(tlsCases(caFile, search, mode.with), struct {
			name   string
			opts   LDAPOptions
			reason string
		}{"wrong password", mode.with(LDAPOptions{BindDN: probe, PasswordFile: wrong}, TLSOptions{CAFile: caFile}), "auth failed"})
		for _, tt := range cases {
			t.Run(mode.name+" "+tt.name, func(t *testing.T) {
				wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "ldap", Target: mode.target, Options: tt.opts}), 5*time.Second), tt.reason)
			})
		}
	}
	// LDAPS to the plain port: the server does not answer in TLS.
	plainAsLDAPS := LDAPOptions{TLS: true, TLSOptions: TLSOptions{CAFile: caFile}}
	res := probeWithin(t, mustNew(t, Spec{Type: "ldap", Target: target, Options: plainAsLDAPS}), 5*time.Second)
	wantReasonPrefix(t, res, "tls: ")
}

func TestLDAPConnection(t *testing.T) {
	hangUp := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) { c.Read(make([]byte, 1024)) })
	probeTargets(t, "ldap", LDAPOptions{SearchBase: "dc=example,dc=test"}, true, append(deadServers(t),
		targetCase{"closed after the request", hangUp, 5 * time.Second, "error: connection closed"}))
}
