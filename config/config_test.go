package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
)

const file = "director.toml"

// problems parses src and returns its rendered problems, failing the test
// if it parses cleanly or returns something other than *Errors.
func problems(t *testing.T, src string) []string {
	t.Helper()
	return problemsIn(t, file, src)
}

func problemsIn(t *testing.T, name, src string) []string {
	t.Helper()
	cfg, err := Parse(name, []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded, want errors; config: %+v", cfg)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config along with errors")
	}
	out := make([]string, len(errs.Problems))
	for i, p := range errs.Problems {
		out[i] = p.String()
	}
	if got := strings.Join(out, "\n"); got != err.Error() {
		t.Errorf("Error() = %q, want the problems one per line: %q", err.Error(), got)
	}
	return out
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func defaultCheck() Check {
	return Check{
		Type: "tcp", Name: "tcp", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3,
		Options: checks.TCPOptions{},
	}
}

func TestMinimalConfigDefaults(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"

  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"
`)
	want := &Config{
		Path: file,
		Director: Director{
			Listen: "127.0.0.1:9410", ResyncInterval: 30 * time.Second,
			OnFailure: "quiesce", OnShutdown: "keep", DrainTimeout: 5 * time.Minute, Damping: defaultDamping(), KernelStats: "backends", FastChecks: true,
		},
		Notify:   Notify{Timeout: DefaultNotifyTimeout},
		Announce: Announce{HoldDown: DefaultHoldDown, WithdrawGrace: DefaultWithdrawGrace, UnhealthyAfter: DefaultUnhealthyAfter},
		VirtualServers: []VirtualServer{{
			Name:               "web",
			Address:            netip.MustParseAddrPort("192.0.2.10:80"),
			Family:             "ipv4",
			Protocol:           "tcp",
			Scheduler:          "wlc",
			PersistenceNetmask: 32,
			Forwarding:         "nat",
			OnFailure:          "quiesce",
			DrainTimeout:       5 * time.Minute,
			Notify:             Notify{Timeout: DefaultNotifyTimeout},
			Quorum:             DefaultQuorum,
			Announce:           VIPAnnounce{Rule: "all"},
			Checks:             []Check{defaultCheck()},
			RealServers: []RealServer{{
				Address: netip.MustParseAddrPort("10.0.0.11:8080"), Weight: 1, Forwarding: "nat", Line: 5,
			}},
			Line: 1,
		}},
		Warnings: []Problem{},
	}
	if len(cfg.SHA256) != 64 {
		t.Errorf("SHA256 = %q, want 64 hex digits", cfg.SHA256)
	}
	want.SHA256 = cfg.SHA256
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestFullConfig(t *testing.T) {
	cfg := mustParse(t, `[director]
listen = "[::1]:9999"
resync_interval = "1m"
on_failure = "remove"
on_shutdown = "flush"

[defaults.check]
type = "http"
interval = "10s"
timeout = "3s"
rise = 4
path = "/status"
host = "example.com"
headers = { "X-Probe" = "director" }
expect_body = "ok"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "wrr"
persistence = "300s"
persistence_netmask = 24
forwarding = "dr"
on_failure = "quiesce"
fallback = "192.0.2.99"

  [[virtual_server.real_server]]
  address = "10.0.0.11:80"
  weight = 100

  [[virtual_server.real_server]]
  address = "10.0.0.12"
  weight = 0
  forwarding = "tun"

[[virtual_server]]
name = "api"
address = "192.0.2.10:443"
protocol = "tcp"

  [virtual_server.check]
  type = "tcp"
  fall = 1
  send = "PING\r\n"
  expect = "PONG"

  [[virtual_server.real_server]]
  address = "10.0.0.21:8443"
`)
	d := Director{Listen: "[::1]:9999", ResyncInterval: time.Minute, OnFailure: "remove", OnShutdown: "flush", DrainTimeout: 5 * time.Minute, Damping: defaultDamping(), KernelStats: "backends", FastChecks: true}
	if cfg.Director != d {
		t.Errorf("director = %+v, want %+v", cfg.Director, d)
	}
	if len(cfg.VirtualServers) != 2 {
		t.Fatalf("got %d virtual servers", len(cfg.VirtualServers))
	}
	web, api := cfg.VirtualServers[0], cfg.VirtualServers[1]

	wantWebCheck := defaultCheck()
	wantWebCheck.Type, wantWebCheck.Name = "http", "http"
	wantWebCheck.Interval = 10 * time.Second
	wantWebCheck.Timeout = 3 * time.Second
	wantWebCheck.Rise = 4
	wantWebCheck.Options = checks.HTTPOptions{Path: "/status", Host: "example.com",
		Headers: []checks.Header{{Name: "X-Probe", Value: "director"}}, ExpectBody: "ok"}
	if !reflect.DeepEqual(web.Checks[0], wantWebCheck) {
		t.Errorf("web check = %+v\nwant %+v", web.Checks[0], wantWebCheck)
	}
	if web.Scheduler != "wrr" || web.Persistence != 300*time.Second || web.PersistenceNetmask != 24 ||
		web.Forwarding != "dr" || web.OnFailure != "quiesce" || web.Line != 17 {
		t.Errorf("web = %+v", web)
	}
	// dr and tun take the service's port when none is given.
	if web.Fallback != netip.MustParseAddrPort("192.0.2.99:80") {
		t.Errorf("fallback = %v", web.Fallback)
	}
	wantRS := []RealServer{
		{Address: netip.MustParseAddrPort("10.0.0.11:80"), Weight: 100, Forwarding: "dr", Line: 27},
		{Address: netip.MustParseAddrPort("10.0.0.12:80"), Weight: 0, Forwarding: "tun", Line: 31},
	}
	if !reflect.DeepEqual(web.RealServers, wantRS) {
		t.Errorf("web real servers = %+v\nwant %+v", web.RealServers, wantRS)
	}

	// The api check overrides type and fall; everything else still comes
	// from [defaults.check], whose http keys a tcp check does not use.
	wantAPICheck := wantWebCheck
	wantAPICheck.Type, wantAPICheck.Name = "tcp", "tcp"
	wantAPICheck.Fall = 1
	wantAPICheck.Options = checks.TCPOptions{Send: "PING\r\n", Expect: "PONG"}
	if !reflect.DeepEqual(api.Checks[0], wantAPICheck) {
		t.Errorf("api check = %+v\nwant %+v", api.Checks[0], wantAPICheck)
	}
	if api.OnFailure != "remove" || api.Forwarding != "nat" || api.RealServers[0].Forwarding != "nat" || api.PersistenceNetmask != 32 {
		t.Errorf("api = %+v", api)
	}
	if got, want := cfg.Summary(), "director.toml: 2 virtual servers, 3 real servers, 3 checks"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
}

func TestMaxConnections(t *testing.T) {
	if got := mustParse(t, "[director]\nmax_connections = 64\n").Director.MaxConnections; got != 64 {
		t.Errorf("max_connections = 64 gives %d", got)
	}
	if got := mustParse(t, "").Director.MaxConnections; got != 0 {
		t.Errorf("max_connections unset gives %d, want 0 (derived at start)", got)
	}
}

func TestIPv6VirtualServer(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "v6"
address = "[2001:db8::10]:443"
forwarding = "dr"
fallback = "[2001:db8::99]:443"
  [virtual_server.check]
  type = "https"
  [[virtual_server.real_server]]
  address = "[2001:db8::11]:443"
  [[virtual_server.real_server]]
  address = "2001:db8::12"
  [[virtual_server.real_server]]
  address = "10.0.0.13"
  forwarding = "tun"
`)
	vs := cfg.VirtualServers[0]
	if vs.Family != "ipv6" || vs.PersistenceNetmask != 128 || vs.Protocol != "tcp" {
		t.Errorf("vs = %+v", vs)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("[2001:db8::11]:443"),
		netip.MustParseAddrPort("[2001:db8::12]:443"),
		netip.MustParseAddrPort("10.0.0.13:443"),
	}
	for i, rs := range vs.RealServers {
		if rs.Address != want[i] {
			t.Errorf("real server %d = %v, want %v", i, rs.Address, want[i])
		}
	}
}

