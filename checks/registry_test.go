package checks

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixtures holds, for every registered kind, options with every field set
// away from its default. A new kind must add one: TestKey changes each of
// its fields in turn.
var fixtures = map[string]Options{
	"http": HTTPOptions{Method: "HEAD", Path: "/healthz", Host: "example.com",
		Headers: []Header{{"X-A", "1"}, {"X-B", "2"}}, ExpectStatus: []string{"200-299", "301"},
		ExpectBody: "ok", ExpectDigest: "0123456789abcdef0123456789abcdef", MaxBodyBytes: 100},
	"https": HTTPOptions{Method: "GET", Path: "/healthz", Host: "example.com",
		Headers: []Header{{"X-A", "1"}}, ExpectStatus: []string{"204"}, ExpectBody: "ok", MaxBodyBytes: 100,
		TLSOptions: TLSOptions{TLSSkipVerify: true, CAFile: "/etc/ca.pem", ServerName: "sni.example"}},
	"tcp": TCPOptions{Send: "PING\r\n", Expect: "PONG", TLS: true,
		TLSOptions: TLSOptions{TLSSkipVerify: true, CAFile: "/etc/ca.pem", ServerName: "sni.example"}},
	"icmp": ICMPOptions{Socket: ICMPSocketRaw},
	"dns": DNSOptions{QueryName: "www.example.com", QueryType: "A", Transport: "tcp", NoRecursion: true,
		ExpectRcode: "NXDOMAIN", ExpectAnswer: "192\\.0\\.2\\.1", EDNSSize: 1232},
	"grpc": GRPCOptions{Service: "orders.v1", TLS: true,
		TLSOptions: TLSOptions{TLSSkipVerify: true, CAFile: "/etc/ca.pem", ServerName: "sni.example"}},
	"mysql":      SQLOptions{Login: "probe", PasswordFile: "/etc/director/db.pw", Database: "app", Query: "SELECT 1"},
	"postgresql": SQLOptions{Login: "probe", PasswordFile: "/etc/director/pg.pw", Database: "app", Query: "SELECT 1"},
	"ldap": LDAPOptions{BindDN: "cn=probe,dc=example,dc=com", PasswordFile: "/etc/director/ldap.pw",
		SearchBase: "dc=example,dc=com", SearchFilter: "(cn=probe)"},
	"radius": RADIUSOptions{SecretFile: "/etc/director/radius.secret", Login: "probe",
		PasswordFile: "/etc/director/radius.pw", RejectIsUp: true},
	"none": NoneOptions{},
	"udp":  UDPOptions{Send: `\x00ping`, Expect: "pong"},
	"sip":  SIPOptions{Transport: "tcp", RequestURI: "sip:ping@sip.example", ExpectCode: []string{"200", "404"}},
	"exec": ExecOptions{Command: []string{"/bin/check", "-q"}, User: "nobody", DynamicWeight: true},
	"dialogue": DialogueOptions{Steps: []Step{{Expect: "^220 "}, {Send: `EHLO x\r\n`, Expect: "250", StartTLS: true}},
		TLS: true, TLSOptions: TLSOptions{TLSSkipVerify: true, CAFile: "/etc/ca.pem", ServerName: "sni.example"}},
}

