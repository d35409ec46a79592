package statefile

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/override"
)

func TestStateFileRoundTrip(t *testing.T) {
	id := config.ServerID{VirtualServer: "web", RealServer: netip.MustParseAddrPort("[2001:db8::1]:443")}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	in := map[config.ServerID]override.Override{id: {Kind: override.Disable, Reason: "r", Source: override.SourceAPI, By: "me", Since: exp.Add(-time.Hour), Expires: exp}}
	data, err := Encode(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if out[id] != in[id] {
		t.Errorf("round trip: %+v, want %+v", out[id], in[id])
	}
	for _, bad := range []string{`{"version": 2, "overrides": []}`, `{"version": 1, "overrides": [{"real_server": "x", "kind": "drain"}]}`,
		`{"version": 1, "overrides": [{"real_server": "10.0.0.1:80", "kind": "explode"}]}`} {
		if _, _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}

func TestStateFileManagedRoundTrip(t *testing.T) {
	in := map[ipvs.ServiceKey]bool{
		ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.10:80")):    true,
		ipvs.AddressKey(ipvs.UDP, netip.MustParseAddrPort("[2001:db8::1]:53")): true,
		ipvs.FWMarkKey(ipvs.IPv6, 10):                                          true,
	}
	data, err := Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Managed []map[string]any `json:"managed"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(raw.Managed)
	want := `[{"address":"192.0.2.10:80","protocol":"tcp"},{"address":"[2001:db8::1]:53","protocol":"udp"},{"family":"ipv6","fwmark":10}]`
	if string(got) != want {
		t.Errorf("managed = %s, want %s", got, want)
	}
	_, out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Errorf("round trip: %v, want %v", out, in)
	}
	for k := range in {
		if !out[k] {
			t.Errorf("round trip lost %s", k)
		}
	}

	if _, m, err := Decode([]byte(`{"version": 1, "overrides": []}`)); err != nil || m != nil {
		t.Errorf("file without a list: %v, %v; want no list", m, err)
	}
	if _, m, err := Decode([]byte(`{"version": 1, "overrides": [], "managed": []}`)); err != nil || m == nil || len(m) != 0 {
		t.Errorf("empty list: %v, %v; want an empty list", m, err)
	}
	if _, m, err := Decode([]byte(`{"version": 1, "managed": [{"protocol": "tcp", "address": "[::ffff:192.0.2.1]:80", "family": "ipv4"}]}`)); err != nil ||
		!m[ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.1:80"))] {
		t.Errorf("mapped address: %v, %v", m, err)
	}
	for _, bad := range []string{
		`{"version": 1, "managed": [{"protocol": "icmp", "address": "192.0.2.1:80"}]}`,
		`{"version": 1, "managed": [{"protocol": "tcp", "address": "192.0.2.1"}]}`,
		`{"version": 1, "managed": [{"protocol": "tcp", "address": "192.0.2.1:80", "family": "ipv6"}]}`,
		`{"version": 1, "managed": [{"fwmark": 10}]}`,
		`{"version": 1, "managed": [{"fwmark": 10, "family": "ipv4", "protocol": "tcp"}]}`,
		`{"version": 1, "managed": [{}]}`,
		`{"version": 1, "managed": {}}`,
	} {
		if _, _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}

// The file is written in one order whatever the map's: by virtual server,
// then address; a diff of two files shows only what changed.
func TestEncodeSorted(t *testing.T) {
	ov := override.Override{Kind: override.Drain, Reason: "r", Source: override.SourceAPI, Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	in := map[config.ServerID]override.Override{}
	for _, s := range []string{"web/10.0.0.10:80", "mail/10.0.0.2:25", "web/10.0.0.9:80", "web/[2001:db8::1]:80", "api/10.0.0.1:80"} {
		vs, rs, _ := strings.Cut(s, "/")
		in[config.ServerID{VirtualServer: vs, RealServer: netip.MustParseAddrPort(rs)}] = ov
	}
	data, err := Encode(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Overrides []struct {
			VirtualServer string `json:"virtual_server"`
			RealServer    string `json:"real_server"`
		} `json:"overrides"`
		Managed *json.RawMessage `json:"managed"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range raw.Overrides {
		got = append(got, o.VirtualServer+"/"+o.RealServer)
	}
	want := "api/10.0.0.1:80 mail/10.0.0.2:25 web/10.0.0.9:80 web/10.0.0.10:80 web/[2001:db8::1]:80"
	if strings.Join(got, " ") != want {
		t.Errorf("order %q, want %q", strings.Join(got, " "), want)
	}
	if raw.Managed != nil {
		t.Errorf("a nil managed set wrote a list: %s", *raw.Managed)
	}
	if !strings.HasSuffix(string(data), "}\n") {
		t.Errorf("file does not end in a newline")
	}
	if empty, err := Encode(nil, nil); err != nil || !strings.Contains(string(empty), `"overrides": []`) {
		t.Errorf("no overrides: %s, %v; want an empty list", empty, err)
	}
}

// A state file that cannot be read is set aside by the engine with this
// error in the log: it must say which entry and what is wrong with it,
// and Decode must return nothing half-read.
func TestDecodeErrors(t *testing.T) {
	ok := `{"virtual_server": "web", "real_server": "10.0.0.1:80", "kind": "drain"}`
	for _, tt := range []struct {
		name, file, want string
	}{
		{"not JSON", `{"version": 1,`, "unexpected end of JSON input"},
		{"newer version", `{"version": 2, "overrides": []}`, "version 2, this director reads version 1"},
		{"no version", `{"overrides": []}`, "version 0, this director reads version 1"},
		{"bad address", `{"version": 1, "overrides": [` + ok + `, {"real_server": "10.0.0.1", "kind": "drain"}]}`, `override 1: real_server "10.0.0.1": `},
		{"unknown kind", `{"version": 1, "overrides": [` + ok + `, {"real_server": "10.0.0.2:80", "kind": "explode"}]}`, `override 1: unknown kind "explode"`},
		{"fwmark with address", `{"version": 1, "overrides": [` + ok + `], "managed": [{"fwmark": 10, "family": "ipv4", "address": "192.0.2.1:80"}]}`,
			"managed service 0: a firewall-mark service has no protocol or address"},
		{"fwmark with protocol", `{"version": 1, "managed": [{"protocol": "tcp", "address": "192.0.2.1:80"}, {"fwmark": 10, "family": "ipv4", "protocol": "tcp"}]}`,
			"managed service 1: a firewall-mark service has no protocol or address"},
		{"fwmark without family", `{"version": 1, "managed": [{"fwmark": 10}]}`, `managed service 0: unknown address family "" (want ipv4 or ipv6)`},
		{"unknown protocol", `{"version": 1, "managed": [{"protocol": "icmp", "address": "192.0.2.1:80"}]}`, `managed service 0: unknown protocol "icmp" (want tcp, udp or sctp)`},
		{"service address without port", `{"version": 1, "managed": [{"protocol": "tcp", "address": "192.0.2.1"}]}`, `managed service 0: address "192.0.2.1": `},
		{"family against the address", `{"version": 1, "managed": [{"protocol": "tcp", "address": "192.0.2.1:80", "family": "ipv6"}]}`,
			`managed service 0: family "ipv6" does not match the address 192.0.2.1:80`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api, managed, err := Decode([]byte(tt.file))
			if err == nil {
				t.Fatalf("Decode succeeded: %v %v", api, managed)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if api != nil || managed != nil {
				t.Errorf("Decode returned %v %v with its error", api, managed)
			}
		})
	}
}
