package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/api"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

type fixedSource struct{ st engine.Status }

func (f fixedSource) Ready() bool              { return f.st.Ready }
func (f fixedSource) Snapshot() *engine.Status { return &f.st }

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func sampleStatus() engine.Status {
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	up, down := netip.MustParseAddrPort("10.0.0.11:8080"), netip.MustParseAddrPort("10.0.0.12:8080")
	failed := engine.CheckResult{Time: t0.Add(-2 * time.Second), Reason: "status 503", Duration: 1200 * time.Microsecond}
	okRes := engine.CheckResult{Time: t0.Add(-time.Second), OK: true, Duration: 700 * time.Microsecond}
	return engine.Status{
		Time: t0, Ready: true, ConfigPath: "/etc/director/director.toml",
		ConfigSHA256: "9f2c4e0b7a1d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
		VirtualServers: []engine.VirtualServerStatus{{
			Name: "web", Service: ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vip), Scheduler: "wrr", PersistenceNetmask: 32},
			Forwarding: "nat", OnFailure: "quiesce", Check: "http", InKernel: true,
			Fallback: netip.MustParseAddrPort("127.0.0.1:8089"),
			RealServers: []engine.RealServerStatus{
				{Address: up, Forwarding: "nat", State: health.Up, Since: t0.Add(-303 * time.Second), ConfiguredWeight: 100,
					ProgrammedWeight: 100, Last: &okRes, History: []engine.CheckResult{okRes}, LastSuccess: okRes.Time,
					Counters: ipvs.Counters{ActiveConns: 17, InactiveConns: 3}},
				{Address: down, Forwarding: "nat", State: health.Down, Since: t0.Add(-12 * time.Second), ConfiguredWeight: 50,
					ProgrammedWeight: 0, Last: &failed, ConsecutiveFailures: 3, History: []engine.CheckResult{failed}, LastFailure: failed.Time},
			},
		}},
		Events: []engine.Event{{Time: t0.Add(-12 * time.Second), VirtualServer: "web", RealServer: down,
			From: health.Up, To: health.Down, Reason: "status 503", Recent: []engine.CheckResult{failed}}},
	}
}

func TestPrintStatusLooksLikeIpvsadm(t *testing.T) {
	var st api.StatusV1
	srv := httptest.NewServer(api.Handler(fixedSource{sampleStatus()}, api.Options{Version: "v1.2.3"}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printStatus(&out, st, t0)
	want := `director v1.2.3, ready, config /etc/director/director.toml (9f2c4e0b7a1d)
Prot LocalAddress:Port  Scheduler  Flags                                                     Name
  -> RemoteAddress:Port Forward    Weight  Config  State     For   Last check             ActiveConn  InActConn
TCP 192.0.2.10:80       wrr                                              web: 1/2 serving (1 down)
  -> 10.0.0.11:8080     Masq       100     100     up        5m3s  ok 700µs               17          3
  -> 10.0.0.12:8080     Masq       0       50      down      12s   status 503 (3 in a row)  0           0
  -> 127.0.0.1:8089     Masq                       fallback        standby
`
	got := out.String()
	// The table layout is tabwriter's; compare the lines' words, and the
	// first columns' alignment by the position of "->".
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i, w := range wantLines {
		if i >= len(gotLines) {
			t.Fatalf("output has %d lines, want at least %d:\n%s", len(gotLines), len(wantLines), got)
		}
		if strings.Join(strings.Fields(gotLines[i]), " ") != strings.Join(strings.Fields(w), " ") {
			t.Errorf("line %d:\n got  %q\n want %q", i+1, gotLines[i], w)
		}
	}
	for _, want := range []string{"Recent transitions (newest first):", "12s ago  web 10.0.0.12:8080  up -> down  status 503"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	srv := httptest.NewServer(api.Handler(fixedSource{sampleStatus()}, api.Options{Version: "v1.2.3"}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  []string
		err  string
	}{
		{"table", []string{"status", "-addr", srv.URL}, 0, []string{"TCP 192.0.2.10:80", "10.0.0.12:8080", "status 503 (3 in a row)"}, ""},
		{"host:port without scheme", []string{"status", "-addr", strings.TrimPrefix(srv.URL, "http://")}, 0, []string{"web: 1/2 serving (1 down)"}, ""},
		{"json", []string{"status", "-addr", srv.URL, "-json"}, 0, []string{`"version": "v1"`, `"state": "down"`}, ""},
		{"one virtual server", []string{"status", "-addr", srv.URL, "-virtual-server", "web"}, 0, []string{"web: 1/2 serving"}, ""},
		{"unknown virtual server", []string{"status", "-addr", srv.URL, "-virtual-server", "nope"}, 1, nil, `404 Not Found: no virtual server "nope"`},
		{"nothing listening", []string{"status", "-addr", "127.0.0.1:1", "-timeout", "2s"}, 1, nil, "is the director running"},
		{"bad flag", []string{"status", "-nope"}, 2, nil, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := realMain(tc.args, &out, &errOut); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut.String())
			}
			for _, want := range tc.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errOut.String(), tc.err) {
				t.Errorf("stderr lacks %q: %s", tc.err, errOut.String())
			}
		})
	}
}

