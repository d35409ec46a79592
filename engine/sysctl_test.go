package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
)

func TestSysctlWarnings(t *testing.T) {
	vs := func(name, proto, onFailure string, persistence, drain time.Duration) config.VirtualServer {
		return config.VirtualServer{Name: name, Protocol: proto, OnFailure: onFailure, Persistence: persistence, DrainTimeout: drain}
	}
	both := map[string]int{sysctlQuiescentTemplate: 0, sysctlNodestConn: 0}
	tests := []struct {
		name   string
		vss    []config.VirtualServer
		values map[string]int
		want   string // sysctl: virtual servers, ...
	}{
		{"plain quiesce: fine", []config.VirtualServer{vs("web", "tcp", "quiesce", 0, time.Minute)}, both, "[]"},
		{"persistent quiesce", []config.VirtualServer{vs("web", "tcp", "quiesce", time.Minute, 0)}, both,
			"[net.ipv4.vs.expire_quiescent_template [web]]"},
		{"persistent remove but draining", []config.VirtualServer{vs("web", "tcp", "remove", time.Minute, time.Minute)}, both,
			"[net.ipv4.vs.expire_quiescent_template [web] net.ipv4.vs.expire_nodest_conn [web]]"},
		{"persistent, sysctl set", []config.VirtualServer{vs("web", "tcp", "quiesce", time.Minute, 0)},
			map[string]int{sysctlQuiescentTemplate: 1, sysctlNodestConn: 0}, "[]"},
		{"udp deleted at once", []config.VirtualServer{vs("dns", "udp", "quiesce", 0, 0), vs("dns2", "udp", "quiesce", 0, time.Minute)}, both,
			"[net.ipv4.vs.expire_nodest_conn [dns]]"},
		{"no ip_vs: unknown", []config.VirtualServer{vs("web", "tcp", "remove", time.Minute, 0)}, map[string]int{}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, w := range sysctlWarnings(&config.Config{VirtualServers: tt.vss}, tt.values) {
				got = append(got, w.Sysctl, fmt.Sprint(w.VirtualServers))
				if w.Fix != "sysctl -w "+w.Sysctl+"=1" {
					t.Errorf("fix = %q", w.Fix)
				}
			}
			if s := fmt.Sprint(got); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
}

func TestKernelWarningsReadsProc(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "net", "ipv4", "vs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "expire_quiescent_template"), []byte("0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "expire_nodest_conn"), []byte("1\n"), 0o644)
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{Name: "web", Protocol: "tcp", OnFailure: "remove", Persistence: time.Minute, DrainTimeout: time.Minute}}}
	ws := KernelWarnings(cfg, root)
	if len(ws) != 1 || ws[0].Sysctl != "net.ipv4.vs.expire_quiescent_template" || ws[0].Value != 0 {
		t.Errorf("KernelWarnings = %+v, want one for expire_quiescent_template", ws)
	}
	if ws := KernelWarnings(cfg, filepath.Join(root, "missing")); len(ws) != 0 {
		t.Errorf("no /proc entries: %+v, want none", ws)
	}
}

// Announced services need sloppy_tcp / sloppy_sctp: a flow the routers
// move here from another director arrives mid-connection.
func TestSloppyWarnings(t *testing.T) {
	ann := config.VIPAnnounce{Enabled: true}
	cfg := &config.Config{RouteTable: &config.RouteTable{Table: 100}, VirtualServers: []config.VirtualServer{
		{Name: "web", Protocol: "tcp", OnFailure: "quiesce", Announce: ann},
		{Name: "sig", Protocol: "sctp", OnFailure: "quiesce", Announce: ann},
		{Name: "dns", Protocol: "udp", OnFailure: "quiesce", DrainTimeout: time.Minute, Announce: ann},
		{Name: "quiet", Protocol: "tcp", OnFailure: "quiesce"},
	}}
	off := map[string]int{sysctlSloppyTCP: 0, sysctlSloppySCTP: 0}
	var got []string
	for _, w := range sysctlWarnings(cfg, off) {
		got = append(got, w.Sysctl, fmt.Sprint(w.VirtualServers))
	}
	if s := fmt.Sprint(got); s != "[net.ipv4.vs.sloppy_tcp [web] net.ipv4.vs.sloppy_sctp [sig]]" {
		t.Errorf("got %s", s)
	}
	if ws := sysctlWarnings(cfg, map[string]int{sysctlSloppyTCP: 1, sysctlSloppySCTP: 1}); len(ws) != 0 {
		t.Errorf("warnings with both set: %+v", ws)
	}
	cfg.RouteTable = nil
	if ws := sysctlWarnings(cfg, off); len(ws) != 0 {
		t.Errorf("warnings with nothing announcing: %+v", ws)
	}
}
