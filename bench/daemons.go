package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// daemon is a Debian server the backends process runs for the mysql,
// postgresql and ldap kinds: from a fresh directory, on a free loopback
// port, in a process group of its own that dies with the backends
// process. Each holds user probe (password s3cret); the SQL ones a
// database app whose table ok has one row, slapd cn=probe under
// ou=people,dc=example,dc=test.
type daemon struct {
	kind   string
	cmd    *exec.Cmd
	dir    string
	addr   netip.AddrPort
	exited chan struct{}
	out    *strings.Builder
}

// pgBinDirs hold Debian's PostgreSQL programs, which are not in PATH.
var pgBinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

// daemonStartLimit bounds a daemon's start.
const daemonStartLimit = 60 * time.Second

func startDaemon(kind string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "director-bench-"+kind+"-")
	if err != nil {
		return nil, err
	}
	port, err := loopbackPort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &daemon{kind: kind, dir: dir, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
		exited: make(chan struct{}), out: &strings.Builder{}}
	var ready func(context.Context) error
	switch kind {
	case "mysql":
		ready, err = d.mariadb()
	case "postgresql":
		ready, err = d.postgres()
	case "ldap":
		ready, err = d.slapd()
	default:
		err = fmt.Errorf("no daemon for kind %q", kind)
	}
	if err == nil {
		err = d.wait(ready)
	}
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("%s backend: %w", kind, err)
	}
	return d, nil
}

// setupError is a failure after the daemon answered: not one to retry.
type setupError struct{ err error }

func (e *setupError) Error() string { return "setting up: " + e.err.Error() }

