package vrrp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsdirector/director/config"
)

func TestSysctlWarnings(t *testing.T) {
	cfgWith := func(mode, fwd string) *config.Config {
		return &config.Config{
			VRRP:           &config.VRRP{Sync: config.VRRPSync{Mode: mode}},
			VirtualServers: []config.VirtualServer{{Name: "web", Forwarding: fwd, RealServers: []config.RealServer{{Forwarding: fwd}}}},
		}
	}
	defaults := map[string]string{"net.ipv4.vs.backup_only": "0", "net.ipv4.vs.sync_version": "1", "net.netfilter.nf_conntrack_tcp_loose": "1"}
	with := func(name, value string) map[string]string {
		m := map[string]string{}
		for k, v := range defaults {
			m[k] = v
		}
		m[name] = value
		return m
	}
	for _, tt := range []struct {
		name   string
		cfg    *config.Config
		values map[string]string
		want   []string // sysctls warned about
	}{
		{"nat, follow-role, defaults", cfgWith(config.SyncFollowRole, "nat"), defaults, nil},
		{"dr, follow-role, backup_only=0", cfgWith(config.SyncFollowRole, "dr"), defaults, []string{"net.ipv4.vs.backup_only"}},
		{"dr, follow-role, backup_only=1", cfgWith(config.SyncFollowRole, "dr"), with("net.ipv4.vs.backup_only", "1"), nil},
		{"tun on a real server only", &config.Config{VRRP: &config.VRRP{Sync: config.VRRPSync{Mode: config.SyncFollowRole}},
			VirtualServers: []config.VirtualServer{{Name: "x", Forwarding: "nat", RealServers: []config.RealServer{{Forwarding: "tun"}}}}},
			defaults, []string{"net.ipv4.vs.backup_only"}},
		{"both-always, backup_only=1: the master would not forward", cfgWith(config.SyncBothAlways, "dr"), with("net.ipv4.vs.backup_only", "1"), []string{"net.ipv4.vs.backup_only"}},
		{"both-always, dr, backup_only=0: nothing better to say", cfgWith(config.SyncBothAlways, "dr"), defaults, nil},
		{"sync version 0", cfgWith(config.SyncFollowRole, "nat"), with("net.ipv4.vs.sync_version", "0"), []string{"net.ipv4.vs.sync_version"}},
		{"tcp_loose 0", cfgWith(config.SyncBothAlways, "nat"), with("net.netfilter.nf_conntrack_tcp_loose", "0"), []string{"net.netfilter.nf_conntrack_tcp_loose"}},
		{"sync off: no sync warnings", cfgWith(config.SyncOff, "nat"), with("net.ipv4.vs.sync_version", "0"), nil},
		{"nothing readable", cfgWith(config.SyncFollowRole, "dr"), map[string]string{}, nil},
		{"no [vrrp]", &config.Config{}, with("net.ipv4.vs.backup_only", "1"), nil},
	} {
		var got []string
		for _, w := range SysctlWarnings(tt.cfg, tt.values) {
			got = append(got, w.Sysctl)
			if w.Msg == "" || !strings.HasPrefix(w.Fix, "sysctl -w "+w.Sysctl) {
				t.Errorf("%s: %+v: a warning says what goes wrong and the command that fixes it", tt.name, w)
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: warnings for %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestReadSysctls(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "net", "ipv4", "vs")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "backup_only"), []byte("1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sync_threshold"), []byte("3\t50\n"), 0o644)
	got := ReadSysctls(root)
	if len(got) != 2 || got["net.ipv4.vs.backup_only"] != "1" || got["net.ipv4.vs.sync_threshold"] != "3 50" {
		t.Errorf("read %v", got)
	}
}
