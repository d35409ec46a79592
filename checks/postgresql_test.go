package checks

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lvsdirector/director/internal/testutil"
)

// pgBinDirs are where Debian keeps the server programs of each major
// version; they are not in PATH.
var pgBinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

// startPostgreSQL runs Debian's PostgreSQL from a fresh cluster on a
// loopback port, with a user probe (password "s3cret", scram-sha-256) that
// may read database app: table ok has one row, table empty none. The
// server refuses to run as root, so as root it runs as the postgres user
// (or nobody). It offers TLS with serverCert's certificate, whose CA file
// it returns.
func startPostgreSQL(t *testing.T) (netip.AddrPort, string) {
	t.Helper()
	initdb := needBinary(t, "initdb", pgBinDirs...)
	server := needBinary(t, "postgres", filepath.Dir(initdb))
	var cred *syscall.Credential
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Fatalf("no user to run postgres as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The server's own directory, out of the root-only test tree.
		if dir, err = os.MkdirTemp("", "director-pg-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	as := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	pwfile := filepath.Join(dir, "superuser.pw")
	writeFile(t, pwfile, "super\n", 0o600)
	if cred != nil {
		os.Chown(pwfile, int(cred.Uid), int(cred.Gid))
	}
	caFile, certFile, keyFile := serverCert(t, dir)
	if cred != nil { // postgres wants its key its own
		for _, f := range []string{certFile, keyFile} {
			os.Chown(f, int(cred.Uid), int(cred.Gid))
		}
	}
	data := filepath.Join(dir, "data")
	runTool(t, as(exec.Command(initdb, "-D", data, "-U", "postgres", "--pwfile="+pwfile, "--auth=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")))
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=super dbname=postgres sslmode=disable connect_timeout=1", port))
	if err != nil {
		t.Fatal(err)
	}
	startDaemon(t, as(exec.Command(server, "-D", data, "-k", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", "fsync=off", "-c", "max_connections=20", "-c", "shared_buffers=16MB",
		"-c", "ssl=on", "-c", "ssl_cert_file="+certFile, "-c", "ssl_key_file="+keyFile)), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false
		}
		c.Close(ctx)
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	setup := func(cfg *pgx.ConnConfig, sql ...string) {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, s := range sql {
			if _, err := c.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	setup(cfg, "CREATE USER probe PASSWORD 's3cret'", "CREATE DATABASE app OWNER probe", "CREATE USER nologin PASSWORD 'x' NOLOGIN")
	app := cfg.Copy()
	app.Database, app.User, app.Password = "app", "probe", "s3cret"
	setup(app, "CREATE TABLE ok (x int)", "INSERT INTO ok VALUES (1)", "CREATE TABLE empty (x int)")
	return addr, caFile
}

func TestPostgreSQL(t *testing.T) {
	target, caFile := startPostgreSQL(t)
	password := secretFile(t, "s3cret\n")
	wrong := secretFile(t, "not-it")
	query := SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM ok"}
	for _, tt := range append(tlsCases(caFile, query, withSQLTLS), []struct {
		name   string
		opts   SQLOptions
		reason string
	}{
		{"login", SQLOptions{Login: "probe", PasswordFile: password, Database: "postgres"}, ""},
		{"login to a database", SQLOptions{Login: "probe", PasswordFile: password, Database: "app"}, ""},
		{"query with a row", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM ok"}, ""},
		{"query with no rows", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM empty"}, "no rows"},
		{"statement without a result", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SET search_path = public"}, "no rows"},
		{"wrong password", SQLOptions{Login: "probe", PasswordFile: wrong, Database: "app"}, "auth failed"},
		{"no password", SQLOptions{Login: "probe", Database: "app"}, "auth failed"},
		{"unknown user", SQLOptions{Login: "nobody", PasswordFile: password, Database: "app"}, "auth failed"},
		{"user without login", SQLOptions{Login: "nologin", PasswordFile: secretFile(t, "x"), Database: "app"}, "auth failed"},
		{"unknown database", SQLOptions{Login: "probe", PasswordFile: password, Database: "nosuch"},
			`error: postgresql 3D000: database "nosuch" does not exist`},
		{"bad query", SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT x FROM nosuch"},
			`error: postgresql 42P01: relation "nosuch" does not exist`},
		{"wrong password over tls", withSQLTLS(SQLOptions{Login: "probe", PasswordFile: wrong, Database: "app"}, TLSOptions{CAFile: caFile}), "auth failed"},
	}...) {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "postgresql", Target: target, Options: tt.opts}), 5*time.Second), tt.reason)
		})
	}
	// A query still running at the deadline ends the check, and its
	// connection.
	slow := mustNew(t, Spec{Type: "postgresql", Target: target, Options: SQLOptions{Login: "probe", PasswordFile: password, Database: "app", Query: "SELECT pg_sleep(5)"}})
	wantReason(t, probeWithin(t, slow, 500*time.Millisecond), "timeout")
}

func TestPostgreSQLConnection(t *testing.T) {
	// A server that reads the startup message and hangs up. (Hanging up
	// before reading it would make the close a reset, or not, by timing.)
	hangUp := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) { c.Read(make([]byte, 1024)) })
	probeTargets(t, "postgresql", SQLOptions{Login: "probe", Query: "SELECT 1"}, true, append(deadServers(t),
		targetCase{"closed at once", hangUp, 5 * time.Second, "error: connection closed"}))

	// A server that answers SSLRequest with N, as one without ssl = on
	// does: a check with tls = true fails rather than log in in the clear.
	noTLS := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, 8)); err == nil {
			c.Write([]byte("N"))
			c.Read(make([]byte, 1024))
		}
	})
	res := probeWithin(t, mustNew(t, Spec{Type: "postgresql", Target: noTLS,
		Options: withSQLTLS(SQLOptions{Login: "probe"}, TLSOptions{TLSSkipVerify: true})}), 5*time.Second)
	wantReason(t, res, tlsNotOffered)
}
