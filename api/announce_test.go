package api

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/announcer"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/internal/testutil"
)

// The status JSON and page show the VIPs with the last decision and the
// BGP sessions; without announcing there is no announce section.
func TestStatusAnnounce(t *testing.T) {
	since := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{ready: true, status: engine.Status{VIPs: []engine.VIPStatus{
		{Prefix: netip.MustParsePrefix("192.0.2.10/32"), Announced: true, Cause: "healthy", Reason: "healthy: web 2/2", Since: since, VirtualServers: []string{"web"}},
		{Prefix: netip.MustParsePrefix("192.0.2.20/32"), Cause: "pool_unhealthy", Reason: "unhealthy: api 0/1 (no real server serving)", VirtualServers: []string{"api"}},
	}}}
	peers := func() []announcer.PeerStatus {
		return []announcer.PeerStatus{{Address: netip.MustParseAddr("10.0.1.1"), ASN: 65000, State: "established", Established: true, Since: since, BFD: true}}
	}
	srv := httptest.NewServer(Handler(src, Options{Peers: peers}))
	defer srv.Close()
	_, _, body := testutil.Get(t, srv.URL+"/api/v1/status")
	// The field names are an API, like the rest of v1 (TestStatusJSONSchema).
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	ann := doc["announce"].(map[string]any)
	for _, tc := range []struct {
		where string
		v     any
		want  string
	}{
		{"announce", ann, "peers vips"},
		{"vip", ann["vips"].([]any)[0], "announced cause prefix reason since virtual_servers"},
		{"peer", ann["peers"].([]any)[0], "address asn bfd established since state"},
	} {
		if got := strings.Join(keysOf(t, tc.v, tc.where), " "); got != tc.want {
			t.Errorf("%s fields:\n got  %s\n want %s", tc.where, got, tc.want)
		}
	}
	var st StatusV1
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	a := st.Announce
	if a == nil || len(a.VIPs) != 2 || len(a.Peers) != 1 {
		t.Fatalf("announce = %+v", a)
	}
	if v := a.VIPs[0]; v.Prefix != "192.0.2.10/32" || !v.Announced || v.Cause != "healthy" || v.Since == nil || !v.Since.Equal(since) || v.VirtualServers[0] != "web" {
		t.Errorf("vip 0 = %+v", v)
	}
	if v := a.VIPs[1]; v.Announced || v.Since != nil || v.Cause != "pool_unhealthy" {
		t.Errorf("vip 1 = %+v", v)
	}
	if p := a.Peers[0]; p.Address != "10.0.1.1" || p.State != "established" || !p.Established || !p.BFD || p.ASN != 65000 {
		t.Errorf("peer = %+v", p)
	}
	_, _, page := testutil.Get(t, srv.URL+"/")
	for _, want := range []string{`data-vip="192.0.2.10/32"`, `announced</span>`, `withdrawn</span>`, `no real server serving`, `data-peer="10.0.1.1"`, `established</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}

	plain := httptest.NewServer(Handler(&fakeSource{}, Options{}))
	defer plain.Close()
	if _, _, body := testutil.Get(t, plain.URL+"/api/v1/status"); strings.Contains(body, `"announce"`) {
		t.Errorf("announce section without announcing: %s", body)
	}
}
