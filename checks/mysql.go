package checks

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/go-sql-driver/mysql"
)

var mysqlKind = Kind{
	Name: "mysql",
	Keys: sqlKeys, Zero: SQLOptions{}, Decode: decodeSQL, build: newMySQL,
}

// mysqlProber logs in to a MySQL or MariaDB server and, when a query is
// set, runs it and wants at least one row back. Each check has a
// connection of its own, closed before it returns (no pool), over TLS
// with tls = true.
//
// Reasons: "auth failed" (access denied), "no rows", "error: mysql <number>:
// <message>" for other server errors (an unknown database, a bad query),
// and the connection's "refused", "timeout", "reset", ...
type mysqlProber struct {
	spec *Spec
	opts SQLOptions
	tls  *tls.Config // nil without tls = true
}

func newMySQL(spec *Spec, _ *Shared) (Prober, error) {
	p := &mysqlProber{spec: spec, opts: spec.Options.(SQLOptions)}
	var err error
	if p.tls, err = p.opts.tlsConfig(spec); err != nil {
		return nil, err
	}
	return p, nil
}

// Probe logs in, runs the query and closes the connection, all within the
// deadline.
func (p *mysqlProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

// mysqlAccessDenied is ER_ACCESS_DENIED_ERROR: a wrong user or password.
const mysqlAccessDenied = 1045

func (p *mysqlProber) probe(ctx context.Context) string {
	password, err := p.opts.password()
	if err != nil {
		return "error: password_file: " + err.Error()
	}
	logged := &mysqlLog{}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", p.spec.Target.String()
	cfg.User, cfg.Passwd, cfg.DBName = p.opts.Login, password, p.opts.Database
	cfg.Logger = logged
	cfg.CheckConnLiveness = false
	// With tls = true the server must switch to TLS before the login.
	cfg.TLS = p.tls
	cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := dialNetwork(ctx, p.spec, "tcp")
		if err == nil {
			// The driver's own watcher closes the connection when ctx
			// ends; the deadline also bounds its farewell on Close.
			if dl, ok := ctx.Deadline(); ok {
				conn.SetDeadline(dl)
			}
		}
		return conn, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return "error: " + shortError(err)
	}
	conn, err := connector.Connect(ctx)
	if err != nil {
		return mysqlReason(ctx, err, logged)
	}
	defer conn.Close()
	if p.opts.Query == "" {
		return ""
	}
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, p.opts.Query, nil)
	if err != nil {
		return mysqlReason(ctx, err, logged)
	}
	defer rows.Close()
	switch err := rows.Next(make([]driver.Value, len(rows.Columns()))); {
	case err == io.EOF:
		return "no rows"
	case err != nil:
		return mysqlReason(ctx, err, logged)
	}
	return ""
}

// mysqlReason names a failure of the driver: the server's errors by
// number, the connection's by classify.
func mysqlReason(ctx context.Context, err error, logged *mysqlLog) string {
	if reason, ok := handshakeReason(err); ok && ctx.Err() == nil {
		return reason
	}
	if errors.Is(err, mysql.ErrNoTLS) {
		return tlsNotOffered
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		if me.Number == mysqlAccessDenied {
			return "auth failed"
		}
		return fmt.Sprintf("error: mysql %d: %s", me.Number, clip(me.Message))
	}
	// On a broken connection the driver returns ErrInvalidConn and only
	// logs the cause (a reset, an EOF).
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) {
		if cause := logged.first(); cause != nil {
			err = cause
		}
	}
	return classify(ctx, err)
}

// mysqlLog is the driver's logger for one check: it keeps the first error
// logged, for mysqlReason, and prints nothing.
type mysqlLog struct {
	mu  sync.Mutex
	err error
}

func (l *mysqlLog) Print(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range v {
		if err, ok := x.(error); ok && l.err == nil {
			l.err = err
		}
	}
}

func (l *mysqlLog) first() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
