package checks

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// SQLOptions are the options of mysql and postgresql checks: log in and,
// optionally, run a query that must return at least one row (ldirectord's
// mysql and pgsql checks).
type SQLOptions struct {
	Login        string // user to log in as; required
	PasswordFile string // file holding the password; none: log in without one
	Database     string // database to connect to; default the server's
	Query        string // run after login; must return at least one row
	// TLS asks the server to switch to TLS before the login (MySQL's and
	// PostgreSQL's own negotiation), verified as https checks do; a server
	// that does not offer it fails the check.
	TLS bool
	TLSOptions
}

// sqlKeys are the option keys of mysql and postgresql checks.
var sqlKeys = append([]Key{{Name: "login"}, {Name: "password_file"}, {Name: "database"}, {Name: "query"}}, switchedTLSKeys()...)

func decodeSQL(d Decoder) Options {
	var o SQLOptions
	o.Login, _ = d.String("login")
	o.PasswordFile = decodeSecretFile(d, "password_file", false)
	o.Database, _ = d.String("database")
	o.Query, _ = d.String("query")
	o.TLS, o.TLSOptions = decodeSwitchedTLS(d)
	return o
}

// Validate checks that there is a login and that no value holds a NUL,
// which neither protocol can carry.
func (o SQLOptions) Validate() []OptionError {
	var errs []OptionError
	if o.Login == "" {
		errs = append(errs, OptionError{Key: "login", With: []string{"type"},
			Msg: "missing: database checks log in as this user (ldirectord login=)"})
	}
	for _, kv := range [][2]string{{"login", o.Login}, {"database", o.Database}, {"query", o.Query}} {
		if strings.ContainsRune(kv[1], 0) {
			errs = append(errs, OptionError{Key: kv[0], Msg: "must not contain NUL"})
		}
	}
	return errs
}

// Canonical renders every option.
func (o SQLOptions) Canonical() string {
	var c canonical
	c.str("login", o.Login)
	c.str("password_file", o.PasswordFile)
	c.str("database", o.Database)
	c.str("query", o.Query)
	c.boolean("tls", o.TLS)
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is "mysql probe@10.0.0.11:3306/app", without "/app" when no
// database is named.
func (o SQLOptions) Describe(s Spec) string {
	d := fmt.Sprintf("%s %s@%s", s.Type, o.Login, s.Target)
	if o.Database != "" {
		d += "/" + o.Database
	}
	return d
}

// tlsConfig is the client TLS configuration of a check with tls = true,
// nil without.
func (o SQLOptions) tlsConfig(spec *Spec) (*tls.Config, error) {
	if !o.TLS {
		return nil, nil
	}
	return tlsConfig(spec, o.TLSOptions, "")
}

// password reads the password file, if any, for one check.
func (o SQLOptions) password() (string, error) {
	if o.PasswordFile == "" {
		return "", nil
	}
	return readSecret(o.PasswordFile)
}
