package config

import (
	"crypto/x509"
	"errors"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/internal/safefile"
)

// maxCAFileBytes caps the read of a ca_file: a bundle of every public CA
// is about 200 KB.
const maxCAFileBytes = 4 << 20

var (
	checkTypes   = []string{"http", "https", "tcp", "icmp"}
	checkMethods = []string{"GET", "HEAD"}
	checkKeys    = []string{
		"type", "interval", "timeout", "rise", "fall", "port", "address", "source",
		"method", "path", "host", "headers", "expect_status", "expect_body", "max_body_bytes",
		"tls_skip_verify", "ca_file", "server_name", "send", "expect", "tls", "privileged",
	}
)

// Built-in check defaults, used where neither [defaults.check] nor the
// virtual server's check sets a value.
const (
	defaultCheckType    = "tcp"
	defaultInterval     = 5 * time.Second
	defaultTimeout      = 2 * time.Second
	defaultRise         = 2
	defaultFall         = 3
	defaultMethod       = "GET"
	defaultPath         = "/"
	defaultMaxBodyBytes = 64 << 10
	defaultExpectStatus = "200-299"
)

// opt is one check setting as written in one table: Set when present and
// valid, N says where.
type opt[T any] struct {
	V   T
	Set bool
	N   node
}

func set[T any](v T, n node, ok bool) opt[T] { return opt[T]{V: v, Set: ok, N: n} }

// pick returns the first set option (the virtual server's before the
// defaults'), or a zero opt holding dflt.
func pick[T any](dflt T, os ...opt[T]) opt[T] {
	for _, o := range os {
		if o.Set {
			return o
		}
	}
	return opt[T]{V: dflt}
}

// rawCheck is one check table ([defaults.check] or [virtual_server.check])
// with each value checked on its own; cross-field rules wait for the merge.
type rawCheck struct {
	t                              table
	Type                           opt[string]
	Interval                       opt[time.Duration]
	Timeout                        opt[time.Duration]
	Rise, Fall                     opt[int]
	Port                           opt[uint16]
	Address                        opt[netip.Addr]
	Source                         opt[netip.Addr]
	Method                         opt[string]
	Path                           opt[string]
	Host                           opt[string]
	Headers                        opt[map[string]string]
	ExpectStatus                   opt[[]string]
	ExpectBody                     opt[string]
	MaxBodyBytes                   opt[int64]
	TLSSkipVerify, TLS, Privileged opt[bool]
	CAFile                         opt[string]
	ServerName                     opt[string]
	Send, Expect                   opt[string]
}

// present reports whether the table wrote key at all (valid or not).
func (r rawCheck) present(key string) bool { return r.t.m != nil && r.t.has(key) }

func (l *loader) parseCheck(t table, sec section) rawCheck {
	t.unknown(sec)
	r := rawCheck{t: t}
	r.Type = set(t.enum("type", "check type", checkTypes, map[string]string{
		"http_get": `keepalived's HTTP_GET is "http"`, "ssl_get": `keepalived's SSL_GET is "https"`,
		"connect": `ldirectord's connect is "tcp"`, "ping": `ldirectord's ping is "icmp"`,
		"tcp_check": `keepalived's TCP_CHECK is "tcp"`,
	}))
	r.Interval = set(t.positive("interval"))
	r.Timeout = set(t.positive("timeout"))
	rise, n, ok := t.intRange("rise", 1, 1000, "rise must be 1-1000")
	r.Rise = set(int(rise), n, ok)
	fall, n, ok := t.intRange("fall", 1, 1000, "fall must be 1-1000")
	r.Fall = set(int(fall), n, ok)
	port, n, ok := t.intRange("port", 1, 65535, "ports are 1-65535")
	r.Port = set(uint16(port), n, ok)
	r.Address = set(l.ipOnly(t, "address"))
	r.Source = set(l.ipOnly(t, "source"))

	if s, n, ok := t.str("method"); ok {
		up := strings.ToUpper(s)
		if contains(checkMethods, up) {
			r.Method = set(up, n, true)
		} else {
			l.errorf(n, "unknown method %q; valid: %s", s, strings.Join(checkMethods, ", "))
		}
	}
	if s, n, ok := t.str("path"); ok {
		if strings.HasPrefix(s, "/") {
			r.Path = set(s, n, true)
		} else {
			l.errorf(n, "%q must start with \"/\"", s)
		}
	}
	r.Host = set(t.str("host"))
	r.ServerName = set(t.str("server_name"))
	r.Headers = l.headers(t)
	if list, n, ok := t.strList("expect_status"); ok {
		if _, err := checks.ParseStatusRanges(list); err != nil {
			l.errorf(n, "%v", err)
		} else if len(list) == 0 {
			l.errorf(n, "must not be empty; leave it out to accept 200-299")
		} else {
			r.ExpectStatus = set(list, n, true)
		}
	}
	r.ExpectBody = l.regex(t, "expect_body")
	r.Expect = l.regex(t, "expect")
	r.Send = set(t.str("send"))
	max, n, ok := t.intRange("max_body_bytes", 1, 1<<30, "max_body_bytes must be 1-1073741824")
	r.MaxBodyBytes = set(max, n, ok)
	r.TLSSkipVerify = set(t.boolean("tls_skip_verify"))
	r.TLS = set(t.boolean("tls"))
	r.Privileged = set(t.boolean("privileged"))
	if s, n, ok := t.str("ca_file"); ok {
		r.CAFile = set(l.caFile(s, n))
	}
	return r
}

