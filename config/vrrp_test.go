package config

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const vrrpServers = `
[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"

[[virtual_server]]
name = "dns"
address = "192.0.2.53:53"
protocol = "udp"
  [[virtual_server.real_server]]
  address = "10.0.0.11:53"

[[virtual_server]]
name = "web-tls"
address = "192.0.2.10:443"
  [[virtual_server.real_server]]
  address = "10.0.0.11:8443"
`

func TestVRRPKeys(t *testing.T) {
	cfg := mustParse(t, vrrpServers+`
[vrrp]
notify_fifo = "/run/director/keepalived.fifo"
track_file = "/run/director/track"
healthy_value = 60
on_unhealthy = "fault"
unhealthy_after = "3s"
min_pool_share = 0.5
interface = "eth0"
advert_int = "200ms"
unicast_src = "10.1.0.1"
peers = ["10.1.0.2"]

  [[vrrp.instance]]
  name = "VI_1"
  virtual_router_id = 51
  priority = 150

  [[vrrp.instance]]
  name = "VI_DNS"
  virtual_router_id = 52
  interface = "eth1"
  virtual_servers = ["dns"]

  [vrrp.sync]
  mode = "both-always"
  sync_id = 1
  peer_sync_id = 2
  group = "239.0.0.81"
  port = 9848
  ttl = 2
  maxlen = 1400
`)
	v := cfg.VRRP
	if v == nil {
		t.Fatal("no [vrrp]")
	}
	if v.NotifyFIFO != "/run/director/keepalived.fifo" || v.TrackFile != "/run/director/track" || v.HealthyValue != 60 ||
		v.OnUnhealthy != "fault" || v.UnhealthyAfter != 3*time.Second || v.MinPoolShare != 0.5 || v.Interface != "eth0" ||
		v.AdvertInt != 200*time.Millisecond || v.Version != 3 || v.UnicastSrc != netip.MustParseAddr("10.1.0.1") ||
		!slices.Equal(v.Peers, []netip.Addr{netip.MustParseAddr("10.1.0.2")}) {
		t.Errorf("[vrrp] = %+v", v)
	}
	if len(v.Instances) != 2 {
		t.Fatalf("instances %+v", v.Instances)
	}
	if in := v.Instances[0]; in.Name != "VI_1" || in.VirtualRouterID != 51 || in.Priority != 150 || in.Interface != "eth0" || in.VirtualServers != nil {
		t.Errorf("VI_1 = %+v", in)
	}
	if in := v.Instances[1]; in.Priority != DefaultVRRPPriority || in.Interface != "eth1" || !slices.Equal(in.VirtualServers, []string{"dns"}) {
		t.Errorf("VI_DNS = %+v", in)
	}
	want := VRRPSync{Mode: SyncBothAlways, Interface: "eth0", SyncID: 1, PeerSyncID: 2,
		Group: netip.MustParseAddr("239.0.0.81"), Port: 9848, TTL: 2, MaxLen: 1400}
	if v.Sync != want {
		t.Errorf("sync = %+v\nwant %+v", v.Sync, want)
	}
	if got := cfg.VRRPAddresses(&v.Instances[0]); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.53")}) {
		t.Errorf("VI_1 holds %v: every virtual server's address, once", got)
	}
	if got := cfg.VRRPAddresses(&v.Instances[1]); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.53")}) {
		t.Errorf("VI_DNS holds %v", got)
	}
}

func TestVRRPDefaults(t *testing.T) {
	cfg := mustParse(t, vrrpServers+`
[vrrp]
notify_fifo = "/run/k.fifo"
track_file = "/run/track"
interface = "eth0"
[[vrrp.instance]]
name = "VI_1"
virtual_router_id = 7
[vrrp.sync]
`)
	v := cfg.VRRP
	if v.HealthyValue != DefaultVRRPHealthyValue || v.OnUnhealthy != "lower" || v.UnhealthyAfter != DefaultVRRPUnhealthyAfter ||
		v.AdvertInt != time.Second || v.Version != 3 || v.MinPoolShare != 0 {
		t.Errorf("defaults %+v", v)
	}
	if v.Sync != (VRRPSync{Mode: SyncFollowRole, Interface: "eth0", SyncID: 1}) {
		t.Errorf("sync defaults %+v", v.Sync)
	}
	if cfg := mustParse(t, vrrpServers); cfg.VRRP != nil {
		t.Errorf("no [vrrp], yet %+v", cfg.VRRP)
	}
	noSync := mustParse(t, vrrpServers+"[vrrp]\nnotify_fifo = \"/run/k.fifo\"\n[[vrrp.instance]]\nname = \"VI_1\"\nvirtual_router_id = 7\n")
	if noSync.VRRP.Sync.Mode != SyncOff {
		t.Errorf("without [vrrp.sync]: mode %q", noSync.VRRP.Sync.Mode)
	}
	var warned bool
	for _, w := range noSync.Warnings {
		warned = warned || w.String() == `director.toml:20: vrrp: has no track_file: keepalived will not know when this director is unhealthy`
	}
	if !warned {
		t.Errorf("no warning about the missing track_file: %v", noSync.Warnings)
	}
}