func TestRegistry(t *testing.T) {
	var names []string
	for _, k := range Kinds() {
		if slices.Contains(names, k.Name) {
			t.Errorf("kind %q registered twice", k.Name)
		}
		names = append(names, k.Name)
		if k.Zero == nil || k.Decode == nil || k.build == nil {
			t.Errorf("kind %q lacks Zero, Decode or build", k.Name)
		}
		if _, ok := fixtures[k.Name]; !ok {
			t.Errorf("kind %q has no fixture in registry_test.go", k.Name)
		}
		var keys []string
		for _, key := range k.Keys {
			if slices.Contains(keys, key.Name) {
				t.Errorf("kind %q lists key %q twice", k.Name, key.Name)
			}
			keys = append(keys, key.Name)
		}
		if got, ok := LookupKind(k.Name); !ok || got.Name != k.Name {
			t.Errorf("LookupKind(%q) = %v, %v", k.Name, got.Name, ok)
		}
	}
	if _, ok := LookupKind("smtp"); ok {
		t.Error("LookupKind found an unregistered kind")
	}
	if got, want := KindNames(), []string{"http", "https", "tcp", "udp", "icmp", "dns", "grpc", "dialogue", "mysql", "postgresql", "ldap", "radius", "exec", "sip", "none"}; !slices.Equal(got, want) {
		t.Errorf("KindNames() = %v, want %v", got, want)
	}
	want := []string{"method", "path", "host", "headers", "expect_status", "expect_body", "expect_digest", "url", "max_body_bytes",
		"tls_skip_verify", "ca_file", "server_name", "send", "expect", "tls", "privileged",
		"query_name", "query_type", "transport", "recursion", "expect_rcode", "expect_answer", "edns_size", "grpc_service",
		"steps", "login", "password_file", "database", "query", "bind_dn", "search_base", "search_filter", "starttls",
		"secret_file", "reject_is_up", "command", "user", "dynamic_weight", "request_uri", "expect_code"}
	if got := OptionKeys(); !slices.Equal(got, want) {
		t.Errorf("OptionKeys() = %v, want %v", got, want)
	}
}

func TestUsedBy(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"path", "http and https checks without url entries"},
		{"url", "http and https checks"},
		{"server_name", "https checks and tcp, grpc, mysql and postgresql checks with tls = true and dialogue checks with tls = true or a starttls step and ldap checks with tls or starttls = true"},
		{"tls", "tcp, grpc, dialogue, mysql, postgresql and ldap checks (https checks always use TLS)"},
		{"starttls", "ldap checks"},
		{"send", "tcp and udp checks"},
		{"password_file", "mysql, postgresql, ldap and radius checks"},
		{"login", "mysql, postgresql and radius checks"},
		{"transport", "dns and sip checks"},
		{"privileged", "icmp checks"},
		{"expect_code", "sip checks"},
	} {
		if got := UsedBy(tt.key); got != tt.want {
			t.Errorf("UsedBy(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := PortlessKinds(); got != "icmp and none checks" {
		t.Errorf("PortlessKinds() = %q", got)
	}
	if got := andList([]string{"a", "b", "c"}); got != "a, b and c" {
		t.Errorf("andList = %q", got)
	}
}

// mutate changes v, whatever its type, to a different value.
func mutate(t *testing.T, v reflect.Value) {
	switch x := v.Interface().(type) {
	case netip.AddrPort:
		v.Set(reflect.ValueOf(netip.MustParseAddrPort("10.9.9.9:9")))
	case netip.Addr:
		v.Set(reflect.ValueOf(netip.MustParseAddr("10.9.9.8")))
	case time.Duration:
		v.Set(reflect.ValueOf(x + time.Nanosecond))
	case []Header:
		v.Set(reflect.ValueOf(append(slices.Clone(x), Header{"X", "y"})))
	case []string:
		v.Set(reflect.ValueOf(append(slices.Clone(x), "204")))
	case []HTTPURL:
		v.Set(reflect.ValueOf(append(slices.Clone(x), HTTPURL{Path: "/x"}))) // TestKeyURLs changes each entry's fields
	case []Step:
		v.Set(reflect.ValueOf(append(slices.Clone(x), Step{Send: "x"}))) // TestKeySteps changes each step's fields
	case string:
		v.SetString(x + "x")
	case bool:
		v.SetBool(!x)
	case ICMPSocket:
		v.Set(reflect.ValueOf((x + 1) % (ICMPSocketPing + 1)))
	case int64:
		v.SetInt(x + 1)
	default:
		t.Fatalf("mutate: no rule for %T: extend the test (and check Canonical covers it)", x)
	}
}

// leaves calls f with every field of the struct v, descending into
// embedded structs, named by path.
func leaves(v reflect.Value, path string, f func(path string, field reflect.Value)) {
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			leaves(v.Field(i), path+sf.Name+".", f)
			continue
		}
		f(path+sf.Name, v.Field(i))
	}
}

