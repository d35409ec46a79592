package vrrp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lvsdirector/director/config"
)

// The sysctls that decide whether synced connections survive a takeover
// and whether a BACKUP director forwards traffic it should not. They are
// read and checked at start; the director sets none of them (they belong
// to the host's configuration management), it says which to set.
var syncSysctls = []string{
	"net/ipv4/vs/backup_only",
	"net/ipv4/vs/sync_version",
	"net/ipv4/vs/sync_ports",
	"net/ipv4/vs/sync_threshold",
	"net/ipv4/vs/sync_refresh_period",
	"net/ipv4/vs/conn_reuse_mode",
	"net/ipv4/vs/conntrack",
	"net/netfilter/nf_conntrack_tcp_loose",
}

// Warning is a sysctl that works against the pair.
type Warning struct {
	Sysctl string // dotted, as sysctl(8) names it
	Value  string
	Msg    string
	Fix    string
}

// ReadSysctls reads the sysctls that matter for the pair under procRoot
// ("/proc"): name (dotted) -> value, whitespace collapsed. Missing ones
// (no ip_vs or nf_conntrack module yet) are left out.
func ReadSysctls(procRoot string) map[string]string {
	out := map[string]string{}
	for _, name := range syncSysctls {
		b, err := os.ReadFile(filepath.Join(procRoot, "sys", name))
		if err == nil {
			out[strings.ReplaceAll(name, "/", ".")] = strings.Join(strings.Fields(string(b)), " ")
		}
	}
	return out
}

// SysctlWarnings checks values (from ReadSysctls) against cfg. It is pure.
func SysctlWarnings(cfg *config.Config, values map[string]string) []Warning {
	v := cfg.VRRP
	if v == nil {
		return nil
	}
	var out []Warning
	var tunneled []string
	for _, vs := range cfg.VirtualServers {
		uses := vs.Forwarding == "dr" || vs.Forwarding == "tun"
		for _, rs := range vs.RealServers {
			uses = uses || rs.Forwarding == "dr" || rs.Forwarding == "tun"
		}
		if uses {
			tunneled = append(tunneled, vs.Name)
		}
	}
	backupOnly, ok := values["net.ipv4.vs.backup_only"]
	switch {
	case !ok:
	case backupOnly != "0" && v.Sync.Mode == config.SyncBothAlways:
		out = append(out, Warning{Sysctl: "net.ipv4.vs.backup_only", Value: backupOnly,
			Msg: "backup_only switches the director function off while a backup sync daemon runs, and in both-always mode one always runs: the MASTER would forward nothing",
			Fix: "sysctl -w net.ipv4.vs.backup_only=0"})
	case backupOnly == "0" && v.Sync.Mode == config.SyncFollowRole && len(tunneled) > 0:
		out = append(out, Warning{Sysctl: "net.ipv4.vs.backup_only", Value: backupOnly,
			Msg: fmt.Sprintf("the BACKUP director keeps its table ready and forwards any packet for a VIP it receives; with dr or tun forwarding (%s) a packet a real server or the other director sends it can loop between the two",
				strings.Join(tunneled, ", ")),
			Fix: "sysctl -w net.ipv4.vs.backup_only=1 (it applies while the backup sync daemon runs, which in follow-role mode is exactly while not MASTER)"})
	}
	if s, ok := values["net.ipv4.vs.sync_version"]; ok && s == "0" && v.Sync.Mode != config.SyncOff {
		out = append(out, Warning{Sysctl: "net.ipv4.vs.sync_version", Value: s,
			Msg: "sync protocol version 0 carries no IPv6, firewall marks, persistence templates or timeouts, and both directors must use the same version",
			Fix: "sysctl -w net.ipv4.vs.sync_version=1 on both directors"})
	}
	if s, ok := values["net.netfilter.nf_conntrack_tcp_loose"]; ok && s == "0" && v.Sync.Mode != config.SyncOff {
		out = append(out, Warning{Sysctl: "net.netfilter.nf_conntrack_tcp_loose", Value: s,
			Msg: "after a takeover the new MASTER has IPVS entries for the synced connections but no conntrack entries; with tcp_loose=0 their mid-stream packets are INVALID to netfilter, and a firewall that drops INVALID breaks them",
			Fix: "sysctl -w net.netfilter.nf_conntrack_tcp_loose=1"})
	}
	return out
}