func TestVRRPErrors(t *testing.T) {
	base := vrrpServers + "[vrrp]\nnotify_fifo = \"/run/k.fifo\"\ntrack_file = \"/run/t\"\ninterface = \"eth0\"\n"
	inst := "[[vrrp.instance]]\nname = \"VI_1\"\nvirtual_router_id = 7\n"
	// base ends on line 23; its [vrrp] header is line 20.
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"no fifo, no instance", vrrpServers + "[vrrp]\n", []string{
			`director.toml:20: vrrp.notify_fifo: missing; the director learns its role from keepalived's notify_fifo, such as "/run/director/keepalived.fifo"`,
			`director.toml:20: vrrp.instance: missing; add a [[vrrp.instance]] with the name of the keepalived vrrp_instance whose role this director follows`,
		}},
		{"values", base + "healthy_value = 254\non_unhealthy = \"drop\"\nversion = 2\nadvert_int = \"200ms\"\npeers = [\"10.0.0.2\", \"nope\"]\nunicast_src = \"2001:db8::1\"\n" + inst, []string{
			`director.toml:24: vrrp.healthy_value: 254 is out of range; keepalived adds 1-253 to the priority`,
			`director.toml:25: vrrp.on_unhealthy: unknown on_unhealthy action "drop"; valid: lower, fault`,
			`director.toml:27: vrrp.advert_int: 200ms: VRRP version 2 counts whole seconds (keepalived would round it); write "1s", or set version = 3`,
			`director.toml:28: vrrp.peers[0]: 10.0.0.2 and unicast_src 2001:db8::1 are of different families`,
			`director.toml:28: vrrp.peers[1]: "nope" is not an IP address`,
		}},
		{"instances", base + inst + "priority = 255\n[[vrrp.instance]]\nname = \"VI 2\"\nvirtual_router_id = 7\ninterface = \"a-very-long-interface\"\nvirtual_servers = [\"nope\"]\n[[vrrp.instance]]\nvirtual_router_id = 300\n", []string{
			`director.toml:27: vrrp.instance[VI_1].priority: 255 is out of range; VRRP priorities are 1-254 (255 is the address owner, which never gives the VIPs up)`,
			`director.toml:29: vrrp.instance[VI 2].name: "VI 2": keepalived instance names are 1-64 letters, digits and _.:-`,
			`director.toml:30: vrrp.instance[VI 2].virtual_router_id: duplicate virtual_router_id 7; also on line 24`,
			`director.toml:31: vrrp.instance[VI 2].interface: "a-very-long-interface" is longer than the 15 bytes Linux allows an interface name`,
			`director.toml:32: vrrp.instance[VI 2].virtual_servers[0]: no virtual server is named "nope"`,
			`director.toml:33: vrrp.instance[2].name: missing; name the keepalived vrrp_instance, such as "VI_1"`,
			`director.toml:34: vrrp.instance[2].virtual_router_id: 300 is out of range; VRRP router ids are 1-255`,
		}},
		{"both-always needs two ids", base + inst + "[vrrp.sync]\nmode = \"both-always\"\nsync_id = 3\npeer_sync_id = 3\n", []string{
			`director.toml:30: vrrp.sync.peer_sync_id: 3 is also sync_id; with mode = "both-always" they must differ, or each director would install its own connections back`,
		}},
		{"both-always without a peer id", base + inst + "[vrrp.sync]\nmode = \"both-always\"\n", []string{
			`director.toml:27: vrrp.sync.peer_sync_id: missing; with mode = "both-always" each director's backup daemon takes the peer's sync id, which must differ from sync_id`,
		}},
		{"sync values", vrrpServers + "[vrrp]\nnotify_fifo = \"/run/k.fifo\"\n" + inst + "[vrrp.sync]\nmode = \"follow\"\ngroup = \"10.0.0.1\"\nttl = 0\nsyncid = 1\n", []string{
			`director.toml:25: vrrp.sync.interface: missing; the sync daemon needs the interface its multicast goes out on (here or in [vrrp])`,
			`director.toml:26: vrrp.sync.mode: unknown sync mode "follow"; valid: follow-role, both-always, off`,
			`director.toml:27: vrrp.sync.group: 10.0.0.1 is not a multicast address, such as "224.0.0.81" (the kernel's default)`,
			`director.toml:28: vrrp.sync.ttl: 0 is out of range; TTLs are 1-255`,
			`director.toml:29: vrrp.sync.syncid: unknown key; did you mean "sync_id"?`,
		}},
		{"keys in the wrong table", base + "sync_id = 1\n" + inst, []string{
			`director.toml:24: vrrp.sync_id: unknown key; sync_id belongs in [vrrp.sync]`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { sameLines(t, problems(t, tt.src), tt.want) })
	}
}

// The [vrrp] section of config.example.toml is commented out (it needs a
// peer); uncommented, it must load as documented.
func TestVRRPExample(t *testing.T) {
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	at := strings.Index(text, "#[vrrp]")
	if at < 0 {
		t.Fatal("config.example.toml has no #[vrrp] section")
	}
	var b strings.Builder
	b.WriteString(text[:at])
	for _, line := range strings.Split(text[at:], "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if rest, ok := strings.CutPrefix(trimmed, "#"); ok && (strings.HasPrefix(strings.TrimSpace(rest), "[") || strings.Contains(rest, " = ")) {
			line = rest // a commented key or header; prose stays a comment
		}
		b.WriteString(line + "\n")
	}
	cfg, err := Parse("example.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("the uncommented [vrrp] example does not load: %v", err)
	}
	v := cfg.VRRP
	if v == nil || v.NotifyFIFO != "/run/director/keepalived.fifo" || len(v.Instances) != 1 || v.Instances[0].Priority != 150 ||
		v.Sync.Mode != SyncBothAlways || v.Sync.PeerSyncID != 2 || !v.UnicastSrc.IsValid() {
		t.Errorf("[vrrp] from the example: %+v", v)
	}
}
