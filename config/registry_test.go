package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
)

// The config reads each kind's keys through the prober registry: these
// cases show the registry's names, keys and validation reach the config's
// messages with their lines.
func TestCheckKindErrors(t *testing.T) {
	rs := "[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"
	for _, tt := range []struct {
		name string
		src  string
		want []string
	}{
		{"unknown kind", vs("[virtual_server.check]\ntype = \"gopher\"\n" + rs),
			[]string{`director.toml:5: virtual_server[web].check.type: unknown check type "gopher"; valid: ` + kindNames}},
		{"a protocol a dialogue checks", vs("[virtual_server.check]\ntype = \"smtp\"\n" + rs),
			[]string{`director.toml:5: virtual_server[web].check.type: unknown check type "smtp"; valid: ` + kindNames + ` (ldirectord's service = smtp is "dialogue")`}},
		{"another tool's name for a kind", vs("[virtual_server.check]\ntype = \"ping\"\n" + rs),
			[]string{`director.toml:5: virtual_server[web].check.type: unknown check type "ping"; valid: ` + kindNames + ` (ldirectord's ping is "icmp")`}},
		{"a kind's key misspelt", vs("[virtual_server.check]\ntype = \"http\"\n\nexpect_bdy = \"ok\"\n" + rs),
			[]string{`director.toml:7: virtual_server[web].check.expect_bdy: unknown key; did you mean "expect_body"?`}},
		{"a kind's key outside the check", vs("path = \"/\"\n" + rs),
			[]string{`director.toml:4: virtual_server[web].path: unknown key; path belongs in [virtual_server.check]`}},
		{"a kind's bad value", vs("[virtual_server.check]\ntype = \"https\"\nheaders = { Host = \"x\" }\nmax_body_bytes = 0\n" + rs),
			[]string{
				`director.toml:6: virtual_server[web].check.headers.Host: set the Host header with the host option`,
				`director.toml:7: virtual_server[web].check.max_body_bytes: 0 is out of range; max_body_bytes must be 1-1073741824`,
			}},
		{"a kind's value of the wrong type", vs("[virtual_server.check]\ntype = \"icmp\"\nprivileged = \"yes\"\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.privileged: must be true or false, not a string ("yes")`}},
		{"path judged by the prober", "[defaults.check]\npath = \"/a b\"\n",
			[]string{`director.toml:2: defaults.check.path: "/a b" contains spaces or control characters`}},
		{"tls keys of a tcp check without tls", vs("[virtual_server.check]\ntype = \"tcp\"\nca_file = \"x.pem\"\n" + rs),
			[]string{
				`director.toml:6: virtual_server[web].check.ca_file: cannot read x.pem: no such file or directory`,
				`director.toml:6: virtual_server[web].check.ca_file: ca_file is only used by ` + checks.UsedBy("ca_file") + `; this check's type is "tcp"`,
			}},
		{"a udp datagram with a bad escape", vs("[virtual_server.check]\ntype = \"udp\"\nsend = 'ping\\q'\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.send: unknown escape \q at byte 4; escapes are \r \n \t \0 \\ and \xNN`}},
		{"dialogue steps judged one by one, each at its line", vs("[virtual_server.check]\ntype = \"dialogue\"\nsteps = [\n" +
			"  { expect = '^220 ' },\n  { send = 'EHLO x\\q', expect = '(' },\n  { sned = 'x' },\n  { starttls = 1 },\n  'QUIT',\n]\n" + rs),
			[]string{
				`director.toml:8: virtual_server[web].check.steps[1].send: unknown escape \q at byte 6; escapes are \r \n \t \0 \\ and \xNN`,
				`director.toml:8: virtual_server[web].check.steps[1].expect: invalid regular expression: error parsing regexp: missing closing ): ` + "`(`",
				`director.toml:9: virtual_server[web].check.steps[2].sned: unknown key; did you mean "send"?`,
				`director.toml:9: virtual_server[web].check.steps[2]: a step needs send, expect or starttls`,
				`director.toml:10: virtual_server[web].check.steps[3].starttls: must be true or false, not an integer (1)`,
				`director.toml:10: virtual_server[web].check.steps[3]: a step needs send, expect or starttls`,
				`director.toml:11: virtual_server[web].check.steps[4]: must be a table, not a string ("QUIT")`,
			}},
		{"dialogue steps as [[...]] tables", vs("[virtual_server.check]\ntype = \"dialogue\"\ntls = true\n" +
			"[[virtual_server.check.steps]]\nexpect = '^220 '\n[[virtual_server.check.steps]]\nsend = 'STARTTLS\\r\\n'\nstarttls = true\n" + rs),
			[]string{`director.toml:11: virtual_server[web].check.steps[1].starttls: the connection is TLS from the start (tls = true)`}},
		{"a dialogue without steps", vs("[virtual_server.check]\ntype = \"dialogue\"\n" + rs),
			[]string{`director.toml:4: virtual_server[web].check.steps: a dialogue check needs at least one step, such as { send = 'PING\r\n', expect = '^\+PONG' }`}},
		{"dialogue steps as one table", vs("[virtual_server.check]\ntype = \"dialogue\"\n[virtual_server.check.steps]\nsend = 'x'\n" + rs),
			[]string{
				`director.toml:6: virtual_server[web].check.steps: must be an array of tables: write [[virtual_server.check.steps]], not [virtual_server.check.steps]`,
				`director.toml:6: virtual_server[web].check.steps: a dialogue check needs at least one step, such as { send = 'PING\r\n', expect = '^\+PONG' }`,
			}},
		{"steps on a tcp check", vs("[virtual_server.check]\ntype = \"tcp\"\nsteps = [{ send = 'x' }]\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.steps: steps is only used by dialogue checks; this check's type is "tcp"`}},
		{"http url entries judged one by one, each at its line", vs("[virtual_server.check]\ntype = \"http\"\n" +
			"[[virtual_server.check.url]]\npath = \"/a\"\nexpect_digest = \"abc\"\n[[virtual_server.check.url]]\nexpect_status = [\"999\"]\npth = \"/b\"\n" + rs),
			[]string{
				`director.toml:8: virtual_server[web].check.url[0].expect_digest: "abc" is not a digest: want 32 hex digits (MD5, as keepalived's genhash prints) or "sha256:" and 64 hex digits`,
				`director.toml:9: virtual_server[web].check.url[1].path: missing: each url entry needs its path, such as path = "/healthz"`,
				`director.toml:10: virtual_server[web].check.url[1].expect_status: invalid status "999": want a code 100-599 or a range like "200-299"`,
				`director.toml:11: virtual_server[web].check.url[1].pth: unknown key; did you mean "path"?`,
			}},
		{"a check's own path beside url entries", vs("[virtual_server.check]\ntype = \"http\"\npath = \"/x\"\nexpect_body = \"ok\"\n" +
			"[[virtual_server.check.url]]\npath = \"/a\"\n" + rs),
			[]string{
				`director.toml:6: virtual_server[web].check.path: path is only used by http and https checks without url entries; this check's type is "http"`,
				`director.toml:7: virtual_server[web].check.expect_body: expect_body is only used by http and https checks without url entries; this check's type is "http"`,
			}},
		{"exec command not absolute", vs("[virtual_server.check]\ntype = \"exec\"\ncommand = [\"check-db\", \"-q\"]\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.command: "check-db" must be an absolute path (no shell or PATH lookup is used)`}},
		{"exec without command", vs("[virtual_server.check]\ntype = \"exec\"\ndynamic_weight = true\n" + rs),
			[]string{`director.toml:4: virtual_server[web].check.command: an exec check needs a command, such as ["/usr/local/bin/check-db", "--quick"]`}},
		{"exec program missing", vs("[virtual_server.check]\ntype = \"exec\"\ncommand = [\"/nonexistent/check\"]\n" + rs),
			[]string{`director.toml:6: virtual_server[web].check.command: cannot run /nonexistent/check: no such file or directory`}},
		// Rules between options are judged on a virtual server's merged
		// check, where the problem lies: in [defaults.check] here.
		{"options that contradict each other", "[defaults.check]\ntype = \"http\"\nmethod = \"HEAD\"\nexpect_body = \"ok\"\n" +
			"[[virtual_server]]\nname = \"get\"\naddress = \"192.0.2.10:80\"\ncheck = { method = \"GET\" }\n" +
			"[[virtual_server]]\nname = \"head\"\naddress = \"192.0.2.10:81\"\n",
			[]string{`director.toml:4: defaults.check.expect_body: a HEAD response has no body (use method GET)`}},
		{"contradiction set by the virtual server", "[defaults.check]\ntype = \"http\"\nexpect_body = \"ok\"\n" +
			"[[virtual_server]]\nname = \"head\"\naddress = \"192.0.2.10:81\"\ncheck = { method = \"HEAD\" }\n",
			[]string{`director.toml:3: defaults.check.expect_body: a HEAD response has no body (use method GET)`}},
		{"dns options", vs("[virtual_server.check]\ntype = \"dns\"\nquery_type = \"QQ\"\nedns_size = 100\nrecursion = \"no\"\nexpect = \"x\"\n" + rs),
			[]string{
				`director.toml:6: virtual_server[web].check.query_type: unknown query type "QQ"; use a record type such as A, AAAA, MX, SOA, SRV or TXT`,
				`director.toml:7: virtual_server[web].check.edns_size: 100 is out of range; edns_size must be 512-65535`,
				`director.toml:8: virtual_server[web].check.recursion: must be true or false, not a string ("no")`,
				`director.toml:9: virtual_server[web].check.expect: expect is only used by ` + checks.UsedBy("expect") + `; this check's type is "dns"`,
			}},
		{"grpc options", vs("[virtual_server.check]\ntype = \"grpc\"\ngrpc_service = 5\nserver_name = \"a.example\"\n" + rs),
			[]string{
				`director.toml:6: virtual_server[web].check.grpc_service: must be a string, not an integer (5)`,
				`director.toml:7: virtual_server[web].check.server_name: server_name is only used by ` + checks.UsedBy("server_name") + `; this check's type is "grpc"`,
			}},
		// A login is required of the merged check, wherever it comes from;
		// the problem is reported where the key would go.
		{"mysql options", "[defaults.check]\npassword_file = \"nonexistent.pw\"\n" +
			vs("[virtual_server.check]\ntype = \"mysql\"\nquery = \"SELECT 1\"\n"+rs),
			[]string{
				`director.toml:2: defaults.check.password_file: cannot read nonexistent.pw: no such file or directory`,
				`director.toml:6: virtual_server[web].check.login: missing: database checks log in as this user (ldirectord login=)`,
			}},
		{"radius options", vs("[virtual_server.check]\ntype = \"radius\"\nreject_is_up = 1\nbind_dn = \"cn=x\"\n" + rs),
			[]string{
				`director.toml:4: virtual_server[web].check.secret_file: missing: radius checks sign their requests with the shared secret in this file`,
				`director.toml:6: virtual_server[web].check.reject_is_up: must be true or false, not an integer (1)`,
				`director.toml:7: virtual_server[web].check.bind_dn: bind_dn is only used by ldap checks; this check's type is "radius"`,
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sameLines(t, problems(t, tt.src), tt.want)
		})
	}
}

// Keys merge one at a time, [virtual_server.check] over [defaults.check],
// for every kind; keys of other kinds in [defaults.check] are unused.
func TestCheckDefaultsMergePerKind(t *testing.T) {
	defaults := `[defaults.check]
path = "/status"
host = "example.com"
headers = { X-A = "1" }
expect_body = "ok"
server_name = "sni.example"
send = "PING\r\n"
expect = "PONG"
privileged = true
`
	for _, tt := range []struct {
		check string
		want  checks.Options
	}{
		{`type = "http"`, checks.HTTPOptions{Path: "/status", Host: "example.com",
			Headers: []checks.Header{{Name: "X-A", Value: "1"}}, ExpectBody: "ok"}},
		{`type = "http", path = "/other", headers = { X-B = "2" }`, checks.HTTPOptions{Path: "/other", Host: "example.com",
			Headers: []checks.Header{{Name: "X-B", Value: "2"}}, ExpectBody: "ok"}},
		{`type = "https", expect_body = "fine"`, checks.HTTPOptions{Path: "/status", Host: "example.com",
			Headers: []checks.Header{{Name: "X-A", Value: "1"}}, ExpectBody: "fine",
			TLSOptions: checks.TLSOptions{ServerName: "sni.example"}}},
		{`type = "tcp"`, checks.TCPOptions{Send: "PING\r\n", Expect: "PONG"}},
		{`type = "tcp", tls = true, expect = "^\\+PONG"`, checks.TCPOptions{Send: "PING\r\n", Expect: `^\+PONG`, TLS: true,
			TLSOptions: checks.TLSOptions{ServerName: "sni.example"}}},
		{`type = "icmp"`, checks.ICMPOptions{Socket: checks.ICMPSocketRaw}},
		{`type = "dialogue", steps = [{ expect = "^220" }, { send = "QUIT\r\n", starttls = true }]`, checks.DialogueOptions{
			Steps:      []checks.Step{{Expect: "^220"}, {Send: "QUIT\r\n", StartTLS: true}},
			TLSOptions: checks.TLSOptions{ServerName: "sni.example"}}},
		{`type = "udp"`, checks.UDPOptions{Send: "PING\r\n", Expect: "PONG"}},
		{`type = "icmp", privileged = false`, checks.ICMPOptions{Socket: checks.ICMPSocketPing}},
	} {
		t.Run(tt.check, func(t *testing.T) {
			cfg := mustParse(t, defaults+vs("check = { "+tt.check+" }\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"))
			if got := cfg.VirtualServers[0].Checks[0].Options; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("options %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// url entries reach the check's options in order; [defaults.check]'s
// path and expectations give way to them silently.
func TestCheckURLEntries(t *testing.T) {
	src := "[defaults.check]\npath = \"/status\"\nexpect_body = \"ok\"\nhost = \"www.example\"\n" +
		vs("[virtual_server.check]\ntype = \"https\"\n"+
			"[[virtual_server.check.url]]\npath = \"/a\"\nexpect_digest = \"0123456789ABCDEF0123456789abcdef\"\n"+
			"[[virtual_server.check.url]]\npath = \"/b\"\nexpect_status = [\"200\", \"301\"]\nexpect_body = \"fine\"\n"+
			"[[virtual_server.real_server]]\naddress = \"10.0.0.1:443\"\n")
	cfg := mustParse(t, src)
	want := checks.HTTPOptions{Host: "www.example", URLs: []checks.HTTPURL{
		{Path: "/a", ExpectDigest: "0123456789ABCDEF0123456789abcdef"},
		{Path: "/b", ExpectStatus: []string{"200", "301"}, ExpectBody: "fine"}}}
	if got := cfg.VirtualServers[0].Checks[0].Options; !reflect.DeepEqual(got, want) {
		t.Errorf("options %#v\nwant %#v", got, want)
	}
	// In an array of checks, url entries go to the check above them.
	several := mustParse(t, vs("[[virtual_server.check]]\ntype = \"http\"\n[[virtual_server.check.url]]\npath = \"/a\"\n"+
		"[[virtual_server.check]]\ntype = \"http\"\nname = \"second\"\n[[virtual_server.check.url]]\npath = \"/b\"\n[[virtual_server.check.url]]\npath = \"/c\"\n"+
		"[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"))
	var paths [][]string
	for _, c := range several.VirtualServers[0].Checks {
		var p []string
		for _, u := range c.Options.(checks.HTTPOptions).URLs {
			p = append(p, u.Path)
		}
		paths = append(paths, p)
	}
	if !reflect.DeepEqual(paths, [][]string{{"/a"}, {"/b", "/c"}}) {
		t.Errorf("url paths per check: %q", paths)
	}
	inline := mustParse(t, vs("check = { type = \"http\", url = [{ path = \"/a\" }] }\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"))
	plain := mustParse(t, vs("check = { type = \"http\", path = \"/a\" }\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"))
	key := func(c *Config) string {
		v := &c.VirtualServers[0]
		return v.CheckSpec(&v.RealServers[0], &v.Checks[0]).Key()
	}
	if key(inline) != key(plain) {
		t.Error("one url entry and the same path on the check give different keys")
	}
}

// Checks that probe the same thing have the same key, however they are
// written; any change of an option gives another key.
func TestCheckSpecKeys(t *testing.T) {
	key := func(t *testing.T, check string) string {
		t.Helper()
		cfg := mustParse(t, vs("[virtual_server.check]\n"+check+"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"))
		vs := &cfg.VirtualServers[0]
		return vs.CheckSpec(&vs.RealServers[0], &vs.Checks[0]).Key()
	}
	same := [][2]string{
		{`type = "http"`, "type = \"http\"\nmethod = \"get\"\npath = \"/\"\nexpect_status = [\"200-299\"]\nmax_body_bytes = 65536"},
		{`type = "tcp"`, "rise = 5\nfall = 1"}, // thresholds are the health machine's, not the probe's
		{`type = "tcp"`, "type = \"tcp\"\ntls = false"},
	}
	for _, p := range same {
		if key(t, p[0]) != key(t, p[1]) {
			t.Errorf("%q and %q give different keys", p[0], p[1])
		}
	}
	// privileged unset falls back to raw sockets; false does not.
	if key(t, "type = \"icmp\"") == key(t, "type = \"icmp\"\nprivileged = false") {
		t.Error("icmp checks with privileged unset and false give the same key")
	}
	base := map[string]string{
		"http":            "type = \"http\"\nmethod = \"GET\"\npath = \"/a\"\nhost = \"h\"\nheaders = { A = \"1\" }\nexpect_status = [\"200\"]\nmax_body_bytes = 100",
		"tcp":             "type = \"tcp\"\nsend = \"a\"\nexpect = \"b\"\ntls = true\ntls_skip_verify = false\nserver_name = \"s\"",
		"icmp":            "type = \"icmp\"\nprivileged = false",
		"tcp without tls": "type = \"tcp\"",
	}
	changes := map[string][]string{
		"http": {`method = "HEAD"`, `path = "/b"`, `host = "i"`, `headers = { A = "2" }`, `headers = { B = "1" }`,
			`expect_status = ["201"]`, `expect_body = "okay"`, `max_body_bytes = 101`, `type = "https"`},
		"tcp":             {`send = "c"`, `expect = "c"`, `tls_skip_verify = true`, `server_name = "t"`},
		"icmp":            {`privileged = true`},
		"tcp without tls": {`tls = true`},
	}
	common := []string{`interval = "6s"`, `timeout = "1s"`, `port = 81`, `address = "10.0.0.2"`, `source = "10.0.0.9"`}
	for kind, src := range base {
		k := key(t, src)
		for _, c := range append(changes[kind], common...) {
			if kind == "icmp" && c == "port = 81" {
				continue
			}
			name := strings.SplitN(c, " ", 2)[0]
			var lines []string
			for _, l := range strings.Split(src, "\n") {
				if !strings.HasPrefix(l, name+" ") {
					lines = append(lines, l)
				}
			}
			if key(t, strings.Join(append(lines, c), "\n")) == k {
				t.Errorf("%s: %s does not change the key", kind, c)
			}
		}
	}
}

func TestCheckSpec(t *testing.T) {
	vs := VirtualServer{Name: "web", Checks: []Check{{Type: "http", Interval: time.Second, Timeout: time.Millisecond,
		Source: netip.MustParseAddr("10.0.0.9"), Options: checks.HTTPOptions{Path: "/x"}}}}
	rs := RealServer{Address: netip.MustParseAddrPort("10.0.0.1:8080")}
	want := checks.Spec{Type: "http", Target: rs.Address, Source: vs.Checks[0].Source, Timeout: time.Millisecond,
		Interval: time.Second, Options: checks.HTTPOptions{Path: "/x"}, VirtualServer: "web", RealServer: rs.Address}
	if got := vs.CheckSpec(&rs, &vs.Checks[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("CheckSpec = %+v, want %+v", got, want)
	}
	vs.Checks[0].Port, vs.Checks[0].Address = 81, netip.MustParseAddr("10.0.0.2")
	if got := vs.CheckSpec(&rs, &vs.Checks[0]).Target; got != netip.MustParseAddrPort("10.0.0.2:81") {
		t.Errorf("target with the check's address and port = %v", got)
	}
}

// Identical checks of one real server in two virtual servers are one
// check, except for kinds that tell whom they are for (exec).
func TestCheckSharedAcrossVirtualServers(t *testing.T) {
	for _, tt := range []struct {
		check string
		want  string
	}{
		{`type = "tcp"`, "1 check"},
		{`type = "exec", command = ["/bin/true"]`, "2 checks"},
	} {
		src := "[defaults.check]\n" + strings.ReplaceAll(strings.Trim(tt.check, " "), ", ", "\n") + "\n" +
			"[[virtual_server]]\nname = \"a\"\naddress = \"192.0.2.10:80\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n" +
			"[[virtual_server]]\nname = \"b\"\naddress = \"192.0.2.10:81\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"
		cfg := mustParse(t, src)
		if got := cfg.Summary(); !strings.HasSuffix(got, ", "+tt.want) {
			t.Errorf("%s: %s, want %s", tt.check, got, tt.want)
		}
	}
}

// kindNames is the list of check types messages give, from the registry,
// so that adding a prober changes no expected message here.
var kindNames = strings.Join(checks.KindNames(), ", ")
