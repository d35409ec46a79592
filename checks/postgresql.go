package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var postgresqlKind = Kind{
	Name: "postgresql", Foreign: map[string]string{"pgsql": "ldirectord's pgsql"},
	Keys: sqlKeys, Zero: SQLOptions{}, Decode: decodeSQL, build: newPostgreSQL,
}

// postgresqlProber logs in to a PostgreSQL server and, when a query is
// set, runs it (simple protocol, nothing prepared) and wants at least one
// row back. Each check has a connection of its own, closed before it
// returns (no pool), over TLS with tls = true.
//
// Reasons: "auth failed" (a wrong password, or pg_hba.conf says no), "no
// rows", "error: postgresql <SQLSTATE>: <message>" for other server errors
// (an unknown database, a bad query), and the connection's "refused",
// "timeout", "reset", ...
type postgresqlProber struct {
	spec *Spec
	opts SQLOptions
	base *pgx.ConnConfig // copied for each check
}

func newPostgreSQL(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(SQLOptions)
	// ParseConfig is the only way to make a config pgx accepts; it also
	// reads the PG* environment and ~/.pgpass, so every setting that
	// matters is overwritten below.
	base, err := pgx.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", spec, err)
	}
	base.Host = spec.Target.Addr().String()
	base.Port = spec.Target.Port()
	base.User, base.Database, base.Password = o.Login, o.Database, ""
	// With tls = true the server must switch (sslmode=verify-full, with
	// the check's own trust and name); without, nothing is asked.
	if base.TLSConfig, err = o.tlsConfig(spec); err != nil {
		return nil, err
	}
	base.Fallbacks = nil
	base.ConnectTimeout = 0 // the context bounds it
	base.RuntimeParams = map[string]string{"application_name": UserAgent}
	base.KerberosSrvName, base.KerberosSpn = "", ""
	base.ValidateConnect, base.AfterConnect, base.OnNotice, base.OnNotification = nil, nil, nil, nil
	base.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	base.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialNetwork(ctx, spec, "tcp")
	}
	base.Tracer = nil
	base.StatementCacheCapacity, base.DescriptionCacheCapacity = 0, 0
	base.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return &postgresqlProber{spec: spec, opts: o, base: base}, nil
}

// Probe logs in, runs the query and closes the connection, all within the
// deadline.
func (p *postgresqlProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *postgresqlProber) probe(ctx context.Context) string {
	password, err := p.opts.password()
	if err != nil {
		return "error: password_file: " + err.Error()
	}
	cfg := p.base.Copy()
	cfg.Password = password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return postgresqlReason(ctx, err)
	}
	defer conn.Close(ctx)
	if p.opts.Query == "" {
		return ""
	}
	rows, err := conn.Query(ctx, p.opts.Query)
	if err != nil {
		return postgresqlReason(ctx, err)
	}
	found := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return postgresqlReason(ctx, err)
	}
	if !found {
		return "no rows"
	}
	return ""
}

// SQLSTATEs of a refused login: invalid_password, and
// invalid_authorization_specification (pg_hba.conf has no entry, or
// rejects).
const (
	pgInvalidPassword = "28P01"
	pgInvalidAuthSpec = "28000"
)

// postgresqlReason names a failure: the server's errors by SQLSTATE, the
// connection's by classify.
func postgresqlReason(ctx context.Context, err error) string {
	if reason, ok := handshakeReason(err); ok && ctx.Err() == nil {
		return reason
	}
	if strings.Contains(err.Error(), "server refused TLS connection") { // pgconn says no more than this
		return tlsNotOffered
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == pgInvalidPassword || pe.Code == pgInvalidAuthSpec {
			return "auth failed"
		}
		return "error: postgresql " + pe.Code + ": " + clip(pe.Message)
	}
	return classify(ctx, err)
}
