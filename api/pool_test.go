package api

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/internal/testutil"
)

func TestPoolClass(t *testing.T) {
	drain := &engine.Override{Kind: "drain"}
	disable := &engine.Override{Kind: "disable"}
	for _, tc := range []struct {
		name string
		rs   engine.RealServerStatus
		want PoolV1
	}{
		{"up with weight", engine.RealServerStatus{State: health.Up, ProgrammedWeight: 100}, PoolV1{Serving: 1}},
		{"up, drained", engine.RealServerStatus{State: health.Up, ProgrammedWeight: 0, RealServerAdmin: engine.RealServerAdmin{Override: drain}}, PoolV1{Drained: 1}},
		{"up, disabled", engine.RealServerStatus{State: health.Up, ProgrammedWeight: -1, RealServerAdmin: engine.RealServerAdmin{Override: disable}}, PoolV1{Disabled: 1}},
		{"down, disabled", engine.RealServerStatus{State: health.Down, ProgrammedWeight: -1, RealServerAdmin: engine.RealServerAdmin{Override: disable}}, PoolV1{Disabled: 1}},
		{"leaving the config", engine.RealServerStatus{State: health.Draining, ProgrammedWeight: 0}, PoolV1{Draining: 1}},
		{"up, damped", engine.RealServerStatus{State: health.Up, ProgrammedWeight: 0, RealServerAdmin: engine.RealServerAdmin{Suppressed: true}}, PoolV1{Damped: 1}},
		{"down, held in by the panic guard", engine.RealServerStatus{State: health.Down, ProgrammedWeight: 100, RealServerAdmin: engine.RealServerAdmin{HeldByPanic: true}}, PoolV1{Serving: 1}},
		{"down, quiesced", engine.RealServerStatus{State: health.Down, ProgrammedWeight: 0}, PoolV1{Down: 1}},
		{"down, removed", engine.RealServerStatus{State: health.Down, ProgrammedWeight: -1}, PoolV1{Down: 1}},
		{"unknown", engine.RealServerStatus{State: health.Unknown, ProgrammedWeight: 0}, PoolV1{Unknown: 1}},
		{"up, quorum lost to the fallback", engine.RealServerStatus{State: health.Up, ProgrammedWeight: 0}, PoolV1{Idle: 1}},
	} {
		var got PoolV1
		poolClass(&got, tc.rs)
		tc.want.Total = 1
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestPoolSummary(t *testing.T) {
	for _, tc := range []struct {
		p    PoolV1
		want string
	}{
		{PoolV1{Serving: 3, Total: 3}, "3/3 serving"},
		{PoolV1{Serving: 1, Drained: 1, Disabled: 1, Total: 3}, "1/3 serving (1 drained, 1 disabled)"},
		{PoolV1{Down: 2, Unknown: 1, Total: 3}, "0/3 serving (2 down, 1 unknown)"},
		{PoolV1{}, "0/0 serving"},
	} {
		if got := tc.p.Summary(); got != tc.want {
			t.Errorf("%+v.Summary() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

type fixedStatus struct{ st engine.Status }

func (f fixedStatus) Ready() bool              { return true }
func (f fixedStatus) Snapshot() *engine.Status { return &f.st }

// TestPoolOnPageAndJSON: a pool of three real servers, all up, one
// drained and one disabled, is 1/3 serving in the JSON and on the page,
// in amber, not "3/3 up" in green.
func TestPoolOnPageAndJSON(t *testing.T) {
	now := time.Now()
	ok := func(ago time.Duration) engine.CheckResult {
		return engine.CheckResult{Time: now.Add(-ago), OK: true, Duration: time.Millisecond}
	}
	bad := engine.CheckResult{Time: now.Add(-2 * time.Second), Reason: "timeout", Duration: time.Second}
	st := engine.Status{Time: now, Ready: true, VirtualServers: []engine.VirtualServerStatus{{
		Name: "web", InKernel: true,
		RealServers: []engine.RealServerStatus{
			{Address: netip.MustParseAddrPort("10.0.0.11:8080"), State: health.Up, ProgrammedWeight: 100, ConfiguredWeight: 100,
				// oldest first, as the engine keeps it: a failure, then two passes
				History: []engine.CheckResult{bad, ok(time.Second), ok(0)}},
			{Address: netip.MustParseAddrPort("10.0.0.12:8080"), State: health.Up, ProgrammedWeight: 0, ConfiguredWeight: 100,
				RealServerAdmin: engine.RealServerAdmin{Override: &engine.Override{Kind: "drain", Reason: "kernel upgrade", Source: "api", Since: now}}},
			{Address: netip.MustParseAddrPort("10.0.0.13:8080"), State: health.Up, ProgrammedWeight: -1, ConfiguredWeight: 100,
				RealServerAdmin: engine.RealServerAdmin{Override: &engine.Override{Kind: "disable", Reason: "disk", Source: "api", Since: now}}},
		},
	}}}
	srv := httptest.NewServer(Handler(fixedStatus{st}, Options{Version: "test"}))
	defer srv.Close()

	_, _, body := testutil.Get(t, srv.URL+"/api/v1/status")
	var doc StatusV1
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := PoolV1{Serving: 1, Drained: 1, Disabled: 1, Total: 3}
	if got := doc.VirtualServers[0].Pool; got != want {
		t.Errorf("pool in the JSON = %+v, want %+v", got, want)
	}
	if !strings.Contains(body, `"pool": {`) && !strings.Contains(body, `"pool":{`) {
		t.Errorf("the JSON has no pool object:\n%s", body)
	}

	_, _, page := testutil.Get(t, srv.URL+"/")
	for _, want := range []string{
		"real servers: 1/3 serving (1 drained, 1 disabled)",
		`<span class="badge b-warn" title="serving: in the kernel table with a weight above 0">1/3 serving (1 drained, 1 disabled)</span>`,
		`class="card some-down"`,
		"Checks, oldest → newest",
		"Recent transitions, newest first",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The marks run oldest to newest: the failure first.
	marks := regexp.MustCompile(`(?s)data-server="10.0.0.11:8080".*?class="hist">(.*?)</td>`).FindStringSubmatch(page)
	if len(marks) < 2 || !regexp.MustCompile(`^<span class="fail"[^>]*></span><span class=""[^>]*></span><span class=""`).MatchString(marks[1]) {
		t.Errorf("check marks are not oldest first:\n%v", marks)
	}
}
