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
func startSlapd(t *testing.T) netip.AddrPort {
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
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	// -d 0: stay in the foreground, log nothing.
	startDaemon(t, exec.Command(slapd, "-d", "0", "-f", conf, "-h", fmt.Sprintf("ldap://%s/", addr)), func() bool {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr
}

func TestLDAP(t *testing.T) {
	target := startSlapd(t)
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
}

func TestLDAPConnection(t *testing.T) {
	hangUp := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) { c.Read(make([]byte, 1024)) })
	probeTargets(t, "ldap", LDAPOptions{SearchBase: "dc=example,dc=test"}, true, append(deadServers(t),
		targetCase{"closed after the request", hangUp, 5 * time.Second, "error: connection closed"}))
}
