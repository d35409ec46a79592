package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// parseNamed parses src with the fixture services database.
func parseNamed(t *testing.T, src string) (*Config, []string) {
	t.Helper()
	cfg, err := ParseWith(file, []byte(src), Options{ServicesFile: "testdata/services"})
	if err == nil {
		return cfg, nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T: %v", err, err)
	}
	var out []string
	for _, p := range errs.Problems {
		out = append(out, p.String())
	}
	return nil, out
}

func TestPortNames(t *testing.T) {
	cfg, errs := parseNamed(t, `[[virtual_server]]
name = "web"
address = "192.0.2.10:www"
fallback = "127.0.0.1:webcache"
  [virtual_server.check]
  port = "https"
  [[virtual_server.real_server]]
  address = "10.0.0.11:http-alt"

[[virtual_server]]
name = "dns"
address = "[2001:db8::53]:domain"
protocol = "udp"
  [[virtual_server.real_server]]
  address = "[2001:db8::11]:domain"

[[virtual_server]]
name = "radius"
address = "192.0.2.12:radius"
protocol = "udp"
  [virtual_server.check]
  port = "radius" # only listed for udp: a check's port falls back to it
  [[virtual_server.real_server]]
  address = "10.0.0.12:1812"

[[virtual_server]]
name = "marked"
fwmark = 3
  [[virtual_server.real_server]]
  address = "10.0.0.13:radius"
`)
	if errs != nil {
		t.Fatal(strings.Join(errs, "\n"))
	}
	vs := cfg.VirtualServers
	for _, c := range []struct{ got, want netip.AddrPort }{
		{vs[0].Address, netip.MustParseAddrPort("192.0.2.10:80")},
		{vs[0].Fallback, netip.MustParseAddrPort("127.0.0.1:8080")},
		{vs[0].RealServers[0].Address, netip.MustParseAddrPort("10.0.0.11:8080")},
		{vs[1].Address, netip.MustParseAddrPort("[2001:db8::53]:53")},
		{vs[1].RealServers[0].Address, netip.MustParseAddrPort("[2001:db8::11]:53")},
		{vs[2].Address, netip.MustParseAddrPort("192.0.2.12:1812")},
		{vs[3].RealServers[0].Address, netip.MustParseAddrPort("10.0.0.13:1812")}, // fwmark: tcp, then udp
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	if vs[0].Checks[0].Port != 443 || vs[2].Checks[0].Port != 1812 {
		t.Errorf("check ports %d, %d; want 443, 1812", vs[0].Checks[0].Port, vs[2].Checks[0].Port)
	}
}

func TestPortNameErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"address = \"192.0.2.10:wwww\"",
			`director.toml:3: virtual_server[x].address: "192.0.2.10:wwww": no tcp service "wwww" in testdata/services; did you mean "www"?`},
		// mysql is only listed for tcp
		{"address = \"192.0.2.10:mysql\"\nprotocol = \"udp\"",
			`director.toml:3: virtual_server[x].address: "192.0.2.10:mysql": no udp service "mysql" in testdata/services; write the port number, or a name the file lists`},
		{"address = \"192.0.2.10:80\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:nosuch\"",
			`director.toml:5: virtual_server[x].real_server[0].address: "10.0.0.1:nosuch": no tcp service "nosuch" in testdata/services; write the port number, or a name the file lists`},
		{"address = \"192.0.2.10:80\"\nfallback = \"[2001:db8::1]:myslq\"",
			`director.toml:4: virtual_server[x].fallback: "[2001:db8::1]:myslq": no tcp service "myslq" in testdata/services; did you mean "mysql"?`},
		{"address = \"192.0.2.10:80\"\n[virtual_server.check]\nport = \"mysq\"",
			`director.toml:5: virtual_server[x].check.port: no tcp or udp service "mysq" in testdata/services; did you mean "mysql"?`},
		{"address = \"192.0.2.10:80\"\n[virtual_server.check]\nport = \"80\"",
			`director.toml:5: virtual_server[x].check.port: "80" is neither a port number nor a service name; ports are 1-65535`},
	} {
		_, errs := parseNamed(t, "[[virtual_server]]\nname = \"x\"\n"+c.body+"\n")
		if len(errs) != 1 || errs[0] != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.body, errs, c.want)
		}
	}
}

// A name needs the services database; when it cannot be read the error
// says so, and a config without names never reads it.
func TestPortNamesWithoutServicesFile(t *testing.T) {
	_, err := ParseWith(file, []byte("[[virtual_server]]\nname = \"x\"\naddress = \"192.0.2.10:www\"\n"), Options{ServicesFile: "testdata/missing"})
	if err == nil || !strings.Contains(err.Error(), `port name "www" needs the services database testdata/missing, which cannot be read (no such file or directory); write the port number`) {
		t.Errorf("got %v", err)
	}
	if _, err := ParseWith(file, []byte("[[virtual_server]]\nname = \"x\"\naddress = \"192.0.2.10:80\"\n"), Options{ServicesFile: "testdata/missing"}); err != nil {
		t.Errorf("a config without port names: %v", err)
	}
}

func TestSplitPortName(t *testing.T) {
	for _, c := range []struct {
		in, host, name string
		ok             bool
	}{
		{"10.0.0.1:www", "10.0.0.1", "www", true},
		{"[2001:db8::1]:https", "[2001:db8::1]", "https", true},
		{"10.0.0.1:80", "", "", false},
		{"2001:db8::1", "", "", false},
		{"[2001:db8::1]", "", "", false},
		{"10.0.0.1:", "", "", false},
		{"10.0.0.1:http-alt", "10.0.0.1", "http-alt", true},
		{"10.0.0.1:9x", "", "", false},
		{"10.0.0.1:a b", "", "", false},
	} {
		h, n, ok := splitPortName(c.in)
		if h != c.host || n != c.name || ok != c.ok {
			t.Errorf("splitPortName(%q) = %q, %q, %v", c.in, h, n, ok)
		}
	}
}
