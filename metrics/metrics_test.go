package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsdirector/director/health"
)

func TestMetricsLintAndValues(t *testing.T) {
	m := New(Build{Version: "v1.0.0", Revision: "abc"})
	m.Check("web", "10.0.0.1:80", "http", true, 3*time.Millisecond)
	m.Check("web", "10.0.0.1:80", "http", false, 2*time.Second)
	m.RealServer("web", "10.0.0.1:80", "up", 100, 100)
	m.Transition("web", "10.0.0.1:80", "up")
	m.IPVSOp("create_service", nil)
	m.IPVSOp("update_destination", errors.New("x"))
	m.Reconcile("start", nil, time.Millisecond)
	m.Reload(true, time.Unix(1700000000, 0))

	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	want := `
# HELP director_checks_total Health checks completed, by result (success or failure).
# TYPE director_checks_total counter
director_checks_total{check="http",real_server="10.0.0.1:80",result="failure",virtual_server="web"} 1
director_checks_total{check="http",real_server="10.0.0.1:80",result="success",virtual_server="web"} 1
# HELP director_ipvs_operations_total Kernel IPVS table operations, by kind and result (success or error).
# TYPE director_ipvs_operations_total counter
director_ipvs_operations_total{op="create_service",result="success"} 1
director_ipvs_operations_total{op="update_destination",result="error"} 1
# HELP director_config_last_reload_success_timestamp_seconds Unix time of the last successful configuration load or reload.
# TYPE director_config_last_reload_success_timestamp_seconds gauge
director_config_last_reload_success_timestamp_seconds 1.7e+09
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"director_checks_total", "director_ipvs_operations_total",
		"director_config_last_reload_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	m.ForgetRealServer("web", "10.0.0.1:80")
	if n := testutil.CollectAndCount(m.servers); n != 0 {
		t.Errorf("after ForgetRealServer %d per-server series remain, want 0", n)
	}
}

func TestReasonClass(t *testing.T) {
	for _, tc := range []struct{ reason, want string }{
		{"timeout", "timeout"},
		{"refused", "refused"},
		{"unreachable", "unreachable"},
		{"reset", "reset"},
		{"dns", "dns"},
		{"canceled", "canceled"},
		{"status 503", "status"},
		{"body mismatch", "body"},
		{"expect mismatch", "expect"},
		{"tls: certificate expired", "tls"},
		{"icmp: ping_group_range excludes gid 0", "icmp"},
		{"error: connection closed", "error"},
		{"something new", "error"},
		{"", "error"},
	} {
		if got := ReasonClass(tc.reason); got != tc.want {
			t.Errorf("ReasonClass(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}

func TestStateOneHotAndCheckOutcome(t *testing.T) {
	m := New(Build{Version: "v1"})
	at := time.Unix(1700000000, 500_000_000)
	m.RealServer("web", "10.0.0.1:80", "down", 0, 100)
	m.CheckOutcome("web", "10.0.0.1:80", "http", false, "status 503", at, 3)
	m.CheckOutcome("web", "10.0.0.1:80", "http", false, "timeout", at, 4)
	m.Flap("web", "10.0.0.1:80")
	m.DriftRepaired("create_destination")
	m.ConfigHash("0000000000ff" + strings.Repeat("0", 52))
	m.Notification("webhook", "failure")
	want := `
# HELP director_real_server_state The real server's health state, one-hot: 1 for the current state, 0 for the others.
# TYPE director_real_server_state gauge
` + oneHot("down") + `# HELP director_real_server_up 1 when the real server is up after rise/fall, 0 when down or not yet known.
# TYPE director_real_server_up gauge
director_real_server_up{real_server="10.0.0.1:80",virtual_server="web"} 0
# HELP director_check_failures_total Failed health checks by reason class (timeout, refused, unreachable, reset, dns, status, body, expect, tls, icmp, canceled, error).
# TYPE director_check_failures_total counter
director_check_failures_total{check="http",real_server="10.0.0.1:80",reason="status",virtual_server="web"} 1
director_check_failures_total{check="http",real_server="10.0.0.1:80",reason="timeout",virtual_server="web"} 1
# HELP director_check_last_failure_timestamp_seconds Unix time of the real server's last failed check (absent until one fails).
# TYPE director_check_last_failure_timestamp_seconds gauge
director_check_last_failure_timestamp_seconds{real_server="10.0.0.1:80",virtual_server="web"} 1.7000000005e+09
# HELP director_real_server_consecutive_failures Failed checks in a row since the last success.
# TYPE director_real_server_consecutive_failures gauge
director_real_server_consecutive_failures{real_server="10.0.0.1:80",virtual_server="web"} 4
# HELP director_real_server_flaps_total Changes between up and down (either way) after the first verdict.
# TYPE director_real_server_flaps_total counter
director_real_server_flaps_total{real_server="10.0.0.1:80",virtual_server="web"} 1
# HELP director_reconcile_drift_repaired_total Kernel table operations a periodic resync needed because the table had drifted from the desired state, by kind.
# TYPE director_reconcile_drift_repaired_total counter
director_reconcile_drift_repaired_total{op="create_destination"} 1
# HELP director_config_hash First 48 bits of the SHA-256 of the running config file, as a number, so directors running different configs stand out.
# TYPE director_config_hash gauge
director_config_hash 255
# HELP director_notifications_total Transition notifications, by sink (command or webhook) and result (success, failure, dropped).
# TYPE director_notifications_total counter
director_notifications_total{result="failure",sink="webhook"} 1
`
	names := []string{"director_real_server_state", "director_real_server_up", "director_check_failures_total",
		"director_check_last_failure_timestamp_seconds", "director_real_server_consecutive_failures",
		"director_real_server_flaps_total", "director_reconcile_drift_repaired_total", "director_config_hash",
		"director_notifications_total"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	m.ForgetRealServer("web", "10.0.0.1:80")
	if n := testutil.CollectAndCount(m.servers); n != 0 {
		t.Errorf("after ForgetRealServer %d series remain", n)
	}
}

// oneHot is the expected director_real_server_state series for 10.0.0.1:80
// in state cur: one line per state health knows, so a new state is covered.
func oneHot(cur string) string {
	var lines []string
	for _, st := range health.States {
		v := 0
		if st.String() == cur {
			v = 1
		}
		lines = append(lines, fmt.Sprintf(`director_real_server_state{real_server="10.0.0.1:80",state=%q,virtual_server="web"} %d`, st.String(), v))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}
