package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lvsdirector/director/config"
)

// Two IPVS sysctls decide what happens to connections of a server at
// weight 0 or deleted, and their kernel defaults work against what the
// config asks for (see README, "Graceful drain and the kernel"):
//
//   - expire_quiescent_template = 0: a persistent client keeps being sent
//     to its server even at weight 0, until its persistence template
//     times out; quiesce and drain then keep feeding a server new
//     connections.
//   - expire_nodest_conn = 0: packets of connections to a deleted server
//     are dropped silently until the connection entry times out, instead
//     of the entry being expired so the client can reconnect elsewhere.

// Sysctl names, relative to /proc/sys.
const (
	sysctlQuiescentTemplate = "net/ipv4/vs/expire_quiescent_template"
	sysctlNodestConn        = "net/ipv4/vs/expire_nodest_conn"
	sysctlSloppyTCP         = "net/ipv4/vs/sloppy_tcp"
	sysctlSloppySCTP        = "net/ipv4/vs/sloppy_sctp"
)

// KernelWarning is a sysctl setting that makes the kernel behave unlike
// the config asks.
type KernelWarning struct {
	Sysctl         string // dotted, as sysctl(8) names it
	Value          int
	VirtualServers []string // the virtual servers affected
	Msg            string   // what goes wrong
	Fix            string   // the command that fixes it
}

// KernelWarnings reads the IPVS sysctls under procRoot ("/proc") and
// returns a warning for each one that defeats what cfg asks for. A sysctl
// that cannot be read (no ip_vs module) gives no warning.
func KernelWarnings(cfg *config.Config, procRoot string) []KernelWarning {
	values := map[string]int{}
	for _, name := range []string{sysctlQuiescentTemplate, sysctlNodestConn, sysctlSloppyTCP, sysctlSloppySCTP} {
		b, err := os.ReadFile(filepath.Join(procRoot, "sys", name))
		if err != nil {
			continue
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			values[name] = v
		}
	}
	return sysctlWarnings(cfg, values)
}

// sysctlWarnings is KernelWarnings on values already read (name -> value;
// missing names are unknown). It is pure.
func sysctlWarnings(cfg *config.Config, values map[string]int) []KernelWarning {
	var persistentQuiesce, deletes, announcedTCP, announcedSCTP []string
	for _, vs := range cfg.VirtualServers {
		if vs.Announce.Enabled && cfg.Announcing() {
			switch vs.Protocol {
			case "tcp":
				announcedTCP = append(announcedTCP, vs.Name)
			case "sctp":
				announcedSCTP = append(announcedSCTP, vs.Name)
			}
		}
		if vs.Persistence > 0 && (vs.OnFailure == "quiesce" || vs.DrainTimeout > 0) {
			persistentQuiesce = append(persistentQuiesce, vs.Name)
		}
		if vs.OnFailure == "remove" || (vs.Protocol == "udp" && vs.DrainTimeout == 0) {
			deletes = append(deletes, vs.Name)
		}
	}
	var out []KernelWarning
	if v, ok := values[sysctlQuiescentTemplate]; ok && v == 0 && len(persistentQuiesce) > 0 {
		out = append(out, KernelWarning{
			Sysctl: dotted(sysctlQuiescentTemplate), Value: v, VirtualServers: persistentQuiesce,
			Msg: "persistent clients keep being sent to a real server at weight 0 (failed and quiesced, or draining) until their persistence times out, so it keeps getting new connections",
			Fix: fmt.Sprintf("sysctl -w %s=1", dotted(sysctlQuiescentTemplate)),
		})
	}
	if v, ok := values[sysctlNodestConn]; ok && v == 0 && len(deletes) > 0 {
		out = append(out, KernelWarning{
			Sysctl: dotted(sysctlNodestConn), Value: v, VirtualServers: deletes,
			Msg: "connections to a real server the director deletes (on_failure = \"remove\", or UDP deleted at once) are not cut cleanly: their packets are dropped until the connection entry times out, so clients hang instead of reconnecting",
			Fix: fmt.Sprintf("sysctl -w %s=1", dotted(sysctlNodestConn)),
		})
	}
	// Several directors behind ECMP: when a router moves a flow to
	// another director, that director sees the connection mid-stream.
	for _, sl := range []struct {
		name, proto string
		vss         []string
	}{{sysctlSloppyTCP, "TCP", announcedTCP}, {sysctlSloppySCTP, "SCTP", announcedSCTP}} {
		if v, ok := values[sl.name]; ok && v == 0 && len(sl.vss) > 0 {
			out = append(out, KernelWarning{
				Sysctl: dotted(sl.name), Value: v, VirtualServers: sl.vss,
				Msg: "these announced services break their " + sl.proto + " connections when the routers move them from another director to this one: IPVS only takes up a connection from its first packet",
				Fix: fmt.Sprintf("sysctl -w %s=1", dotted(sl.name)),
			})
		}
	}
	return out
}

func dotted(name string) string { return strings.ReplaceAll(name, "/", ".") }
