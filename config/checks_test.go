package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
)

// checkNames lists name:type@port of each check a real server runs.
func checkSummary(vs *VirtualServer, rs *RealServer) []string {
	var out []string
	for _, c := range vs.ChecksOf(rs) {
		out = append(out, c.Name+":"+c.Type+"@"+vs.CheckSpec(rs, &c).Target.String())
	}
	return out
}

func TestSeveralChecks(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
		want [][]string // per real server
	}{
		{"one table stays one check", `
[virtual_server.check]
type = "http"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`, [][]string{{"http:http@10.0.0.1:80"}}},
		{"no check is one tcp check", `
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`, [][]string{{"tcp:tcp@10.0.0.1:80"}}},
		{"an array: all of them, in order, named by type", `
[[virtual_server.check]]
type = "http"
[[virtual_server.check]]
type = "tcp"
port = 22
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`, [][]string{{"http:http@10.0.0.1:80", "tcp:tcp@10.0.0.1:22"}}},
		{"two of one type, named", `
[[virtual_server.check]]
type = "http"
name = "app"
[[virtual_server.check]]
type = "http"
name = "admin"
port = 8081
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`, [][]string{{"app:http@10.0.0.1:80", "admin:http@10.0.0.1:8081"}}},
		{"a real server overrides by name, adds by type, the other keeps the virtual server's", `
[[virtual_server.check]]
type = "http"
name = "app"
[[virtual_server.check]]
type = "tcp"
port = 22
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  name = "app"
  port = 8080
  [[virtual_server.real_server.check]]
  type = "icmp"
[[virtual_server.real_server]]
address = "10.0.0.2:80"
`, [][]string{{"app:http@10.0.0.1:8080", "tcp:tcp@10.0.0.1:22", "icmp:icmp@10.0.0.1:80"},
			{"app:http@10.0.0.2:80", "tcp:tcp@10.0.0.2:22"}}},
		{"an entry without name or type overrides the only check", `
[virtual_server.check]
type = "tcp"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
check = { port = 81 }
`, [][]string{{"tcp:tcp@10.0.0.1:81"}}},
		{"an entry with the type of a check overrides it", `
[[virtual_server.check]]
type = "tcp"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  type = "tcp"
  address = "10.0.0.9"
`, [][]string{{"tcp:tcp@10.0.0.9:80"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, vs(tt.body))
			v := &cfg.VirtualServers[0]
			var got [][]string
			for i := range v.RealServers {
				got = append(got, checkSummary(v, &v.RealServers[i]))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("checks = %q, want %q", got, tt.want)
			}
		})
	}
}

// An override takes its keys over the virtual server's check, which
// takes its over [defaults.check]; the options of the kind layer the same
// way.
func TestCheckOverrideLayers(t *testing.T) {
	cfg := mustParse(t, `[defaults.check]
interval = "7s"
rise = 5
path = "/default"
[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.check]]
  type = "http"
  fall = 4
  host = "example.com"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
    [[virtual_server.real_server.check]]
    name = "http"
    fall = 1
    path = "/mine"
    retry_interval = "1s"
`)
	v := &cfg.VirtualServers[0]
	got := v.ChecksOf(&v.RealServers[0])[0]
	want := Check{Type: "http", Name: "http", Interval: 7 * time.Second, Timeout: defaultTimeout, RetryInterval: time.Second,
		Rise: 5, Fall: 1, Options: checks.HTTPOptions{Path: "/mine", Host: "example.com"}}
	got.Options = normalHTTP(got.Options)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("real server's check = %+v\nwant %+v", got, want)
	}
	if vc := v.Checks[0]; vc.Fall != 4 || vc.RetryInterval != 0 || normalHTTP(vc.Options).(checks.HTTPOptions).Path != "/default" {
		t.Errorf("the virtual server's check changed: %+v", vc)
	}
	spec := v.CheckSpec(&v.RealServers[0], &got)
	if spec.RetryInterval != time.Second || spec.Fall != 1 {
		t.Errorf("spec retry %s fall %d, want 1s and 1", spec.RetryInterval, spec.Fall)
	}
}