func TestFWMarkVirtualServer(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "mark4"
fwmark = 10
  [[virtual_server.real_server]]
  address = "10.0.0.21:25"
  [[virtual_server.real_server]]
  address = "10.0.0.22:2525"

[[virtual_server]]
name = "mark6"
fwmark = 10
family = "ipv6"
persistence = "60s"
  [virtual_server.check]
  type = "icmp"
  privileged = true
  [[virtual_server.real_server]]
  address = "2001:db8::21"
`)
	m4, m6 := cfg.VirtualServers[0], cfg.VirtualServers[1]
	if m4.FWMark != 10 || m4.Family != "ipv4" || m4.Protocol != "" || m4.Address.IsValid() || m4.PersistenceNetmask != 32 {
		t.Errorf("mark4 = %+v", m4)
	}
	if m6.FWMark != 10 || m6.Family != "ipv6" || m6.PersistenceNetmask != 128 || m6.Checks[0].Options != (checks.ICMPOptions{Socket: checks.ICMPSocketRaw}) {
		t.Errorf("mark6 = %+v", m6)
	}
	if got := m6.RealServers[0].Address; got != netip.MustParseAddrPort("[2001:db8::21]:0") {
		t.Errorf("mark6 real server = %v", got)
	}
}

func TestWarnings(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "empty"
address = "192.0.2.10:80"
persistence_netmask = 24

[[virtual_server]]
name = "sorry"
address = "192.0.2.10:81"
fallback = "127.0.0.1:8080"
`)
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{
		"director.toml:1: virtual_server[empty]: has no real servers; the service will be created but has nowhere to send connections",
		"director.toml:4: virtual_server[empty].persistence_netmask: has no effect without persistence",
		"director.toml:6: virtual_server[sorry]: has no real servers; only the fallback will serve it",
	})
	if got, want := cfg.Summary(), "director.toml: 2 virtual servers, 0 real servers, 0 checks"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

