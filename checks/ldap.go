package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPOptions are the options of ldap checks: a bind, and optionally a
// search that must find at least one entry.
type LDAPOptions struct {
	// BindDN is the DN to bind as, with the password in PasswordFile;
	// empty: an anonymous bind.
	BindDN       string
	PasswordFile string
	// SearchBase, when set, is searched (the whole subtree) with
	// SearchFilter, default "(objectClass=*)", for at least one entry.
	SearchBase   string
	SearchFilter string
	// TLS is LDAPS: TLS from the first byte (port 636). StartTLS upgrades
	// a plain connection (port 389) with the StartTLS operation before the
	// bind. Either verifies the server as https checks do.
	TLS      bool
	StartTLS bool
	TLSOptions
}

var ldapKind = Kind{
	Name: "ldap",
	Keys: append([]Key{{Name: "bind_dn"}, {Name: "password_file"}, {Name: "search_base"}, {Name: "search_filter"},
		{Name: "tls", Note: "https checks always use TLS"}, {Name: "starttls"}}, tlsOptionKeys("with tls or starttls = true")...),
	Zero: LDAPOptions{}, Decode: decodeLDAP, build: newLDAP,
}

func decodeLDAP(d Decoder) Options {
	var o LDAPOptions
	o.BindDN, _ = d.String("bind_dn")
	o.PasswordFile = decodeSecretFile(d, "password_file", false)
	o.SearchBase, _ = d.String("search_base")
	o.SearchFilter, _ = d.String("search_filter")
	o.TLS, _ = d.Bool("tls")
	o.StartTLS, _ = d.Bool("starttls")
	if o.TLS || o.StartTLS {
		o.TLSOptions = decodeTLS(d)
	} else {
		d.Unused(tlsKeys...)
	}
	return o
}

const ldapDefaultFilter = "(objectClass=*)"

// Validate checks the DNs and the filter, and that a password and a
// filter come with what they need.
func (o LDAPOptions) Validate() []OptionError {
	var errs []OptionError
	for _, kv := range [][2]string{{"bind_dn", o.BindDN}, {"search_base", o.SearchBase}} {
		if _, err := ldap.ParseDN(kv[1]); err != nil {
			errs = append(errs, OptionError{Key: kv[0], Msg: fmt.Sprintf("%q is not a DN (such as \"cn=probe,dc=example,dc=com\")", kv[1])})
		}
	}
	if _, err := ldap.CompileFilter(o.filter()); err != nil {
		errs = append(errs, OptionError{Key: "search_filter", Msg: fmt.Sprintf("%q is not an LDAP filter", o.SearchFilter)})
	}
	switch {
	case o.PasswordFile != "" && o.BindDN == "":
		errs = append(errs, OptionError{Key: "password_file", With: []string{"bind_dn"},
			Msg: "a password needs bind_dn; without either the bind is anonymous"})
	case o.BindDN != "" && o.PasswordFile == "":
		errs = append(errs, OptionError{Key: "bind_dn", With: []string{"password_file"},
			Msg: "a DN needs password_file; without either the bind is anonymous"})
	}
	if o.TLS && o.StartTLS {
		errs = append(errs, OptionError{Key: "starttls", With: []string{"tls"},
			Msg: "tls = true is LDAPS, TLS from the first byte (port 636); starttls = true upgrades a plain connection (port 389): set one"})
	}
	if o.SearchFilter != "" && o.SearchBase == "" {
		errs = append(errs, OptionError{Key: "search_filter", With: []string{"search_base"},
			Msg: "a filter needs search_base, the entry to search under"})
	}
	return errs
}

func (o LDAPOptions) filter() string {
	if o.SearchFilter == "" {
		return ldapDefaultFilter
	}
	return o.SearchFilter
}

