package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsLintAndValues(t *testing.T) {
	m := New(Build{Version: "v1.0.0", Revision: "abc"})
	m.Check("web", "10.0.0.1:80", "http", true, 3*time.Millisecond)
	m.Check("web", "10.0.0.1:80", "http", false, 2*time.Second)
	m.RealServer("web", "10.0.0.1:80", true, 100, 100)
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
	if n := testutil.CollectAndCount(m.checks); n != 0 {
		t.Errorf("after ForgetRealServer %d check series remain, want 0", n)
	}
	if n := testutil.CollectAndCount(m.up); n != 0 {
		t.Errorf("after ForgetRealServer %d up series remain, want 0", n)
	}
}