// vs wraps real-server and check lines in a minimal virtual server so the
// table below can focus on one thing. Its first body line is line 4.
func vs(body string) string {
	return "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n" + body
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"syntax error", "[director]\nlisten = \"127.0.0.1:9410\"\non_failure = quiesce\n",
			[]string{`director.toml:3: syntax error: expected value but found "quiesce" instead`}},
		{"unknown top-level key", "[directr]\nlisten = \"x\"\n",
			[]string{`director.toml:1: directr: unknown key; did you mean "director"?`}},
		{"unknown key without suggestion", "[director]\nfoo = 1\n",
			[]string{`director.toml:2: director.foo: unknown key; [director] takes: listen, max_connections, resync_interval, on_failure, on_shutdown, drain_timeout, slow_start, watch_config, fast_checks, kernel_stats, notify_command, notify_url, notify_timeout, maintenance_dir, api_token_file, state_file, panic_threshold, flap_damping, flap_penalty, flap_suppress, flap_reuse, flap_half_life, flap_max_suppress`}},
		{"unknown key belongs elsewhere", vs("interval = \"5s\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"),
			[]string{`director.toml:4: virtual_server[web].interval: unknown key; interval belongs in [virtual_server.check]`}},
		{"unknown real server key", vs("[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\nwieght = 5\n"),
			[]string{`director.toml:6: virtual_server[web].real_server[0].wieght: unknown key; did you mean "weight"?`}},
		{"unknown check key", "[defaults.check]\ntimeuot = \"1s\"\n",
			[]string{`director.toml:2: defaults.check.timeuot: unknown key; did you mean "timeout"?`}},

		{"listen without port", "[director]\nlisten = \"127.0.0.1\"\n",
			[]string{`director.toml:2: director.listen: "127.0.0.1" must be host:port, such as "127.0.0.1:9410" or "[::1]:9410"`}},
		{"listen bad port", "[director]\nlisten = \"127.0.0.1:http\"\n",
			[]string{`director.toml:2: director.listen: "127.0.0.1:http": port must be a number 1-65535`}},
		{"on_failure", "[director]\non_failure = \"quiesent\"\n[[virtual_server]]\nname = \"a\"\nfwmark = 1\non_failure = \"quiescent\"\n",
			[]string{
				`director.toml:2: director.on_failure: unknown on_failure action "quiesent"; valid: quiesce, remove`,
				`director.toml:6: virtual_server[a].on_failure: unknown on_failure action "quiescent"; valid: quiesce, remove (ldirectord's quiescent = yes is "quiesce")`,
			}},
		{"did you mean a value", "[director]\non_failure = \"remov\"\n",
			[]string{`director.toml:2: director.on_failure: unknown on_failure action "remov"; valid: quiesce, remove (did you mean "remove"?)`}},
		{"max_connections", "[director]\nmax_connections = 0\n",
			[]string{`director.toml:2: director.max_connections: 0 is out of range; write 1-1048576, or leave it out for the default (512, or a quarter of the open-file limit if lower)`}},
		{"kernel_stats", "[director]\nkernel_stats = \"all\"\n",
			[]string{`director.toml:2: director.kernel_stats: unknown kernel_stats setting "all"; valid: backends, services, off`}},
		{"on_shutdown", "[director]\non_shutdown = \"clear\"\n",
			[]string{`director.toml:2: director.on_shutdown: unknown on_shutdown action "clear"; valid: keep, flush`}},
		{"resync zero", "[director]\nresync_interval = \"0s\"\n",
			[]string{`director.toml:2: director.resync_interval: must be greater than 0, not 0s`}},

		{"duration as integer", "[defaults.check]\ninterval = 5\n",
			[]string{`director.toml:2: defaults.check.interval: a bare number is not a duration; write a string with a unit, such as "5s"`}},
		{"duration garbage", "[defaults.check]\ntimeout = \"2 seconds\"\n",
			[]string{`director.toml:2: defaults.check.timeout: "2 seconds" is not a duration; write a number with a unit, such as "5s", "500ms" or "1m"`}},
		{"negative interval", "[defaults.check]\ninterval = \"-1s\"\n",
			[]string{`director.toml:2: defaults.check.interval: must be greater than 0, not -1s`}},
		{"rise and fall", "[defaults.check]\nrise = 0\nfall = \"3\"\n",
			[]string{
				`director.toml:2: defaults.check.rise: 0 is out of range; rise must be 1-1000`,
				`director.toml:3: defaults.check.fall: must be an integer, not a string ("3")`,
			}},
		{"check type", "[defaults.check]\ntype = \"HTTP_GET\"\n",
			[]string{`director.toml:2: defaults.check.type: unknown check type "HTTP_GET"; valid: ` + kindNames}},
		{"method", "[defaults.check]\nmethod = \"POST\"\n",
			[]string{`director.toml:2: defaults.check.method: unknown method "POST"; valid: GET, HEAD`}},
		{"expect_status", "[defaults.check]\nexpect_status = [\"200\", \"2xx\"]\n",
			[]string{`director.toml:2: defaults.check.expect_status: invalid status "2xx": want a code 100-599 or a range like "200-299"`}},
		{"expect_status type", "[defaults.check]\nexpect_status = [200]\n",
			[]string{`director.toml:2: defaults.check.expect_status[0]: must be a string, not an integer (200)`}},
		{"regexes", "[defaults.check]\nexpect_body = \"(ok\"\nexpect = \"[a\"\n",
			[]string{
				"director.toml:2: defaults.check.expect_body: invalid regular expression: error parsing regexp: missing closing ): `(ok`",
				"director.toml:3: defaults.check.expect: invalid regular expression: error parsing regexp: missing closing ]: `[a`",
			}},
		{"check address with port", "[defaults.check]\naddress = \"10.0.0.1:80\"\nport = 70000\n",
			[]string{
				`director.toml:2: defaults.check.address: "10.0.0.1:80" must be an IP address without a port; the check's port goes in port`,
				`director.toml:3: defaults.check.port: 70000 is out of range; ports are 1-65535`,
			}},
		{"path without slash", "[defaults.check]\npath = \"healthz\"\n",
			[]string{`director.toml:2: defaults.check.path: "healthz" must start with "/"`}},
		{"headers", "[defaults.check]\nheaders = { \"Bad Name\" = \"x\", Good = 1 }\n",
			[]string{
				`director.toml:2: defaults.check.headers."Bad Name": "Bad Name" is not a valid HTTP header name`,
				`director.toml:2: defaults.check.headers.Good: header values must be strings, not an integer (1)`,
			}},
		{"http keys on tcp check", vs("[virtual_server.check]\ntype = \"tcp\"\npath = \"/x\"\nexpect_status = [\"200\"]\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"),
			[]string{
				`director.toml:6: virtual_server[web].check.path: path is only used by http and https checks without url entries; this check's type is "tcp"`,
				`director.toml:7: virtual_server[web].check.expect_status: expect_status is only used by http and https checks without url entries; this check's type is "tcp"`,
			}},
		{"tcp keys on http check", vs("[virtual_server.check]\ntype = \"http\"\nsend = \"x\"\ntls = true\nserver_name = \"a\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"),
			[]string{
				`director.toml:6: virtual_server[web].check.send: send is only used by ` + checks.UsedBy("send") + `; this check's type is "http"`,
				`director.toml:7: virtual_server[web].check.tls: tls is only used by ` + checks.UsedBy("tls") + `; this check's type is "http"`,
				`director.toml:8: virtual_server[web].check.server_name: server_name is only used by ` + checks.UsedBy("server_name") + `; this check's type is "http"`,
			}},
		{"icmp keys", vs("[virtual_server.check]\ntype = \"icmp\"\nport = 80\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n") + "[[virtual_server]]\nname = \"b\"\naddress = \"192.0.2.10:81\"\ncheck = { privileged = true }\n",
			[]string{
				`director.toml:6: virtual_server[web].check.port: port is not used by ` + checks.PortlessKinds() + `; this check's type is "icmp"`,
				`director.toml:12: virtual_server[b].check.privileged: privileged is only used by icmp checks; this check's type is "tcp"`,
			}},
		{"check source family", vs("[virtual_server.check]\nsource = \"2001:db8::1\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"),
			[]string{`director.toml:5: virtual_server[web].check.source: 2001:db8::1 is IPv6 but the check target 10.0.0.1 is IPv4`}},

		{"missing name", "[[virtual_server]]\naddress = \"192.0.2.10:80\"\n",
			[]string{`director.toml:1: virtual_server[0].name: missing; every virtual server needs a unique name`}},
		{"duplicate names and services", vs("") + "\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n",
			[]string{
				`director.toml:6: virtual_server[web].name: duplicate name "web"; the virtual server on line 1 already uses it`,
				`director.toml:7: virtual_server[web].address: duplicate virtual service tcp 192.0.2.10:80; virtual_server[web] on line 1 already defines it`,
			}},
		{"same address other protocol is fine, same fwmark is not", "[[virtual_server]]\nname = \"a\"\naddress = \"192.0.2.10:53\"\nprotocol = \"udp\"\n[[virtual_server]]\nname = \"b\"\naddress = \"192.0.2.10:53\"\n[[virtual_server]]\nname = \"c\"\nfwmark = 5\n[[virtual_server]]\nname = \"d\"\nfwmark = 5\nfamily = \"ipv4\"\n[[virtual_server]]\nname = \"e\"\nfwmark = 5\nfamily = \"ipv6\"\n",
			[]string{`director.toml:13: virtual_server[d].fwmark: duplicate virtual service fwmark 5 (ipv4); virtual_server[c] on line 8 already defines it`}},
		{"neither address nor fwmark", "[[virtual_server]]\nname = \"web\"\n",
			[]string{`director.toml:1: virtual_server[web].address: missing; set address (such as "192.0.2.10:80") or fwmark, or addresses or fwmarks for a group`}},
		{"both address and fwmark", "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\nfwmark = 3\n",
			[]string{`director.toml:4: virtual_server[web].fwmark: set either address or fwmark, not both`}},
		{"address without port", "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10\"\n",
			[]string{`director.toml:3: virtual_server[web].address: "192.0.2.10" has no port; write "192.0.2.10:80"`}},
		{"address not an address", "[[virtual_server]]\nname = \"web\"\naddress = \"www.example.com:80\"\n",
			[]string{`director.toml:3: virtual_server[web].address: "www.example.com:80" is not an IP address and port, such as "192.0.2.10:80" or "[2001:db8::10]:80"`}},
		{"family without fwmark", vs("family = \"ipv6\"\n"),
			[]string{`director.toml:4: virtual_server[web].family: is only used with fwmark; an address-based service takes its family from the address`}},
		{"fwmark with protocol, bad family", "[[virtual_server]]\nname = \"m\"\nfwmark = 0\nfamily = \"inet6\"\nprotocol = \"tcp\"\n",
			[]string{
				`director.toml:3: virtual_server[m].fwmark: 0 is out of range; firewall marks are 1-4294967295`,
				`director.toml:4: virtual_server[m].family: unknown family "inet6"; valid: ipv4, ipv6 (write "ipv6")`,
				`director.toml:5: virtual_server[m].protocol: is not used with fwmark; the firewall mark already selects the packets`,
			}},
		{"enums", vs("protocol = \"icmp\"\nscheduler = \"wcl\"\nforwarding = \"gate\"\non_failure = \"drop\"\n"),
			[]string{
				`director.toml:4: virtual_server[web].protocol: unknown protocol "icmp"; valid: tcp, udp, sctp`,
				`director.toml:5: virtual_server[web].scheduler: unknown scheduler "wcl"; valid: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos (did you mean "wlc"?)`,
				`director.toml:6: virtual_server[web].forwarding: unknown forwarding method "gate"; valid: nat, dr, tun (ldirectord's gate is "dr")`,
				`director.toml:7: virtual_server[web].on_failure: unknown on_failure action "drop"; valid: quiesce, remove`,
			}},
		{"persistence", vs("persistence = \"-5s\"\npersistence_netmask = 33\n") + "[[virtual_server]]\nname = \"b\"\naddress = \"[2001:db8::1]:80\"\npersistence = \"1.5s\"\npersistence_netmask = 129\n",
			[]string{
				`director.toml:4: virtual_server[web].persistence: must not be negative`,
				`director.toml:5: virtual_server[web].persistence_netmask: 33 is out of range; IPv4 prefix lengths are 0-32`,
				`director.toml:9: virtual_server[b].persistence: 1.5s: IPVS persistence counts whole seconds; write something like "300s"`,
				`director.toml:10: virtual_server[b].persistence_netmask: 129 is out of range; IPv6 prefix lengths are 0-128`,
			}},
		{"virtual_server as a single table", "[virtual_server]\nname = \"web\"\n",
			[]string{`director.toml:1: virtual_server: must be an array of tables: write [[virtual_server]], not [virtual_server]`}},

		{"weight out of range", vs("[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\nweight = 70000\n[[virtual_server.real_server]]\naddress = \"10.0.0.2:80\"\nweight = -1\n[[virtual_server.real_server]]\naddress = \"10.0.0.3:80\"\nweight = \"abc\"\n"),
			[]string{
				`director.toml:6: virtual_server[web].real_server[0].weight: 70000 is out of range; IPVS weights are 0-65535`,
				`director.toml:9: virtual_server[web].real_server[1].weight: -1 is out of range; IPVS weights are 0-65535`,
				`director.toml:12: virtual_server[web].real_server[2].weight: must be an integer, not a string ("abc")`,
			}},
		{"real server address", vs("[[virtual_server.real_server]]\nweight = 1\n[[virtual_server.real_server]]\naddress = \"backend:80\"\n"),
			[]string{
				`director.toml:4: virtual_server[web].real_server[0].address: missing; every real server needs an address, such as "10.0.0.11:8080"`,
				`director.toml:7: virtual_server[web].real_server[1].address: "backend:80" is not an IP address with an optional port, such as "10.0.0.11:8080" or "[2001:db8::11]:8080"`,
			}},
		{"ports out of range", "[director]\nlisten = \"127.0.0.1:99999\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:99999\"\nfallback = \"[2001:db8::9]:70000\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:99999\"\n",
			[]string{
				`director.toml:2: director.listen: "127.0.0.1:99999": port 99999 out of range 1–65535`,
				`director.toml:5: virtual_server[web].address: "192.0.2.10:99999": port 99999 out of range 1–65535`,
				`director.toml:6: virtual_server[web].fallback: "[2001:db8::9]:70000": port 70000 out of range 1–65535`,
				`director.toml:8: virtual_server[web].real_server[0].address: "10.0.0.1:99999": port 99999 out of range 1–65535`,
			}},
		{"duplicate real servers", vs("[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"),
			[]string{`director.toml:7: virtual_server[web].real_server[1].address: duplicate real server 10.0.0.1:80; also on line 4`}},
		{"mixed families", vs("[[virtual_server.real_server]]\naddress = \"[2001:db8::1]:80\"\n[[virtual_server.real_server]]\naddress = \"[2001:db8::2]:80\"\nforwarding = \"tun\"\n"),
			[]string{`director.toml:5: virtual_server[web].real_server[0].address: 2001:db8::1 is IPv6 but the virtual server is IPv4; only forwarding = "tun" can mix families`}},
		{"nat needs a port", vs("[[virtual_server.real_server]]\naddress = \"10.0.0.1\"\n"),
			[]string{`director.toml:5: virtual_server[web].real_server[0].address: 10.0.0.1 has no port; a real server behind nat forwarding needs one, such as "10.0.0.1:80"`}},
		{"dr cannot change ports", vs("forwarding = \"dr\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:8080\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.2:8080\"\nforwarding = \"nat\"\n"),
			[]string{`director.toml:6: virtual_server[web].real_server[0].address: port 8080 differs from the virtual server's port 80; IPVS cannot change ports with dr forwarding (use port 80, or forwarding = "nat")`}},
		{"fwmark real server without port needs a check port", "[[virtual_server]]\nname = \"m\"\nfwmark = 1\n[[virtual_server.real_server]]\naddress = \"10.0.0.1\"\n",
			[]string{`director.toml:5: virtual_server[m].real_server[0].address: 10.0.0.1 has no port for its tcp check; give it a port or set the check's port`}},
		{"fallback", vs("fallback = \"[2001:db8::1]:80\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n") +
			"[[virtual_server]]\nname = \"b\"\naddress = \"192.0.2.10:81\"\nfallback = \"10.0.0.1:80\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n" +
			"[[virtual_server]]\nname = \"c\"\naddress = \"192.0.2.10:82\"\nfallback = \"10.0.0.9\"\n",
			[]string{
				`director.toml:4: virtual_server[web].fallback: 2001:db8::1 is IPv6 but the virtual server is IPv4`,
				`director.toml:10: virtual_server[b].fallback: 10.0.0.1:80 is also a real server (line 11); the fallback must be a different server`,
				`director.toml:16: virtual_server[c].fallback: 10.0.0.9 has no port; a fallback behind nat forwarding needs one, such as "10.0.0.9:82"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sameLines(t, problems(t, tt.src), tt.want)
		})
	}
}

func TestManyProblemsSortedByLine(t *testing.T) {
	got := problems(t, `[director]
on_shutdown = "flushh"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [virtual_server.check]
  timeout = 3
  [[virtual_server.real_server]]
  address = "10.0.0.1:8080"
  weight = 70000

[defaults.check]
rise = -2

[director2]
`)
	sameLines(t, got, []string{
		`director.toml:2: director.on_shutdown: unknown on_shutdown action "flushh"; valid: keep, flush (did you mean "flush"?)`,
		`director.toml:8: virtual_server[web].check.timeout: a bare number is not a duration; write a string with a unit, such as "3s"`,
		`director.toml:11: virtual_server[web].real_server[0].weight: 70000 is out of range; IPVS weights are 0-65535`,
		`director.toml:14: defaults.check.rise: -2 is out of range; rise must be 1-1000`,
		`director.toml:16: director2: unknown key; did you mean "director"?`,
	})
}

// A bad value in [defaults.check] is reported once, not once per virtual
// server that inherits it.
func TestDefaultsProblemReportedOnce(t *testing.T) {
	cfg := mustParse(t, `[defaults.check]
interval = "1s"
timeout = "1s"
[[virtual_server]]
name = "a"
address = "192.0.2.10:80"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
[[virtual_server]]
name = "b"
address = "192.0.2.10:81"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`)
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{`director.toml:3: defaults.check.timeout: timeout (1s) is not shorter than interval (1s): runs never overlap, so a check that times out runs every 2s`})
}

func TestInlineTablesAndArrays(t *testing.T) {
	got := problems(t, `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
check = { type = "http", path = "x" }
real_server = [
  { address = "10.0.0.1:80" },
  { address = "10.0.0.2:80",
    weight = 99999 },
]
`)
	sameLines(t, got, []string{
		`director.toml:4: virtual_server[web].check.path: "x" must start with "/"`,
		`director.toml:8: virtual_server[web].real_server[1].weight: 99999 is out of range; IPVS weights are 0-65535`,
	})
}

func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notpem.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "director.toml")

	cfg, err := Parse(name, []byte("[defaults.check]\ntype = \"https\"\nca_file = \"ca.pem\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	_ = cfg

	got := problemsIn(t, name, "[defaults.check]\nca_file = \"missing.pem\"\n[[virtual_server]]\nname = \"x\"\naddress = \"192.0.2.1:443\"\ncheck = { type = \"https\", ca_file = \"notpem.txt\" }\n")
	sameLines(t, got, []string{
		name + `:2: defaults.check.ca_file: cannot read ` + filepath.Join(dir, "missing.pem") + `: no such file or directory`,
		name + `:6: virtual_server[x].check.ca_file: ` + filepath.Join(dir, "notpem.txt") + ` holds no PEM certificates`,
	})

	cfg, err = Parse(name, []byte("[[virtual_server]]\nname = \"x\"\naddress = \"192.0.2.1:443\"\n[virtual_server.check]\ntype = \"https\"\nca_file = \"ca.pem\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:443\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.VirtualServers[0].Checks[0].Options.(checks.HTTPOptions).CAFile, filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("CAFile = %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.Problems) != 1 || !strings.HasSuffix(err.Error(), "nope.toml: no such file or directory") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestExampleConfig(t *testing.T) {
	cfg, err := Load("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if got, want := cfg.Summary(), "../config.example.toml: 4 virtual servers, 8 real servers, 10 checks"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestProblemString(t *testing.T) {
	for _, tt := range []struct {
		p    Problem
		want string
	}{
		{Problem{"f.toml", 14, "a.b", "bad"}, "f.toml:14: a.b: bad"},
		{Problem{"f.toml", 0, "a.b", "bad"}, "f.toml: a.b: bad"},
		{Problem{"f.toml", 3, "", "bad"}, "f.toml:3: bad"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"weight", "weight", 0}, {"wieght", "weight", 1}, {"weigh", "weight", 1},
		{"", "abc", 3}, {"kitten", "sitting", 3}, {"ab", "ba", 1},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFastChecks(t *testing.T) {
	vs := "\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n"
	if cfg := mustParse(t, vs); !cfg.Director.FastChecks {
		t.Error("fast_checks unset: off, want on by default")
	}
	if cfg := mustParse(t, "[director]\nfast_checks = false\n"+vs); cfg.Director.FastChecks {
		t.Error("fast_checks = false: still on")
	}
}

func TestDrainTimeoutAndWatch(t *testing.T) {
	cfg := mustParse(t, `[director]
drain_timeout = "90s"
watch_config = true

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"

[[virtual_server]]
name = "dns"
address = "192.0.2.10:53"
protocol = "udp"

[[virtual_server]]
name = "dns-drained"
address = "192.0.2.11:53"
protocol = "udp"
drain_timeout = "10s"

[[virtual_server]]
name = "quick"
address = "192.0.2.12:80"
drain_timeout = "0s"
`)
	if cfg.Director.DrainTimeout != 90*time.Second || !cfg.Director.WatchConfig {
		t.Errorf("director = %+v, want drain_timeout 90s and watch_config", cfg.Director)
	}
	want := map[string]time.Duration{"web": 90 * time.Second, "dns": 0, "dns-drained": 10 * time.Second, "quick": 0}
	for _, vs := range cfg.VirtualServers {
		if vs.DrainTimeout != want[vs.Name] {
			t.Errorf("%s: drain timeout %s, want %s", vs.Name, vs.DrainTimeout, want[vs.Name])
		}
	}
	sameLines(t, problems(t, "[director]\ndrain_timeout = \"-1s\"\nwatch_config = \"yes\"\n"), []string{
		`director.toml:2: director.drain_timeout: must not be negative; "0s" deletes a leaving real server at once`,
		`director.toml:3: director.watch_config: must be true or false, not a string ("yes")`,
	})
}