// TestKey: equal specs give equal keys; a change of any common field or
// of any option of any kind gives another key.
func TestKey(t *testing.T) {
	for _, k := range Kinds() {
		target := tgt
		if k.NoPort {
			target = netip.AddrPortFrom(tgt.Addr(), 0)
		}
		full := Spec{Type: k.Name, Target: target, Source: netip.MustParseAddr("10.0.0.1"),
			Timeout: time.Second, Interval: 2 * time.Second, Options: fixtures[k.Name]}
		if full.Key() != (Spec{Type: k.Name, Target: target, Source: full.Source, Timeout: time.Second,
			Interval: 2 * time.Second, Options: fixtures[k.Name]}).Key() {
			t.Errorf("%s: equal specs, different keys", k.Name)
		}
		if (Spec{Type: k.Name, Target: target}).Key() != (Spec{Type: k.Name, Target: target, Options: k.Zero}).Key() {
			t.Errorf("%s: nil options and Zero give different keys", k.Name)
		}
		for _, base := range []Spec{full, {Type: k.Name, Target: target, Options: k.Zero}} {
			// The common fields.
			for _, name := range []string{"Target", "Source", "Timeout", "Interval"} {
				s := base
				mutate(t, reflect.ValueOf(&s).Elem().FieldByName(name))
				if s.Key() == base.Key() {
					t.Errorf("%s: changing %s does not change the key %s", k.Name, name, s.canonical())
				}
			}
			// Whom the check is for, which only some kinds tell apart.
			for _, name := range []string{"VirtualServer", "RealServer"} {
				s := base
				mutate(t, reflect.ValueOf(&s).Elem().FieldByName(name))
				if changed := s.Key() != base.Key(); changed != k.PerServer {
					t.Errorf("%s: changing %s changes the key: %v, want %v", k.Name, name, changed, k.PerServer)
				}
			}
			// Every option.
			leaves(reflect.ValueOf(base.Options), "", func(path string, _ reflect.Value) {
				o := reflect.New(reflect.TypeOf(base.Options)).Elem()
				o.Set(reflect.ValueOf(base.Options))
				var field reflect.Value
				leaves(o, "", func(p string, f reflect.Value) {
					if p == path {
						field = f
					}
				})
				mutate(t, field)
				s := base
				s.Options = o.Interface().(Options)
				if s.Key() == base.Key() {
					t.Errorf("%s: changing %s does not change the key %s", k.Name, path, s.canonical())
				}
			})
		}
	}

	// Options written out at their defaults are the options left out.
	http := Spec{Type: "http", Target: tgt}
	for _, o := range []HTTPOptions{
		{Method: "GET"}, {Method: "get"}, {Path: "/"}, {ExpectStatus: []string{"200-299"}},
		{MaxBodyBytes: DefaultMaxBodyBytes}, {Headers: []Header{}}, {ExpectStatus: []string{}},
	} {
		s := http
		s.Options = o
		if s.Key() != http.Key() {
			t.Errorf("%+v: key differs from the defaults'", o)
		}
	}
	// The same options under another type are another check.
	if (Spec{Type: "http", Target: tgt}).Key() == (Spec{Type: "https", Target: tgt}).Key() {
		t.Error("http and https give the same key")
	}

	// Values cannot run into each other across fields.
	ambiguous := [][2]Options{
		{HTTPOptions{Headers: []Header{{"A", "b"}}}, HTTPOptions{Headers: []Header{{"A:", "b"}}}},
		{TCPOptions{Send: `" expect="x`}, TCPOptions{Expect: "x"}},
		{UDPOptions{Send: `\\x41`}, UDPOptions{Send: "A"}},
		{DialogueOptions{Steps: []Step{{Send: `x" expect="y`}}}, DialogueOptions{Steps: []Step{{Send: "x", Expect: "y"}}}},
		{DialogueOptions{Steps: []Step{{Send: "a"}, {Send: "b"}}}, DialogueOptions{Steps: []Step{{Send: "ab"}}}},
		{HTTPOptions{Headers: []Header{{"A", "1"}, {"B", "2"}}}, HTTPOptions{Headers: []Header{{"B", "2"}, {"A", "1"}}}},
	}
	for _, pair := range ambiguous {
		typ := kindOf(pair[0])
		a, b := Spec{Type: typ, Target: tgt, Options: pair[0]}, Spec{Type: typ, Target: tgt, Options: pair[1]}
		if a.Key() == b.Key() {
			t.Errorf("%+v and %+v give the same key", pair[0], pair[1])
		}
	}
}