// Canonical renders every option with its default applied.
func (o LDAPOptions) Canonical() string {
	var c canonical
	c.str("bind_dn", o.BindDN)
	c.str("password_file", o.PasswordFile)
	c.str("search_base", o.SearchBase)
	c.str("search_filter", o.filter())
	c.boolean("tls", o.TLS)
	c.boolean("starttls", o.StartTLS)
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is "ldap 10.0.0.11:389" ("ldaps ...", "ldap+starttls ..."),
// then the search base if any.
func (o LDAPOptions) Describe(s Spec) string {
	d := "ldap "
	switch {
	case o.TLS:
		d = "ldaps "
	case o.StartTLS:
		d = "ldap+starttls "
	}
	d += s.Target.String()
	if o.SearchBase != "" {
		d += " " + o.SearchBase
	}
	return d
}

// ldapProber binds (as BindDN, or anonymously) and, with a search base,
// searches it for one entry. Each check has a connection of its own,
// LDAPS with tls, upgraded by StartTLS before the bind with starttls.
//
// Reasons: "auth failed" (invalid credentials), "no entries", "error:
// ldap <result>" for other results ("error: ldap No Such Object" for a
// search base that does not exist), and the connection's.
type ldapProber struct {
	spec *Spec
	opts LDAPOptions
	tls  *tls.Config // nil without tls or starttls
}

func newLDAP(spec *Spec, _ *Shared) (Prober, error) {
	p := &ldapProber{spec: spec, opts: spec.Options.(LDAPOptions)}
	if p.opts.TLS || p.opts.StartTLS {
		var err error
		if p.tls, err = tlsConfig(spec, p.opts.TLSOptions, ""); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Probe binds, searches and closes the connection, all within the deadline.
func (p *ldapProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *ldapProber) probe(ctx context.Context) string {
	var password string
	if p.opts.PasswordFile != "" {
		var err error
		if password, err = readSecret(p.opts.PasswordFile); err != nil {
			return "error: password_file: " + err.Error()
		}
	}
	var ldaps *tls.Config // TLS from the first byte
	if p.opts.TLS {
		ldaps = p.tls
	}
	raw, err := dial(ctx, p.spec, ldaps)
	if err != nil {
		return classify(ctx, err)
	}
	rc := &readErrConn{Conn: raw}
	defer deadlineConn(ctx, raw)()
	l := ldap.NewConn(rc, p.opts.TLS)
	l.Start()
	defer l.Close()
	// Close waits for its farewell at most this long.
	if dl, ok := ctx.Deadline(); ok {
		l.SetTimeout(max(time.Until(dl), time.Millisecond))
	}

	if p.opts.StartTLS {
		if err := l.StartTLS(p.tls); err != nil {
			return p.reason(ctx, err, rc)
		}
	}
	if p.opts.BindDN != "" {
		err = l.Bind(p.opts.BindDN, password)
	} else {
		err = l.UnauthenticatedBind("")
	}
	if err != nil {
		return p.reason(ctx, err, rc)
	}
	if p.opts.SearchBase == "" {
		return ""
	}
	res, err := l.Search(&ldap.SearchRequest{
		BaseDN: p.opts.SearchBase, Scope: ldap.ScopeWholeSubtree, DerefAliases: ldap.NeverDerefAliases,
		SizeLimit: 1, Filter: p.opts.filter(), Attributes: []string{"1.1"}, // no attributes
	})
	switch {
	case res != nil && len(res.Entries) > 0:
		// One entry is enough; a size limit reached after it is fine.
		return ""
	case err != nil:
		return p.reason(ctx, err, rc)
	}
	return "no entries"
}

// reason names a failed operation: LDAP results by name, a broken
// connection by what broke it.
func (p *ldapProber) reason(ctx context.Context, err error, rc *readErrConn) string {
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork { // the server's answer
		if le.ResultCode == ldap.LDAPResultInvalidCredentials {
			return "auth failed"
		}
		if name, ok := ldap.LDAPResultCodeMap[le.ResultCode]; ok {
			return "error: ldap " + name
		}
		return fmt.Sprintf("error: ldap result %d", le.ResultCode)
	}
	// The library reports a failed StartTLS handshake only as text.
	if _, cause, ok := strings.Cut(err.Error(), "TLS handshake failed ("); ok && ctx.Err() == nil {
		return tlsMessage(strings.TrimSuffix(cause, ")"))
	}
	if rerr := rc.err(); rerr != nil {
		return classify(ctx, rerr)
	}
	return classify(ctx, err)
}

// readErrConn keeps the first error a read returned, and a write the
// director was too late to make (late.go): the LDAP library reports a
// broken connection, and a failed StartTLS handshake, only as text.
type readErrConn struct {
	net.Conn
	mu    sync.Mutex
	first error
}

func (c *readErrConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.keep(err)
	}
	return n, err
}

func (c *readErrConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	var late *lateError
	if errors.As(err, &late) {
		c.keep(err)
	}
	return n, err
}

func (c *readErrConn) keep(err error) {
	c.mu.Lock()
	if c.first == nil {
		c.first = err
	}
	c.mu.Unlock()
}

func (c *readErrConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first
}
