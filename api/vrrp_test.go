package api

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/selfhealth"
	"github.com/lvsdirector/director/vrrp"
)

// The status JSON and page show the pair's state with [vrrp]; without
// it the "vrrp" key is absent.
func TestVRRPStatus(t *testing.T) {
	since := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := vrrp.Status{
		Role:      vrrp.Master,
		Instances: []vrrp.InstanceStatus{{Name: "VI_1", State: vrrp.Master, Priority: 200, Since: since}, {Name: "VI_2"}},
		Health:    selfhealth.Verdict{Healthy: true, Cause: selfhealth.CauseHealthy, Reason: "fine"}, HealthSince: since,
		TrackFile: "/run/director/track", TrackValue: 50, TrackWritten: true,
		NotifyFIFO: "/run/director/k.fifo", FIFOOpen: true, SyncMode: "both-always",
		SyncDaemons: []ipvs.SyncDaemon{{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 1, Group: ipvs.DefaultSyncGroup, Port: 8848, TTL: 1, MaxLen: 1472},
			{State: ipvs.SyncBackup, Interface: "eth0", SyncID: 2, Group: netip.MustParseAddr("224.0.0.81")}},
	}
	srv := httptest.NewServer(Handler(&fakeSource{ready: true}, Options{Version: "v9", VRRP: func() vrrp.Status { return st }}))
	defer srv.Close()
	_, _, body := testutil.Get(t, srv.URL+"/api/v1/status")
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	v := doc["vrrp"]
	for _, tc := range []struct {
		where string
		v     any
		want  string
	}{
		{"vrrp", v, "health instances lower_priority_master notify_fifo notify_fifo_open role sync_daemons sync_mode track_file track_value"},
		{"instance", v.(map[string]any)["instances"].([]any)[0], "name priority since state"},
		{"health", v.(map[string]any)["health"], "cause healthy reason since"},
		{"sync daemon", v.(map[string]any)["sync_daemons"].([]any)[0], "group interface maxlen port state sync_id ttl"},
	} {
		if got := strings.Join(keysOf(t, tc.v, tc.where), " "); got != tc.want {
			t.Errorf("%s fields:\n got  %s\n want %s", tc.where, got, tc.want)
		}
	}
	var out StatusV1
	json.Unmarshal([]byte(body), &out)
	if r := out.VRRP; r.Role != "MASTER" || r.Instances[0].State != "MASTER" || r.Instances[1].State != "UNKNOWN" ||
		r.Instances[1].Since != nil || r.TrackValue == nil || *r.TrackValue != 50 || r.SyncDaemons[1].SyncID != 2 || r.LowerPriorityMaster != nil {
		t.Errorf("vrrp = %+v", r)
	}
	_, _, page := testutil.Get(t, srv.URL+"/")
	for _, want := range []string{`id="vrrp"`, `>MASTER</span>`, "VI_1 MASTER (200)", "track file 50", "master daemon id 1 on eth0", "sync both-always"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	st.Role, st.Health = vrrp.Backup, selfhealth.Verdict{Cause: selfhealth.CauseStuck, Reason: "stuck"}
	st.FIFOOpen, st.FIFOError, st.LowerPriorityMaster = false, "no such file", since
	_, _, page = testutil.Get(t, srv.URL+"/")
	for _, want := range []string{"unhealthy: loop_stuck", "notify_fifo not open: no such file", "two masters"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	plain := httptest.NewServer(Handler(&fakeSource{ready: true}, Options{Version: "v9"}))
	defer plain.Close()
	if _, _, body := testutil.Get(t, plain.URL+"/api/v1/status"); strings.Contains(body, `"vrrp"`) {
		t.Errorf("without [vrrp] the status has a vrrp key:\n%s", body)
	}
}
