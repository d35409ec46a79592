package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lvsdirector/director/internal/testutil"
)

// startMariaDB runs Debian's MariaDB server from a fresh data directory on
// a loopback port, with a user probe (password "s3cret") allowed to read
// database app: table ok has one row, table empty none. It offers TLS
// with serverCert's certificate, whose CA file it returns.
func startMariaDB(t *testing.T) (netip.AddrPort, string) {
	t.Helper()
	installDB := needBinary(t, "mariadb-install-db")
	server := needBinary(t, "mariadbd")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// Small InnoDB files: the defaults cost seconds and 100 MB per test.
	small := []string{"--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M", "--skip-log-bin"}
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"} // mariadbd refuses root without it
	}
	runTool(t, exec.Command(installDB, append(append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, asRoot...), small...)...))
	initSQL := filepath.Join(dir, "init.sql")
	writeFile(t, initSQL, `CREATE USER 'probe'@'%' IDENTIFIED BY 's3cret';
CREATE DATABASE app;
CREATE TABLE app.ok (x INT);
INSERT INTO app.ok VALUES (1);
CREATE TABLE app.empty (x INT);
GRANT SELECT ON app.* TO 'probe'@'%';
`, 0o644)
	caFile, certFile, keyFile := serverCert(t, dir)
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	args := append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + filepath.Join(dir, "sock"),
		"--pid-file=" + filepath.Join(dir, "pid"), "--bind-address=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--skip-name-resolve", "--init-file=" + initSQL,
		"--ssl-ca=" + caFile, "--ssl-cert=" + certFile, "--ssl-key=" + keyFile}, append(asRoot, small...)...)
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, cfg.DBName = "tcp", addr.String(), "probe", "s3cret", "app"
	startDaemon(t, exec.Command(server, args...), func() bool {
		conn, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return false
		}
		conn.Close()
		connector, _ := mysql.NewConnector(cfg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := connector.Connect(ctx)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr, caFile
}

// secretFile writes a password or secret file and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	writeFile(t, path, content, 0o600)
	return path
}

func TestMySQL(t *testing.T) {
	target, caFile := startMariaDB(t)
	password := secretFile(t, "s3cret\n")
	wrong := secretFile(t, "not-it")
	query := SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM ok"}
	for _, tt := range append(tlsCases(caFile, query, withSQLTLS), []struct {
		name   string
		opts   SQLOptions
		reason string
	}{
		{"login", SQLOptions{Login: "probe", PasswordFile: password}, ""},
		{"login to a database", SQLOptions{Login: "probe", PasswordFile: password, Database: "app"}, ""},
		{"query with a row", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM ok"}, ""},
		{"query without a database", SQLOptions{Login: "probe", PasswordFile: password, Query: "SELECT 1"}, ""},
		{"query with no rows", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM empty"}, "no rows"},
		{"statement without a result", SQLOptions{Login: "probe", PasswordFile: password, Query: "DO 1"}, "no rows"},
		{"wrong password", SQLOptions{Login: "probe", PasswordFile: wrong}, "auth failed"},
		{"no password", SQLOptions{Login: "probe"}, "auth failed"},
		{"unknown user", SQLOptions{Login: "nobody", PasswordFile: password}, "auth failed"},
		{"database not allowed", SQLOptions{Login: "probe", PasswordFile: password, Database: "mysql"},
			"error: mysql 1044: Access denied for user 'probe'@'%' to database 'mysql'"},
		{"bad query", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM nosuch"},
			"error: mysql 1146: Table 'app.nosuch' doesn't exist"},
		{"password file gone", SQLOptions{Login: "probe", PasswordFile: password + ".gone"},
			"error: password_file: cannot read " + password + ".gone: no such file or directory"},
		{"wrong password over tls", withSQLTLS(SQLOptions{Login: "probe", PasswordFile: wrong}, TLSOptions{CAFile: caFile}), "auth failed"},
	}...) {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "mysql", Target: target, Options: tt.opts}), 5*time.Second), tt.reason)
		})
	}
	// A query still running at the deadline ends the check, and its
	// connection.
	slow := mustNew(t, Spec{Type: "mysql", Target: target, Options: SQLOptions{Login: "probe", PasswordFile: password, Query: "SELECT SLEEP(5)"}})
	wantReason(t, probeWithin(t, slow, 500*time.Millisecond), "timeout")
}

func TestMySQLConnection(t *testing.T) {
	// A server that hangs up after its greeting is cut short.
	hangUp := testutil.ServeConns(t, testutil.Listen(t), func(net.Conn) {})
	probeTargets(t, "mysql", SQLOptions{Login: "probe", Query: "SELECT 1"}, true, append(deadServers(t),
		targetCase{"closed at once", hangUp, 5 * time.Second, "error: connection closed"}))

	// A server whose greeting lacks CLIENT_SSL, as one without TLS
	// configured sends: a check with tls = true fails rather than log in
	// in the clear.
	noTLS := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		c.Write(mysqlGreeting(0x0001 | 0x0200 | 0x2000 | 0x8000 | 0x80000)) // long password, 4.1, transactions, secure connection, plugin auth
		c.Read(make([]byte, 1024))
	})
	res := probeWithin(t, mustNew(t, Spec{Type: "mysql", Target: noTLS,
		Options: withSQLTLS(SQLOptions{Login: "probe"}, TLSOptions{TLSSkipVerify: true})}), 5*time.Second)
	wantReason(t, res, tlsNotOffered)
}

// mysqlGreeting is a server's first packet (protocol 10) with the
// capability flags caps and mysql_native_password.
func mysqlGreeting(caps uint32) []byte {
	scramble := []byte("abcdefghijklmnopqrst")
	p := []byte{10}
	p = append(p, "5.7.0-test\x00"...)
	p = append(p, 1, 0, 0, 0)      // connection id
	p = append(p, scramble[:8]...) // auth plugin data, part 1
	p = append(p, 0)               // filler
	p = append(p, byte(caps), byte(caps>>8), 33, 2, 0, byte(caps>>16), byte(caps>>24), 21)
	p = append(p, make([]byte, 10)...) // reserved
	p = append(p, scramble[8:]...)
	p = append(p, 0)
	p = append(p, "mysql_native_password\x00"...)
	return append([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), 0}, p...)
}

// withSQLTLS is o with tls = true and the TLS options t.
func withSQLTLS(o SQLOptions, t TLSOptions) SQLOptions {
	o.TLS, o.TLSOptions = true, t
	return o
}
