package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin := testutil.RequireTool(t, "promtool", "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = "prometheus"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out.String())
}

func TestAlertRulesCheck(t *testing.T) { promtool(t, "check", "rules", "alerts.yml") }

func TestAlertRulesUnitTests(t *testing.T) { promtool(t, "test", "rules", "alerts_test.yml") }

// exported returns every metric name the director exports, with the
// suffixes histograms add.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.Build{Version: "test"})
	prod := metrics.NewTable(m)
	prod.DrainEnded("connections")
	prod.IPVSError("permission")
	prod.ReconcileFailing(true)
	prod.Rollback(nil)
	admin := metrics.NewPolicy(m)
	admin.Override("web", "10.0.0.1:80", "drain")
	admin.Damping("web", "10.0.0.1:80", 1000, true)
	admin.Panic("web", true)
	admin.PanicTripped("web")
	admin.Quorum("web", true, 1)
	m.Schedule.Started(time.Millisecond)
	m.Schedule.Skipped(1)
	// Touch every vector so its series exist.
	m.Check("web", "10.0.0.1:80", "http", false, time.Millisecond)
	m.CheckOutcome("web", "10.0.0.1:80", "http", true, "", time.Now(), 0)
	m.CheckOutcome("web", "10.0.0.1:80", "http", false, "timeout", time.Now(), 1)
	m.RealServer("web", "10.0.0.1:80", "up", 1, 1)
	m.Transition("web", "10.0.0.1:80", "up")
	m.Flap("web", "10.0.0.1:80")
	m.IPVSOp("create_service", nil)
	m.DriftRepaired("create_destination")
	m.Reconcile("start", nil, time.Millisecond)
	m.Reload(false, time.Now())
	m.Notification("command", "success")
	mem := ipvs.NewMemory()
	key := ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.10:80"))
	ctx := context.Background()
	if err := mem.CreateService(ctx, ipvs.Service{Key: key}); err != nil {
		t.Fatal(err)
	}
	if err := mem.CreateDestination(ctx, key, ipvs.Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 1}); err != nil {
		t.Fatal(err)
	}
	m.SetKernelStats(metrics.NewIPVSCollector(mem, nil, time.Second, slog.New(slog.DiscardHandler)))
	mfs, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[n+suffix] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bdirector_[a-z0-9_]+`)

// checkNames reports every director_ metric named in text that the
// director does not export: a renamed metric would otherwise leave a
// panel or an alert silently empty.
func checkNames(t *testing.T, file, text string, names map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range metricName.FindAllString(text, -1) {
		if !names[n] && !seen[n] {
			t.Errorf("%s uses %s, which the director does not export", file, n)
		}
		seen[n] = true
	}
	if len(seen) == 0 {
		t.Errorf("%s names no director metric", file)
	}
}

// TestEveryAlertIsTested checks that alerts_test.yml has a case for every
// alert in alerts.yml.
func TestEveryAlertIsTested(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*alertname:\s*(\S+)\s*$`).FindAllStringSubmatch(string(tests), -1) {
		tested[m[1]] = true
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 {
		t.Fatal("alerts.yml has no alert")
	}
	for _, m := range alerts {
		if !tested[m[1]] {
			t.Errorf("alert %s has no case in alerts_test.yml", m[1])
		}
	}
}

func TestRulesUseExportedMetrics(t *testing.T) {
	text, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "alerts.yml", string(text), exported(t))
}

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("grafana/director.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int                      `json:"id"`
			Type    string                   `json:"type"`
			Title   string                   `json:"title"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/director.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	names := exported(t)
	ids := map[int]bool{}
	var types, rows []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, p.GridPos)
		}
		types = append(types, p.Type)
		if p.Type == "row" {
			rows = append(rows, p.Title)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkNames(t, "panel "+p.Title, tg.Expr, names)
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"heatmap", "state-timeline", "bargauge"} {
		if !slices.Contains(types, want) {
			t.Errorf("dashboard has no %s panel", want)
		}
	}
	for _, want := range []string{"Pool health", "Checks", "Kernel IPVS traffic", "Reconcile and reload", "Operator overrides and safety", "Scheduler"} {
		if !slices.Contains(rows, want) {
			t.Errorf("dashboard has no row %q", want)
		}
	}
}

// TestScrapeConfig: prometheus.yml is a valid config without warnings,
// and both of its jobs find their directors (file_sd from director.d/).
func TestScrapeConfig(t *testing.T) {
	bin := testutil.RequireTool(t, "promtool", "prometheus")
	// run returns promtool's stdout (results) and stderr (logs).
	run := func(args ...string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = "prometheus"
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("promtool %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out, errOut := run("check", "config", "prometheus.yml")
	if all := out + errOut; strings.Contains(all, "WARNING") || !strings.Contains(all, "SUCCESS: 1 rule files found") {
		t.Errorf("promtool check config prometheus.yml:\n%s", all)
	}
	for job, targets := range map[string][]string{
		"director":    {"lb1.example.net:9410", "lb2.example.net:9410"},
		"director-sd": {"lb3.example.net:9410", "lb4.example.net:9410"},
	} {
		out, errOut := run("check", "service-discovery", "--timeout=3s", "prometheus.yml", job)
		var found []struct {
			Labels map[string]string `json:"labels"`
		}
		if err := json.Unmarshal([]byte(out), &found); err != nil {
			t.Fatalf("service discovery of %s: %v\n%s%s", job, err, out, errOut)
		}
		var got []string
		for _, f := range found {
			if f.Labels["job"] != job || f.Labels["__metrics_path__"] != "/metrics" {
				t.Errorf("%s: target %v", job, f.Labels)
			}
			got = append(got, f.Labels["__address__"])
		}
		slices.Sort(got)
		if !slices.Equal(got, targets) {
			t.Errorf("job %s discovers %v, want %v", job, got, targets)
		}
	}
}
