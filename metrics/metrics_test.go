package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
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

	problems, err := testutil.GatherAndLint(m)
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
	if err := testutil.GatherAndCompare(m, strings.NewReader(want),
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
		{"rcode SERVFAIL", "status"},
		{"answer mismatch", "expect"},
		{"no rows", "expect"},
		{"no entries", "expect"},
		{"auth failed", "auth"},
		{"auth failed: secret mismatch", "auth"},
		{"rejected", "status"},
		// exec: the program's verdict, its death, its output.
		{"exit status 1", "exit"},
		{"exit status 3: replica lag 45s", "exit"},
		{"killed by signal killed", "signal"},
		{"killed by signal segmentation fault: core dumped", "signal"},
		{`bad output "weight=x": want weight=N with N 0-65535`, "output"},
		// sip: an answer that does not parse.
		{"bad response", "protocol"},
		// a dialogue step says where it failed after the reason.
		{"expect mismatch at step 2", "expect"},
		{"status NOT_SERVING", "status"},
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
# HELP director_check_failures_total Failed health checks by reason class (timeout, refused, unreachable, reset, dns, canceled, status, body, expect, tls, icmp, auth, exit, signal, output, protocol, error).
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
	if err := testutil.GatherAndCompare(m, strings.NewReader(want), names...); err != nil {
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

// TestHandlerStreamsWhatGatherSees: the per-server series the handler
// writes straight from the store are the ones a Gather returns, escaping
// included, and the whole page parses and lints clean; gzip works.
func TestHandlerStreamsWhatGatherSees(t *testing.T) {
	m := New(Build{Version: "v1"})
	for i, vs := range []string{"web", `odd "name" \ with
newline`} {
		rs := fmt.Sprintf("10.0.0.%d:80", i+1)
		m.Check(vs, rs, "http", true, time.Millisecond)
		m.Check(vs, rs, "http", false, time.Millisecond)
		m.CheckOutcome(vs, rs, "http", false, "status 503", time.Unix(1700000000, 0), 1)
		m.RealServer(vs, rs, "down", 0, 100)
		m.Transition(vs, rs, "down")
		m.Flap(vs, rs)
		m.policy.Override(vs, rs, "drain")
	}
	mem := ipvs.NewMemory()
	web := ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.10:80"))
	mem.CreateService(context.Background(), ipvs.Service{Key: web, Scheduler: "wrr"})
	mem.CreateDestination(context.Background(), web, ipvs.Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 3})
	mem.SetCounters(web, netip.MustParseAddrPort("10.0.0.1:80"), ipvs.Counters{Connections: 9, ActiveConns: 2})
	m.SetKernelStats(NewIPVSCollector(mem, func() map[ipvs.ServiceKey]string { return map[ipvs.ServiceKey]string{web: "web"} }, time.Second, nil))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, gz := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		// A bare Transport so that gzip is not undone behind our back.
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		if gz {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatal("asked for gzip, got none")
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		page, err := io.ReadAll(body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		scraped, err := parser.TextToMetricFamilies(bytes.NewReader(page))
		if err != nil {
			t.Fatalf("the page does not parse: %v\n%s", err, page)
		}
		gathered, err := m.Gather()
		if err != nil {
			t.Fatal(err)
		}
		streamed := map[string]bool{}
		for i := range m.servers.families {
			streamed[m.servers.families[i].name] = true
		}
		for i := range m.kernel.families {
			streamed[m.kernel.families[i].name] = true
		}
		compared := 0
		for _, g := range gathered {
			// A read's duration differs from read to read.
			if !streamed[g.GetName()] || g.GetName() == "director_ipvs_scrape_duration_seconds" {
				continue
			}
			compared++
			s := scraped[g.GetName()]
			if s == nil {
				t.Fatalf("%s gathered but not on the page", g.GetName())
			}
			if got, want := textOf(t, s), textOf(t, g); got != want {
				t.Errorf("%s differs between the page and Gather:\npage:\n%s\ngather:\n%s", g.GetName(), got, want)
			}
		}
		if compared < 20 {
			t.Errorf("compared only %d streamed families", compared)
		}
		if _, ok := scraped["director_build_info"]; !ok {
			t.Error("the registry's own metrics are missing from the page")
		}
	}
}

func textOf(t *testing.T, f *dto.MetricFamily) string {
	t.Helper()
	var b strings.Builder
	if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
		t.Fatal(err)
	}
	// Series order is not part of the format: compare them as a set.
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// countingTable counts reads of the table's services.
type countingTable struct {
	ipvs.Table
	reads int
}

func (c *countingTable) Services(ctx context.Context) ([]ipvs.ServiceState, error) {
	c.reads++
	return c.Table.Services(ctx)
}

// TestHandlerKeepsNamedFamilies: name[] keeps exactly the families named,
// from the registry, the per-server store and the kernel's statistics
// alike; a scrape that names no kernel family does not read the table.
func TestHandlerKeepsNamedFamilies(t *testing.T) {
	m := New(Build{Version: "v1"})
	m.Check("web", "10.0.0.1:80", "http", true, time.Millisecond)
	m.RealServer("web", "10.0.0.1:80", "up", 1, 1)
	m.Schedule.Started(time.Millisecond)
	mem := ipvs.NewMemory()
	web := ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.10:80"))
	mem.CreateService(context.Background(), ipvs.Service{Key: web, Scheduler: "wrr"})
	table := &countingTable{Table: mem}
	m.SetKernelStats(NewIPVSCollector(table, func() map[ipvs.ServiceKey]string { return map[ipvs.ServiceKey]string{web: "web"} }, time.Second, nil))

	families := func(query string) []string {
		t.Helper()
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics"+query, nil))
		parser := expfmt.NewTextParser(model.UTF8Validation)
		scraped, err := parser.TextToMetricFamilies(rec.Body)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return slices.Sorted(maps.Keys(scraped))
	}
	cases := []struct {
		query     string
		want      []string
		tableRead bool
	}{
		{"?name[]=director_checks_started_total&name[]=director_checks_total",
			[]string{"director_checks_started_total", "director_checks_total"}, false},
		{"?name[]=director_ipvs_up", []string{"director_ipvs_up"}, true},
		{"?name[]=no_such_family", nil, false},
	}
	for _, c := range cases {
		before := table.reads
		if got := families(c.query); !slices.Equal(got, c.want) {
			t.Errorf("%s: families %v, want %v", c.query, got, c.want)
		}
		if read := table.reads > before; read != c.tableRead {
			t.Errorf("%s: table read %v, want %v", c.query, read, c.tableRead)
		}
	}
	// Without names, everything: the three kinds of family at least.
	all := families("")
	for _, name := range []string{"director_checks_started_total", "director_checks_total", "director_ipvs_up", "go_goroutines"} {
		if !slices.Contains(all, name) {
			t.Errorf("whole page lacks %s", name)
		}
	}
}