func (l *loader) ipOnly(t table, key string) (netip.Addr, node, bool) {
	s, n, ok := t.str(key)
	if !ok {
		return netip.Addr{}, n, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, err := netip.ParseAddrPort(s); err == nil {
			l.errorf(n, "%q must be an IP address without a port; the check's port goes in port", s)
		} else {
			l.errorf(n, "%q is not an IP address", s)
		}
		return netip.Addr{}, n, false
	}
	if a.Zone() != "" {
		l.errorf(n, "%q: IPv6 zones are not supported", s)
		return netip.Addr{}, n, false
	}
	if a.Is4In6() {
		a = a.Unmap()
		l.warnf(n, "%s", mappedWarning(s, a.String()))
	}
	return a, n, true
}

func (l *loader) headers(t table) opt[map[string]string] {
	ht, ok := t.sub("headers")
	if !ok {
		return opt[map[string]string]{N: t.n.child("headers")}
	}
	out := make(map[string]string, len(ht.m))
	good := true
	names := make([]string, 0, len(ht.m))
	for name := range ht.m {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := ht.m[name]
		n := ht.n.child(name)
		s, isStr := v.(string)
		switch {
		case !isStr:
			l.errorf(n, "header values must be strings, not %s", describe(v))
			good = false
		case !validHeaderName(name):
			l.errorf(n, "%q is not a valid HTTP header name", name)
			good = false
		case strings.ContainsAny(s, "\r\n"):
			l.errorf(n, "header values must not contain line breaks")
			good = false
		default:
			out[name] = s
		}
	}
	return opt[map[string]string]{V: out, Set: good, N: ht.n}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func (l *loader) regex(t table, key string) opt[string] {
	s, n, ok := t.str(key)
	if !ok {
		return opt[string]{N: n}
	}
	if _, err := regexp.Compile(s); err != nil {
		l.errorf(n, "invalid regular expression: %v", err)
		return opt[string]{N: n}
	}
	return opt[string]{V: s, Set: true, N: n}
}

// caFile resolves a relative path against the config file's directory and
// checks that it holds at least one PEM certificate.
func (l *loader) caFile(s string, n node) (string, node, bool) {
	if s == "" {
		l.errorf(n, "must not be empty")
		return "", n, false
	}
	p := s
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir, p)
	}
	data, err := safefile.ReadFile(p, maxCAFileBytes)
	switch {
	case errors.Is(err, safefile.ErrNotRegular) || errors.Is(err, safefile.ErrTooLarge):
		l.errorf(n, "%v", err)
		return "", n, false
	case err != nil:
		l.errorf(n, "cannot read %s: %v", p, unwrapPath(err))
		return "", n, false
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		l.errorf(n, "%s holds no PEM certificates", p)
		return "", n, false
	}
	return p, n, true
}