// TestStatusCommandWaitsOutBusy: a director answering 503 with
// Retry-After is asked again within -timeout; one that stays busy is
// reported with what it said.
func TestStatusCommandWaitsOutBusy(t *testing.T) {
	status := api.Handler(fixedSource{sampleStatus()}, api.Options{Version: "v1.2.3"})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many status requests are being rendered", http.StatusServiceUnavailable)
			return
		}
		status.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	start := time.Now()
	if code := realMain([]string{"status", "-addr", srv.URL}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "web: 1/2 serving") {
		t.Fatalf("exit %d after a 503: %s%s", code, out.String(), errOut.String())
	}
	if calls.Load() != 2 || time.Since(start) < time.Second {
		t.Errorf("%d requests in %s, want a second one after Retry-After (1s)", calls.Load(), time.Since(start))
	}

	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many status requests are being rendered", http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	errOut.Reset()
	if code := realMain([]string{"status", "-addr", busy.URL, "-timeout", "2500ms"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "503 Service Unavailable: too many status requests") {
		t.Errorf("always busy: exit %d, stderr %s", code, errOut.String())
	}
}

// TestDaemonNotifiesAndReportsStatus runs the real binary against one
// healthy and one failing backend: the failing one's transition runs
// notify_command, and `director status`, the status page and /metrics all
// show it down.
func TestDaemonNotifiesAndReportsStatus(t *testing.T) {
	serve := func(status int) string {
		return testutil.ServeHTTP(t, testutil.Answer(status, "")).String()
	}
	good, bad := serve(200), serve(503)
	listen := testutil.ClosedPort(t).String()

	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	script := filepath.Join(dir, "notify")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$DIRECTOR_REAL_SERVER $DIRECTOR_FROM>$DIRECTOR_TO $DIRECTOR_REASON\" >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(`[director]
listen = %q
notify_command = [%q, %q]

[defaults.check]
interval = "200ms"
timeout = "100ms"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [virtual_server.check]
  type = "http"
  [[virtual_server.real_server]]
  address = %q
  [[virtual_server.real_server]]
  address = %q
`, listen, script, events, good, bad))
	d := startDaemon(t, "run", "-config", cfg, "-dry-run")
	d.waitLog(`real server down.*status 503`)

	var got string
	testutil.Within(20*time.Second, func() bool {
		b, _ := os.ReadFile(events)
		got = string(b)
		return strings.Contains(got, bad+" unknown>down status 503") && strings.Contains(got, good+" unknown>up check passed")
	})
	if !strings.Contains(got, bad+" unknown>down status 503") {
		t.Fatalf("notify_command saw %q; log:\n%s", got, d.logText())
	}

	var out, errOut bytes.Buffer
	if code := realMain([]string{"status", "-addr", listen}, &out, &errOut); code != 0 {
		t.Fatalf("director status: exit %d: %s", code, errOut.String())
	}
	if !regexp.MustCompile(regexp.QuoteMeta(bad) + `\s+Masq\s+0\s+1\s+down\s+\S+\s+status 503`).MatchString(out.String()) {
		t.Errorf("director status does not show %s down with its reason:\n%s", bad, out.String())
	}
	if code, _, body := testutil.Get(t, "http://"+listen+"/"); code != 200 || !strings.Contains(body, `<span class="reason">status 503</span>`) {
		t.Errorf("status page = %d, lacks the reason", code)
	}
	_, _, metrics := testutil.Get(t, "http://"+listen+"/metrics")
	for _, want := range []string{
		`director_notifications_total{result="success",sink="command"}`,
		`director_ipvs_up 1`,
		`director_real_server_state{real_server="` + bad + `",state="down",virtual_server="web"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	d.stop()
}

// TestPrintStatusCountsWhatTheKernelGets: a drained and a disabled
// server are up, but the summary counts them by what the kernel gets.
func TestPrintStatusCountsWhatTheKernelGets(t *testing.T) {
	st := sampleStatus()
	rs := st.VirtualServers[0].RealServers
	rs[1] = engine.RealServerStatus{Address: netip.MustParseAddrPort("10.0.0.12:8080"), Forwarding: "nat", State: health.Up,
		ConfiguredWeight: 50, ProgrammedWeight: 0, Since: t0.Add(-time.Minute),
		RealServerAdmin: engine.RealServerAdmin{Override: &engine.Override{Kind: "drain", Reason: "kernel upgrade", Source: "api", By: "127.0.0.1", Since: t0}}}
	st.VirtualServers[0].RealServers = append(rs, engine.RealServerStatus{Address: netip.MustParseAddrPort("10.0.0.13:8080"), Forwarding: "nat",
		State: health.Up, ConfiguredWeight: 50, ProgrammedWeight: -1, Since: t0.Add(-time.Minute),
		RealServerAdmin: engine.RealServerAdmin{Override: &engine.Override{Kind: "disable", Reason: "disk failing", Source: "api", By: "127.0.0.1", Since: t0}}})
	srv := httptest.NewServer(api.Handler(fixedSource{st}, api.Options{Version: "v1.2.3"}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := realMain([]string{"status", "-addr", srv.URL}, &out, &errOut); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"web: 1/3 serving (1 drained, 1 disabled)",
		"10.0.0.12:8080     Masq       0       50      up,drain",
		"10.0.0.13:8080     Masq       -       50      up,disable",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("director status lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("director status with a drained and a disabled server:\n%s", out.String())
}

// Of a server with several checks, the column names the failing one.
func TestLastCheckNamesTheFailingCheck(t *testing.T) {
	ok := &api.CheckResultV1{OK: true, DurationSeconds: 0.0007}
	bad := &api.CheckResultV1{Reason: "status 503", Check: "admin"}
	rs := api.RealServerV1{LastCheck: ok, ConsecutiveFailures: 0, Checks: []api.CheckV1{
		{Name: "app", State: "up", LastCheck: ok},
		{Name: "admin", State: "down", LastCheck: bad, ConsecutiveFailures: 2},
	}}
	if got, want := lastCheck(rs), "admin: status 503 (2 in a row)"; got != want {
		t.Errorf("lastCheck = %q, want %q", got, want)
	}
	rs.Checks[1].LastCheck, rs.Checks[1].ConsecutiveFailures = ok, 0
	if got, want := lastCheck(rs), "ok 700µs"; got != want {
		t.Errorf("all passing: lastCheck = %q, want %q", got, want)
	}
}