// Each field of each step is part of the key, and so is their order.
func TestKeySteps(t *testing.T) {
	base := fixtures["dialogue"].(DialogueOptions)
	key := func(o DialogueOptions) string { return Spec{Type: "dialogue", Target: tgt, Options: o}.Key() }
	for i := range base.Steps {
		leaves(reflect.ValueOf(base.Steps[i]), "", func(path string, _ reflect.Value) {
			o := base
			o.Steps = slices.Clone(base.Steps)
			s := reflect.ValueOf(&o.Steps[i]).Elem()
			mutate(t, s.FieldByName(path))
			if key(o) == key(base) {
				t.Errorf("changing Steps[%d].%s does not change the key", i, path)
			}
		})
	}
	o := base
	o.Steps = []Step{base.Steps[1], base.Steps[0]}
	if key(o) == key(base) {
		t.Error("swapping two steps does not change the key")
	}
	o.Steps = nil
	if key(o) != key(DialogueOptions{TLS: true, TLSOptions: base.TLSOptions, Steps: []Step{}}) {
		t.Error("nil and empty steps give different keys")
	}
}

// Options that send the same bytes are the same check.
func TestKeySameBytes(t *testing.T) {
	for _, pair := range [][2]Options{
		{UDPOptions{Send: `\x41\r\n`}, UDPOptions{Send: "A\r\n"}},
		{DialogueOptions{Steps: []Step{{Send: `PING\r\n`}}}, DialogueOptions{Steps: []Step{{Send: "PING\r\n"}}}},
	} {
		typ := kindOf(pair[0])
		a, b := Spec{Type: typ, Target: tgt, Options: pair[0]}, Spec{Type: typ, Target: tgt, Options: pair[1]}
		if a.Key() != b.Key() {
			t.Errorf("%+v and %+v give different keys: %s, %s", pair[0], pair[1], a.canonical(), b.canonical())
		}
	}
}

// kindOf names the first kind whose options have the type of o.
func kindOf(o Options) string {
	for _, k := range Kinds() {
		if reflect.TypeOf(k.Zero) == reflect.TypeOf(o) {
			return k.Name
		}
	}
	return ""
}

// mapDecoder is a Decoder over a map, recording what the kind reports.
type mapDecoder struct {
	m        map[string]any
	problems []string
	unused   []string
}

func (d *mapDecoder) String(key string) (string, bool) { s, ok := d.m[key].(string); return s, ok }
func (d *mapDecoder) Bool(key string) (bool, bool)     { b, ok := d.m[key].(bool); return b, ok }
func (d *mapDecoder) Int(key string, min, max int64, what string) (int64, bool) {
	i, ok := d.m[key].(int64)
	if ok && (i < min || i > max) {
		d.Errorf(key, "%d is out of range; %s", i, what)
		return 0, false
	}
	return i, ok
}
func (d *mapDecoder) Strings(key string) ([]string, bool) { l, ok := d.m[key].([]string); return l, ok }
func (d *mapDecoder) StringTable(key, what string, check func(name, value string) string) (map[string]string, bool) {
	m, ok := d.m[key].(map[string]string)
	out := map[string]string{}
	for name, v := range m {
		if msg := check(name, v); msg != "" {
			d.Errorf(key+"."+name, "%s", msg)
			continue
		}
		out[name] = v
	}
	return out, ok
}
func (d *mapDecoder) Tables(key string, keys []string) ([]Decoder, bool) {
	ms, ok := d.m[key].([]map[string]any)
	var out []Decoder
	for i, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				d.Errorf(fmt.Sprintf("%s[%d].%s", key, i, k), "unknown key")
			}
		}
		out = append(out, &mapDecoder{m: m})
	}
	return out, ok
}
func (d *mapDecoder) File(key string) (string, bool) { return d.String(key) }
func (d *mapDecoder) Errorf(key, format string, a ...any) {
	d.problems = append(d.problems, key+": "+fmt.Sprintf(format, a...))
}
func (d *mapDecoder) Unused(keys ...string) { d.unused = append(d.unused, keys...) }

