package api

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, v any, where string) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want an object", where, v)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestStatusJSONSchema pins the v1 field names: they are an API. Adding a
// field means adding it here; renaming or removing one needs /api/v2.
func TestStatusJSONSchema(t *testing.T) {
	s := startStack(t)
	_, _, body := testutil.Get(t, s.url+"/api/v1/status")

	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	vs := doc["virtual_servers"].([]any)[0].(map[string]any)
	rs := vs["real_servers"].([]any)[1].(map[string]any)
	ev := doc["events"].([]any)[0].(map[string]any)
	for _, tc := range []struct {
		where string
		v     any
		want  string
	}{
		{"status", doc, "director events generated_at version virtual_servers"},
		{"director", doc["director"], "config_path config_sha256 ready version write_api"},
		{"virtual server", vs, "check counters fallback fallback_active forwarding healthy_weight hysteresis in_kernel name on_failure panic panic_since panic_threshold pool quorum quorum_lost real_servers real_servers_up service"},
		{"pool", vs["pool"], "damped disabled down drained draining idle serving total unknown"},
		{"service", vs["service"], "address family persistence_netmask persistence_seconds protocol scheduler"},
		{"counters", vs["counters"], "active_connections bytes_in bytes_out connections inactive_connections packets_in packets_out persistent_connections"},
		{"real server", rs, "address check checks configured_weight consecutive_failures consecutive_successes counters flap_penalty forwarding held_by_panic history last_check last_failure last_success override programmed_weight since slow_start state suppressed suppressed_until"},
		{"check result", rs["last_check"], "duration_seconds ok reason time"},
		{"a real server's check", rs["checks"].([]any)[0], "check consecutive_failures consecutive_successes last_check name state"},
		{"event", ev, "check from real_server reason recent time to virtual_server"},
	} {
		if got := strings.Join(keysOf(t, tc.v, tc.where), " "); got != tc.want {
			t.Errorf("%s fields:\n got  %s\n want %s", tc.where, got, tc.want)
		}
	}

	var st StatusV1
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != "v1" || st.Director.Version != "v1.2.3" || !st.Director.Ready || !strings.HasPrefix(st.Director.ConfigSHA256, "9f2c4e0b") {
		t.Errorf("header = %+v %+v", st.Version, st.Director)
	}
	v := st.VirtualServers[0]
	if v.Name != "web" || v.Service.Address != "192.0.2.10:80" || v.Service.Protocol != "tcp" || v.Service.Scheduler != "wrr" ||
		v.RealServersUp != 1 || !v.InKernel || v.Fallback != "127.0.0.1:8089" || v.FallbackActive {
		t.Errorf("virtual server = %+v", v)
	}
	up, down := v.RealServers[0], v.RealServers[1]
	if up.Address != s.up.String() || up.State != "up" || up.ProgrammedWeight == nil || *up.ProgrammedWeight != 100 ||
		up.LastCheck == nil || !up.LastCheck.OK || up.LastSuccess == nil || up.Counters.ActiveConnections != 17 || up.Counters.Connections != 1234 {
		t.Errorf("up server = %+v", up)
	}
	if down.State != "down" || down.ProgrammedWeight == nil || *down.ProgrammedWeight != 0 || down.ConfiguredWeight != 50 ||
		down.LastCheck == nil || down.LastCheck.Reason != "status 503" || down.ConsecutiveFailures < 3 || down.LastSuccess != nil {
		t.Errorf("down server = %+v (last %+v)", down, down.LastCheck)
	}
	if len(down.Checks) != 1 || down.Checks[0].State != "down" || down.Checks[0].LastCheck == nil ||
		down.Checks[0].LastCheck.Reason != "status 503" || down.Checks[0].ConsecutiveFailures < 3 {
		t.Errorf("down server's checks = %+v", down.Checks)
	}
	// History is newest first and ends with the last check.
	if len(down.History) < 3 || down.History[0] != *down.LastCheck || down.History[0].Time.Before(down.History[len(down.History)-1].Time) {
		t.Errorf("down history = %+v", down.History)
	}
	var sawDown bool
	for _, e := range st.Events {
		if e.RealServer == s.down.String() && e.To == "down" && e.From == "unknown" && e.Reason == "status 503" && len(e.Recent) > 0 {
			sawDown = true
		}
	}
	if !sawDown {
		t.Errorf("events lack the 503 server going down: %+v", st.Events)
	}
}

// TestMetricsScrapeIsPromtoolClean lints a real scrape, after real
// transitions and with kernel statistics, with Prometheus's own linter.
func TestMetricsScrapeIsPromtoolClean(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool", "prometheus")
	s := startStack(t)
	_, _, body := testutil.Get(t, s.url+"/metrics")
	for _, want := range []string{
		`director_real_server_state{real_server="` + s.down.String() + `",state="down",virtual_server="web"} 1`,
		`director_check_failures_total{check="http",real_server="` + s.down.String() + `",reason="status",virtual_server="web"}`,
		`director_ipvs_backend_connections_active{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",real_server="` + s.up.String() + `",remote_address="127.0.0.1",remote_port="`,
		`director_ipvs_up 1`,
		`director_real_server_weight{real_server="` + s.down.String() + `",virtual_server="web"} 0`,
		`director_state_transitions_total{real_server="` + s.down.String() + `",to="down",virtual_server="web"} 1`,
		`director_build_info{goversion="`,
		`director_config_hash 1.`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
	if strings.TrimSpace(out.String()) != "" {
		t.Errorf("promtool check metrics has findings:\n%s", out.String())
	}
}