// normalHTTP keeps only the HTTP options the test above sets.
func normalHTTP(o checks.Options) checks.Options {
	h := o.(checks.HTTPOptions)
	return checks.HTTPOptions{Path: h.Path, Host: h.Host}
}

func TestSeveralChecksErrors(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       []string
	}{
		{"two checks of one name", `
[[virtual_server.check]]
type = "http"
[[virtual_server.check]]
type = "http"
port = 81
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`, []string{`director.toml:8: virtual_server[web].check[1].type: a second check named "http" (the first is on line 6); give each check of a virtual server its own name`}},
		{"an override of no check", `
[[virtual_server.check]]
type = "http"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  name = "htpp"
`, []string{`director.toml:10: virtual_server[web].real_server[0].check[htpp].name: the virtual server has no check named "htpp" (its checks: "http"); to add a check, give it a type`}},
		{"an override that changes the type", `
[[virtual_server.check]]
type = "http"
name = "app"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  name = "app"
  type = "tcp"
`, []string{`director.toml:12: virtual_server[web].real_server[0].check[app].type: overrides the http check "app", which keeps its type; to add a tcp check, give it a name of its own`}},
		{"an entry that names nothing among several", `
[[virtual_server.check]]
type = "http"
[[virtual_server.check]]
type = "tcp"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  port = 81
`, []string{`director.toml:11: virtual_server[web].real_server[0].check[0]: say which check this entry overrides with name (one of "http", "tcp"), or give it a type to add a check`}},
		{"two entries for one check", `
[[virtual_server.check]]
type = "http"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  type = "http"
  [[virtual_server.real_server.check]]
  name = "http"
`, []string{`director.toml:12: virtual_server[web].real_server[0].check[http].name: a second entry for the check "http" (the first is on line 10); give each its own name`}},
		{"a name in [defaults.check]", "[defaults.check]\nname = \"x\"\n",
			[]string{`director.toml:2: defaults.check.name: [defaults.check] serves every check and has no name; name the checks of [[virtual_server.check]]`}},
		{"an override's key the type does not read", `
[[virtual_server.check]]
type = "tcp"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
  [[virtual_server.real_server.check]]
  path = "/x"
`, []string{`director.toml:10: virtual_server[web].real_server[0].check[0].path: path is only used by http and https checks without url entries; this check's type is "tcp"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sameLines(t, problems(t, vsOrRaw(tt.body)), tt.want)
		})
	}
}

// vsOrRaw wraps a body in the minimal virtual server unless it is a
// whole file of its own.
func vsOrRaw(body string) string {
	if len(body) > 0 && body[0] == '[' {
		return body
	}
	return vs(body)
}

func TestCheckTimingWarnings(t *testing.T) {
	cfg := mustParse(t, vs(`
[virtual_server.check]
interval = "2s"
timeout = "3s"
retry_interval = "2s"
[[virtual_server.real_server]]
address = "10.0.0.1:80"
`))
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{
		`director.toml:7: virtual_server[web].check.timeout: timeout (3s) is not shorter than interval (2s): runs never overlap, so a check that times out runs every 4s`,
		`director.toml:8: virtual_server[web].check.retry_interval: retry_interval (2s) is not shorter than interval (2s), so it does not make failures confirmed sooner`,
	})
	if c := cfg.VirtualServers[0].Checks[0]; c.Timeout != 3*time.Second || c.RetryInterval != 2*time.Second {
		t.Errorf("check = %+v", c)
	}
}

// Summary counts distinct probes: a second check per server counts, an
// identical check of two virtual servers does not.
func TestSummarySeveralChecks(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "a"
address = "192.0.2.10:80"
  [[virtual_server.check]]
  type = "http"
  [[virtual_server.check]]
  type = "icmp"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
[[virtual_server]]
name = "b"
address = "192.0.2.10:81"
  [virtual_server.check]
  type = "icmp"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
`)
	if got, want := cfg.Summary(), "director.toml: 2 virtual servers, 2 real servers, 2 checks"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}