// TestDecode reads each kind's options through a Decoder, as the config
// does, and checks what the kind reports itself and what Validate adds.
func TestDecode(t *testing.T) {
	for _, tt := range []struct {
		kind     string
		m        map[string]any
		want     Options
		problems []string // reported while decoding
		invalid  []string // Validate's problems, as "key: msg"
		unused   []string
	}{
		{kind: "http", m: map[string]any{}, want: HTTPOptions{}},
		{kind: "http",
			m: map[string]any{"method": "head", "path": "/x", "headers": map[string]string{"B": "2", "A": "1", "Bad Name": "x"},
				"expect_status": []string{"204"}, "max_body_bytes": int64(10), "ca_file": "/ignored.pem"},
			want: HTTPOptions{Method: "head", Path: "/x", Headers: []Header{{"A", "1"}, {"B", "2"}},
				ExpectStatus: []string{"204"}, MaxBodyBytes: 10},
			problems: []string{`headers.Bad Name: "Bad Name" is not a valid HTTP header name`}},
		{kind: "http", m: map[string]any{"expect_status": []string{}, "max_body_bytes": int64(0)}, want: HTTPOptions{},
			problems: []string{"expect_status: must not be empty; leave it out to accept 200-299",
				"max_body_bytes: 0 is out of range; max_body_bytes must be 1-1073741824"}},
		{kind: "http", m: map[string]any{"method": "POST", "path": "x", "expect_body": "("},
			want:    HTTPOptions{Method: "POST", Path: "x", ExpectBody: "("},
			invalid: []string{`method: unknown method "POST"; valid: GET, HEAD`, `path: "x" must start with "/"`, "expect_body: invalid regular expression: error parsing regexp: missing closing ): `(`"}},
		{kind: "http", m: map[string]any{"method": "HEAD", "expect_body": "ok"}, want: HTTPOptions{Method: "HEAD", ExpectBody: "ok"},
			invalid: []string{"expect_body: a HEAD response has no body (use method GET) (with method)"}},
		{kind: "https", m: map[string]any{"server_name": "a.example", "tls_skip_verify": true},
			want: HTTPOptions{TLSOptions: TLSOptions{ServerName: "a.example", TLSSkipVerify: true}}},
		{kind: "tcp", m: map[string]any{"send": "x", "server_name": "a.example"}, want: TCPOptions{Send: "x"},
			unused: tlsKeys},
		{kind: "tcp", m: map[string]any{"tls": true, "server_name": "a.example", "expect": "[a"},
			want:    TCPOptions{TLS: true, Expect: "[a", TLSOptions: TLSOptions{ServerName: "a.example"}},
			invalid: []string{"expect: invalid regular expression: error parsing regexp: missing closing ]: `[a`"}},
		{kind: "icmp", m: map[string]any{"privileged": true, "path": "/"}, want: ICMPOptions{Socket: ICMPSocketRaw}},
		{kind: "icmp", m: map[string]any{"privileged": false}, want: ICMPOptions{Socket: ICMPSocketPing}},
		{kind: "icmp", m: map[string]any{}, want: ICMPOptions{Socket: ICMPSocketAuto}},
		{kind: "http", m: map[string]any{"path": "/ignored", "url": []map[string]any{{"path": "/a", "expect_digest": "x"}, {"expect_status": []string{"301"}}}},
			want: HTTPOptions{URLs: []HTTPURL{{Path: "/a", ExpectDigest: "x"}, {ExpectStatus: []string{"301"}}}},
			invalid: []string{`url[0].expect_digest: "x" is not a digest: want 32 hex digits (MD5, as keepalived's genhash prints) or "sha256:" and 64 hex digits`,
				`url[1].path: missing: each url entry needs its path, such as path = "/healthz"`},
			unused: []string{"path", "expect_status", "expect_body", "expect_digest"}},
		{kind: "dialogue", m: map[string]any{"steps": []map[string]any{{"expect": "^220"}, {"send": `QUIT\r\n`, "expect": "^221"}},
			"server_name": "a.example"},
			want:   DialogueOptions{Steps: []Step{{Expect: "^220"}, {Send: `QUIT\r\n`, Expect: "^221"}}},
			unused: tlsKeys},
		{kind: "dialogue", m: map[string]any{"steps": []map[string]any{{"send": "STLS\r\n", "expect": `^\+OK`, "starttls": true, "sned": "x"}},
			"server_name": "a.example"},
			want:     DialogueOptions{Steps: []Step{{Send: "STLS\r\n", Expect: `^\+OK`, StartTLS: true}}, TLSOptions: TLSOptions{ServerName: "a.example"}},
			problems: []string{"steps[0].sned: unknown key"}},
		{kind: "dialogue", m: map[string]any{"tls": true, "steps": []map[string]any{{}, {"send": `\q`, "expect": "("}, {"starttls": true}}},
			want: DialogueOptions{TLS: true, Steps: []Step{{}, {Send: `\q`, Expect: "("}, {StartTLS: true}}},
			invalid: []string{"steps[0]: a step needs send, expect or starttls",
				`steps[1].send: unknown escape \q at byte 0; escapes are \r \n \t \0 \\ and \xNN`,
				"steps[1].expect: invalid regular expression: error parsing regexp: missing closing ): `(`",
				"steps[2].starttls: the connection is TLS from the start (tls = true) (with tls)"}},
		{kind: "dialogue", m: map[string]any{"steps": []map[string]any{{"starttls": true}, {"send": "x"}, {"starttls": true}}},
			want:    DialogueOptions{Steps: []Step{{StartTLS: true}, {Send: "x"}, {StartTLS: true}}},
			invalid: []string{"steps[2].starttls: the connection is already TLS (starttls in steps[0])"}},
		{kind: "dialogue", m: map[string]any{}, want: DialogueOptions{}, unused: tlsKeys,
			invalid: []string{`steps: a dialogue check needs at least one step, such as { send = 'PING\r\n', expect = '^\+PONG' } (with type)`}},
		{kind: "udp", m: map[string]any{"send": `\x00\r\n`, "expect": "^ok", "tls": true}, want: UDPOptions{Send: `\x00\r\n`, Expect: "^ok"}},
		{kind: "udp", m: map[string]any{"send": `\q`, "expect": "("}, want: UDPOptions{Send: `\q`, Expect: "("},
			invalid: []string{`send: unknown escape \q at byte 0; escapes are \r \n \t \0 \\ and \xNN`,
				"expect: invalid regular expression: error parsing regexp: missing closing ): `(`"}},
		{kind: "dns", m: map[string]any{"query_name": "www.example.com", "query_type": "aaaa", "transport": "TCP",
			"recursion": false, "expect_rcode": "nxdomain", "expect_answer": "x", "edns_size": int64(4096)},
			want: DNSOptions{QueryName: "www.example.com", QueryType: "aaaa", Transport: "TCP", NoRecursion: true,
				ExpectRcode: "nxdomain", ExpectAnswer: "x", EDNSSize: 4096}},
		{kind: "grpc", m: map[string]any{"grpc_service": "orders.v1", "server_name": "a.example"}, want: GRPCOptions{Service: "orders.v1"},
			unused: tlsKeys},
		{kind: "grpc", m: map[string]any{"tls": true, "tls_skip_verify": true},
			want: GRPCOptions{TLS: true, TLSOptions: TLSOptions{TLSSkipVerify: true}}},
		{kind: "mysql", m: map[string]any{"login": "probe", "password_file": "/nonexistent/pw", "database": "app", "query": "SELECT 1"},
			want:     SQLOptions{Login: "probe", PasswordFile: "/nonexistent/pw", Database: "app", Query: "SELECT 1"},
			problems: []string{"password_file: cannot read /nonexistent/pw: no such file or directory"}, unused: tlsKeys},
		{kind: "postgresql", m: map[string]any{"login": "probe", "tls": true, "server_name": "db.test", "ca_file": "/nonexistent/ca.pem"},
			want:     SQLOptions{Login: "probe", TLS: true, TLSOptions: TLSOptions{ServerName: "db.test"}},
			problems: []string{"ca_file: cannot read /nonexistent/ca.pem: no such file or directory"}},
		{kind: "mysql", m: map[string]any{"database": "a\x00b"}, want: SQLOptions{Database: "a\x00b"}, unused: tlsKeys,
			invalid: []string{"login: missing: database checks log in as this user (ldirectord login=) (with type)",
				"database: must not contain NUL"}},
		{kind: "ldap", m: map[string]any{"bind_dn": "cn=a,dc=x", "password_file": "/p", "search_base": "dc=x", "search_filter": "(cn=a)"},
			want:     LDAPOptions{BindDN: "cn=a,dc=x", PasswordFile: "/p", SearchBase: "dc=x", SearchFilter: "(cn=a)"},
			problems: []string{"password_file: cannot read /p: no such file or directory"}, unused: tlsKeys},
		{kind: "ldap", m: map[string]any{"tls": true, "starttls": true, "server_name": "ldap.test"},
			want:    LDAPOptions{TLS: true, StartTLS: true, TLSOptions: TLSOptions{ServerName: "ldap.test"}},
			invalid: []string{"starttls: tls = true is LDAPS, TLS from the first byte (port 636); starttls = true upgrades a plain connection (port 389): set one (with tls)"}},
		{kind: "ldap", m: map[string]any{"bind_dn": "not a dn", "search_filter": "cn=a("},
			want: LDAPOptions{BindDN: "not a dn", SearchFilter: "cn=a("}, unused: tlsKeys,
			invalid: []string{`bind_dn: "not a dn" is not a DN (such as "cn=probe,dc=example,dc=com")`,
				`search_filter: "cn=a(" is not an LDAP filter`,
				"bind_dn: a DN needs password_file; without either the bind is anonymous (with password_file)",
				"search_filter: a filter needs search_base, the entry to search under (with search_base)"}},
		{kind: "radius", m: map[string]any{"secret_file": "/s", "login": "alice", "reject_is_up": true},
			want:     RADIUSOptions{SecretFile: "/s", Login: "alice", RejectIsUp: true},
			problems: []string{"secret_file: cannot read /s: no such file or directory"}},
		{kind: "radius", m: map[string]any{"login": strings.Repeat("a", 254)}, want: RADIUSOptions{Login: strings.Repeat("a", 254)},
			invalid: []string{"secret_file: missing: radius checks sign their requests with the shared secret in this file (with type)",
				"login: longer than a RADIUS User-Name (253 bytes)"}},
		{kind: "dns", m: map[string]any{"recursion": true, "edns_size": int64(100)}, want: DNSOptions{},
			problems: []string{"edns_size: 100 is out of range; edns_size must be 512-65535"}},
		{kind: "dns", m: map[string]any{"query_name": "a..b", "query_type": "QQ", "transport": "quic",
			"expect_rcode": "SOSO", "expect_answer": "("},
			want: DNSOptions{QueryName: "a..b", QueryType: "QQ", Transport: "quic", ExpectRcode: "SOSO", ExpectAnswer: "("},
			invalid: []string{`query_name: "a..b" is not a domain name`,
				`query_type: unknown query type "QQ"; use a record type such as A, AAAA, MX, SOA, SRV or TXT`,
				`transport: unknown transport "quic"; valid: udp, tcp`,
				`expect_rcode: unknown rcode "SOSO"; use a name such as NOERROR, NXDOMAIN, SERVFAIL or REFUSED`,
				"expect_answer: invalid regular expression: error parsing regexp: missing closing ): `(`"}},
	} {
		t.Run(fmt.Sprint(tt.kind, tt.m), func(t *testing.T) {
			k, _ := LookupKind(tt.kind)
			d := &mapDecoder{m: tt.m}
			got := k.Decode(d)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %#v, want %#v", got, tt.want)
			}
			if !slices.Equal(d.problems, tt.problems) {
				t.Errorf("problems %q, want %q", d.problems, tt.problems)
			}
			if !slices.Equal(d.unused, tt.unused) {
				t.Errorf("unused %q, want %q", d.unused, tt.unused)
			}
			if invalid := validation(got); !slices.Equal(invalid, tt.invalid) {
				t.Errorf("Validate: %q, want %q", invalid, tt.invalid)
			}
		})
	}
}

// validation is o's Validate problems as "key: msg (with keys)".
func validation(o Options) []string {
	var out []string
	for _, e := range o.Validate() {
		s := e.Error()
		if len(e.With) > 0 {
			s += " (with " + strings.Join(e.With, ", ") + ")"
		}
		out = append(out, s)
	}
	return out
}
