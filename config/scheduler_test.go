package config

import (
	"slices"
	"testing"
)

func TestSchedulerFlags(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "mh"
scheduler_flags = ["mh-port", "mh-fallback"]
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
[[virtual_server]]
name = "dns"
address = "192.0.2.10:53"
protocol = "udp"
scheduler = "sh"
scheduler_flags = ["sh-port"]
ops = true
  [[virtual_server.real_server]]
  address = "10.0.0.1:53"
`)
	web, dns := &cfg.VirtualServers[0], &cfg.VirtualServers[1]
	if !slices.Equal(web.SchedulerFlags, []string{"mh-port", "mh-fallback"}) || SchedulerFlagBits(web) != 3 || web.OnePacket {
		t.Errorf("web: flags %v bits %b ops %v", web.SchedulerFlags, SchedulerFlagBits(web), web.OnePacket)
	}
	if SchedulerFlagBits(dns) != 2 || !dns.OnePacket {
		t.Errorf("dns: bits %b ops %v, want sh-port (2) and ops", SchedulerFlagBits(dns), dns.OnePacket)
	}
}

func TestSchedulerFlagErrors(t *testing.T) {
	const vs = "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n"
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"flag of another scheduler", vs + "scheduler = \"mh\"\nscheduler_flags = [\"sh-port\", \"mh-prot\", \"mh-port\", \"mh-port\"]", []string{
			`director.toml:5: virtual_server[web].scheduler_flags[0]: "sh-port" is a flag of the sh scheduler; this service uses mh`,
			`director.toml:5: virtual_server[web].scheduler_flags[1]: unknown flag "mh-prot" for the mh scheduler; valid: mh-fallback, mh-port (did you mean "mh-port"?)`,
			`director.toml:5: virtual_server[web].scheduler_flags[3]: "mh-port" is listed twice`,
		}},
		{"scheduler without flags", vs + "scheduler_flags = [\"mh-port\"]", []string{
			`director.toml:4: virtual_server[web].scheduler_flags[0]: "mh-port" is a flag of the mh scheduler; this service uses wlc`,
		}},
		{"unknown flag, scheduler without flags", vs + "scheduler_flags = [\"fast\"]", []string{
			`director.toml:4: virtual_server[web].scheduler_flags[0]: "fast": the wlc scheduler takes no flags; only mh (mh-fallback, mh-port) and sh (sh-fallback, sh-port) do`,
		}},
		{"ops on tcp", vs + "ops = true", []string{
			`director.toml:4: virtual_server[web].ops: one-packet scheduling is for UDP services; this one is tcp`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { sameLines(t, problems(t, tt.src), tt.want) })
	}
}

func TestMaglevRemoveWarning(t *testing.T) {
	cfg := mustParse(t, "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\nscheduler = \"mh\"\non_failure = \"remove\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n")
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].String() != `director.toml:5: virtual_server[web].on_failure: an mh service keeps a failed real server at weight 0 instead of removing it, so that the Maglev table does not move other flows` {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
}
