package vrrp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsdirector/director/config"
)

const pairConfig = `
[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"
[[virtual_server]]
name = "web6"
address = "[2001:db8::10]:80"
  [[virtual_server.real_server]]
  address = "[2001:db8::11]:8080"
[[virtual_server]]
name = "dns"
address = "192.0.2.53:53"
protocol = "udp"
  [[virtual_server.real_server]]
  address = "10.0.0.11:53"

[vrrp]
notify_fifo = "/run/director/keepalived.fifo"
track_file = "/run/director/vrrp-track"
interface = "eth0"
advert_int = "200ms"
unicast_src = "10.1.0.1"
peers = ["10.1.0.2"]
  [[vrrp.instance]]
  name = "VI_1"
  virtual_router_id = 51
  priority = 150
  virtual_servers = ["web", "web6"]
  [[vrrp.instance]]
  name = "VI_DNS"
  virtual_router_id = 52
  virtual_servers = ["dns"]
`

func TestKeepalivedConf(t *testing.T) {
	cfg, err := config.Parse("/etc/director/director.toml", []byte(pairConfig))
	if err != nil {
		t.Fatal(err)
	}
	got, err := KeepalivedConf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"    vrrp_version 3\n",
		"    notify_fifo /run/director/keepalived.fifo\n",
		"vrrp_track_file director_health {\n    file \"/run/director/vrrp-track\"\n    weight 1\n}\n",
		"vrrp_instance VI_1 {\n",
		"    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    advert_int 0.2\n",
		"    notify_priority_changes\n",
		"    unicast_src_ip 10.1.0.1\n    unicast_peer {\n        10.1.0.2\n    }\n",
		"    virtual_ipaddress {\n        192.0.2.10/32 dev eth0\n    }\n    virtual_ipaddress_excluded {\n        2001:db8::10/128 dev eth0\n    }\n",
		"    track_file {\n        director_health weight 1\n    }\n",
		"vrrp_instance VI_DNS {\n",
		"    virtual_router_id 52\n    priority 100\n",
		"        192.0.2.53/32 dev eth0\n",
		"# The director writes 50 here while healthy, 0 while not",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the keepalived.conf lacks\n%s\n---\n%s", want, got)
		}
	}
	if strings.Contains(got, "virtual_server ") {
		t.Error("the keepalived.conf has a virtual_server: the director owns the IPVS table")
	}

	fwmarkOnly, err := config.Parse("d.toml", []byte("[[virtual_server]]\nname = \"m\"\nfwmark = 1\n[vrrp]\nnotify_fifo = \"/run/f\"\ninterface = \"eth0\"\n[[vrrp.instance]]\nname = \"VI_1\"\nvirtual_router_id = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KeepalivedConf(fwmarkOnly); err == nil || !strings.Contains(err.Error(), `"VI_1" holds no address`) {
		t.Errorf("an instance without addresses: %v", err)
	}
	noIface, _ := config.Parse("d.toml", []byte("[[virtual_server]]\nname = \"w\"\naddress = \"192.0.2.1:80\"\n[vrrp]\nnotify_fifo = \"/run/f\"\n[[vrrp.instance]]\nname = \"VI_1\"\nvirtual_router_id = 1\n"))
	if _, err := KeepalivedConf(noIface); err == nil || !strings.Contains(err.Error(), "d.toml:6") || !strings.Contains(err.Error(), "no interface") {
		t.Errorf("an instance without an interface: %v", err)
	}
}

// keepalived itself checks what vrrp-config prints, where it is installed
// (.ci/run installs it): keepalived -t exits non-zero on a configuration
// error, and a keyword it does not know is one.
func TestKeepalivedAcceptsTheConf(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		for _, p := range []string{"/usr/sbin/keepalived", "/sbin/keepalived"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and keepalived is not installed (.ci/run installs it)")
		}
		t.Skip("keepalived is not installed: apt-get install keepalived")
	}
	cfg, err := config.Parse("/etc/director/director.toml", []byte(pairConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"lower", "fault"} {
		cfg.VRRP.OnUnhealthy = mode
		text, err := KeepalivedConf(cfg)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "keepalived.conf")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--config-test", "-f", path).CombinedOutput()
		if err != nil {
			t.Errorf("keepalived --config-test rejects the generated file (%v):\n%s\n---\n%s", err, out, text)
		}
	}
	// The check can fail: a misspelt keyword is refused.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    notify_priority_chnges\n    virtual_ipaddress {\n        192.0.2.10/32\n    }\n}\n"), 0o644)
	if out, err := exec.Command(bin, "--config-test", "-f", bad).CombinedOutput(); err == nil {
		t.Errorf("keepalived --config-test accepts a misspelt keyword, so it proves nothing:\n%s", out)
	}
}