// loopbackPort returns a TCP port free on 127.0.0.1 now.
func loopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// program finds a daemon's program in PATH or dirs.
func program(name, pkg string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range append(dirs, "/usr/sbin", "/sbin") {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (apt-get install %s)", name, pkg)
}

// setup runs a preparation step (install-db, initdb, slapadd) to its end.
func setup(cmd *exec.Cmd) error {
	ctx, cancel := context.WithTimeout(context.Background(), daemonStartLimit)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Dir, c.SysProcAttr = cmd.Dir, cmd.SysProcAttr
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// run starts the daemon itself.
func (d *daemon) run(cmd *exec.Cmd) error {
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd = cmd
	go func() { cmd.Wait(); close(d.exited) }()
	return nil
}

// wait polls ready until it succeeds, the daemon exits or the start
// limit passes.
func (d *daemon) wait(ready func(context.Context) error) error {
	deadline := time.Now().Add(daemonStartLimit)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("exited while starting:\n%s", d.out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ready(ctx)
		cancel()
		var se *setupError
		if err == nil || errors.As(err, &se) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v\n%s", daemonStartLimit, err, d.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the daemon's process group (SIGTERM, then SIGKILL) and
// removes its directory.
func (d *daemon) stop() {
	if d.cmd != nil {
		pgid := d.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-d.exited
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	os.RemoveAll(d.dir)
}

func (d *daemon) file(name, content string) (string, error) {
	path := filepath.Join(d.dir, name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}

// mariadb: mariadb-install-db, then mariadbd with small InnoDB files.
func (d *daemon) mariadb() (func(context.Context) error, error) {
	installDB, err := program("mariadb-install-db", "mariadb-server")
	if err != nil {
		return nil, err
	}
	server, err := program("mariadbd", "mariadb-server")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(d.dir, "data")
	small := []string{"--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M", "--skip-log-bin"}
	if os.Geteuid() == 0 {
		small = append(small, "--user=root") // mariadbd refuses root without it
	}
	if err := setup(exec.Command(installDB, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, small...)...)); err != nil {
		return nil, err
	}
	initSQL, err := d.file("init.sql", fmt.Sprintf(`CREATE USER '%[1]s'@'%%' IDENTIFIED BY '%[2]s';
CREATE DATABASE app;
CREATE TABLE app.ok (x INT);
INSERT INTO app.ok VALUES (1);
GRANT SELECT ON app.* TO '%[1]s'@'%%';
`, benchLogin, benchPassword))
	if err != nil {
		return nil, err
	}
	// Thousands of short connections a second: enough of them, and no
	// host blocked for connections the checker cut at its timeout.
	err = d.run(exec.Command(server, append([]string{"--no-defaults", "--datadir=" + data,
		"--socket=" + filepath.Join(d.dir, "sock"), "--pid-file=" + filepath.Join(d.dir, "pid"),
		"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(int(d.addr.Port())), "--skip-name-resolve",
		"--init-file=" + initSQL, "--max-connections=2000", "--max-connect-errors=1000000000",
		"--thread-cache-size=256"}, small...)...))
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd, cfg.DBName = "tcp", d.addr.String(), benchLogin, benchPassword, "app"
	connector, cerr := mysql.NewConnector(cfg)
	if cerr != nil {
		return nil, cerr
	}
	return func(ctx context.Context) error {
		c, err := connector.Connect(ctx)
		if err != nil {
			return err
		}
		return c.Close()
	}, err
}

// postgres: initdb (scram-sha-256, as Debian's packaging does) and
// postgres, as the postgres user when run as root (it refuses root).
func (d *daemon) postgres() (func(context.Context) error, error) {
	initdb, err := program("initdb", "postgresql", pgBinDirs...)
	if err != nil {
		return nil, err
	}
	server, err := program("postgres", "postgresql", filepath.Dir(initdb))
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			if u, err = user.Lookup("nobody"); err != nil {
				return nil, fmt.Errorf("no user to run postgres as: %v", err)
			}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(d.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	as := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Dir = d.dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	pwfile, err := d.file("superuser.pw", "super\n")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		os.Chown(pwfile, int(cred.Uid), int(cred.Gid))
	}
	data := filepath.Join(d.dir, "data")
	if err := setup(as(exec.Command(initdb, "-D", data, "-U", "postgres", "--pwfile="+pwfile, "--auth=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"))); err != nil {
		return nil, err
	}
	// The checks come from the backends' own addresses (the forwarder's
	// source), anywhere in 127/8.
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = hba.WriteString("host all all 127.0.0.0/8 scram-sha-256\n")
	hba.Close()
	if err != nil {
		return nil, err
	}
	err = d.run(as(exec.Command(server, "-D", data, "-k", d.dir, "-h", "127.0.0.1", "-p", strconv.Itoa(int(d.addr.Port())),
		"-c", "fsync=off", "-c", "max_connections=300", "-c", "shared_buffers=16MB")))
	superCfg, cerr := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=super dbname=postgres sslmode=disable connect_timeout=1", d.addr.Port()))
	if cerr != nil {
		return nil, cerr
	}
	// Ready when the superuser gets in; then the user, database and table,
	// once (a retry after a partial setup would find the user there).
	return func(ctx context.Context) error {
		c, err := pgx.ConnectConfig(ctx, superCfg)
		if err != nil {
			return err
		}
		c.Close(context.Background())
		return d.prepareSQL(superCfg)
	}, err
}

// prepareSQL creates the probe user, database app and table ok with one
// row in a running PostgreSQL.
func (d *daemon) prepareSQL(superCfg *pgx.ConnConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run := func(cfg *pgx.ConnConfig, stmts ...string) error {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	if err := run(superCfg, fmt.Sprintf("CREATE USER %s PASSWORD '%s'", benchLogin, benchPassword),
		"CREATE DATABASE app OWNER "+benchLogin); err != nil {
		return &setupError{err}
	}
	app := superCfg.Copy()
	app.Database, app.User, app.Password = "app", benchLogin, benchPassword
	if err := run(app, "CREATE TABLE ok (x int)", "INSERT INTO ok VALUES (1)"); err != nil {
		return &setupError{err}
	}
	return nil
}

// slapd: an mdb database loaded with slapadd, anonymous and bound reads.
func (d *daemon) slapd() (func(context.Context) error, error) {
	slapd, err := program("slapd", "slapd")
	if err != nil {
		return nil, err
	}
	slapadd, err := program("slapadd", "slapd")
	if err != nil {
		return nil, err
	}
	db := filepath.Join(d.dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		return nil, err
	}
	conf, err := d.file("slapd.conf", fmt.Sprintf(`include /etc/ldap/schema/core.schema
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
directory %[2]s
access to * by * read
`, d.dir, db))
	if err != nil {
		return nil, err
	}
	ldif, err := d.file("data.ldif", fmt.Sprintf(`dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: %s
objectClass: organizationalUnit
ou: people

dn: %s
objectClass: person
cn: probe
sn: Probe
userPassword: %s
`, benchLDAPBase, benchLDAPBindDN, benchPassword))
	if err != nil {
		return nil, err
	}
	if err := setup(exec.Command(slapadd, "-f", conf, "-l", ldif)); err != nil {
		return nil, err
	}
	// -d 0: in the foreground, logging nothing.
	err = d.run(exec.Command(slapd, "-d", "0", "-f", conf, "-h", fmt.Sprintf("ldap://%s/", d.addr)))
	return func(ctx context.Context) error {
		c, err := ldap.DialURL("ldap://"+d.addr.String(), ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Bind(benchLDAPBindDN, benchPassword)
	}, err
}