// mergeCheck applies vs over def over the built-in defaults, and reports
// rules that involve several keys. Keys the virtual server's own check
// sets must suit the check type; keys inherited from [defaults.check] are
// simply unused by types they do not apply to.
func (l *loader) mergeCheck(def, vs rawCheck) Check {
	typ := pick(defaultCheckType, vs.Type, def.Type)
	interval := pick(defaultInterval, vs.Interval, def.Interval)
	timeout := pick(defaultTimeout, vs.Timeout, def.Timeout)
	tls := pick(false, vs.TLS, def.TLS)
	c := Check{
		Type:          typ.V,
		Interval:      interval.V,
		Timeout:       timeout.V,
		Rise:          pick(defaultRise, vs.Rise, def.Rise).V,
		Fall:          pick(defaultFall, vs.Fall, def.Fall).V,
		Port:          pick(0, vs.Port, def.Port).V,
		Address:       pick(netip.Addr{}, vs.Address, def.Address).V,
		Source:        pick(netip.Addr{}, vs.Source, def.Source).V,
		Method:        pick(defaultMethod, vs.Method, def.Method).V,
		Path:          pick(defaultPath, vs.Path, def.Path).V,
		Host:          pick("", vs.Host, def.Host).V,
		Headers:       pick(nil, vs.Headers, def.Headers).V,
		ExpectStatus:  pick([]string{defaultExpectStatus}, vs.ExpectStatus, def.ExpectStatus).V,
		ExpectBody:    pick("", vs.ExpectBody, def.ExpectBody).V,
		MaxBodyBytes:  pick(int64(defaultMaxBodyBytes), vs.MaxBodyBytes, def.MaxBodyBytes).V,
		TLSSkipVerify: pick(false, vs.TLSSkipVerify, def.TLSSkipVerify).V,
		CAFile:        pick("", vs.CAFile, def.CAFile).V,
		ServerName:    pick("", vs.ServerName, def.ServerName).V,
		Send:          pick("", vs.Send, def.Send).V,
		Expect:        pick("", vs.Expect, def.Expect).V,
		TLS:           tls.V,
		Privileged:    pick(false, vs.Privileged, def.Privileged).V,
	}
	if len(c.Headers) == 0 {
		c.Headers = nil
	}

	// timeout < interval, unless either was written wrongly (already reported).
	bad := func(key string) bool {
		return (vs.present(key) && !pickFrom(vs, key)) || (def.present(key) && !pickFrom(def, key))
	}
	if !bad("timeout") && !bad("interval") && c.Timeout >= c.Interval {
		n := timeout.N
		if !timeout.Set {
			n = interval.N
		}
		l.errorf(n, "timeout (%s) must be shorter than interval (%s)", c.Timeout, c.Interval)
	}

	if bad("type") || vs.t.m == nil {
		return c
	}
	httpLike := c.Type == "http" || c.Type == "https"
	usesTLS := c.Type == "https" || c.Type == "tcp" && c.TLS
	rules := []struct {
		keys []string
		ok   bool
		msg  string
	}{
		{[]string{"method", "path", "host", "headers", "expect_status", "expect_body", "max_body_bytes"}, httpLike, "is only used by http and https checks"},
		{[]string{"tls_skip_verify", "ca_file", "server_name"}, usesTLS, "is only used by https checks and tcp checks with tls = true"},
		{[]string{"send", "expect"}, c.Type == "tcp", "is only used by tcp checks"},
		{[]string{"tls"}, c.Type == "tcp", "is only used by tcp checks (https checks always use TLS)"},
		{[]string{"privileged"}, c.Type == "icmp", "is only used by icmp checks"},
		{[]string{"port"}, c.Type != "icmp", "is not used by icmp checks"},
	}
	for _, r := range rules {
		if r.ok {
			continue
		}
		for _, k := range r.keys {
			if vs.present(k) {
				l.errorf(vs.t.n.child(k), "%s %s; this check's type is %q", k, r.msg, c.Type)
			}
		}
	}
	return c
}

// pickFrom reports whether r holds a valid value for key.
func pickFrom(r rawCheck, key string) bool {
	switch key {
	case "type":
		return r.Type.Set
	case "interval":
		return r.Interval.Set
	case "timeout":
		return r.Timeout.Set
	}
	return true
}
