package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/internal/testutil"
)

// fakeSource is a Source with fixed answers.
type fakeSource struct {
	ready  bool
	status engine.Status
}

func (f *fakeSource) Ready() bool              { return f.ready }
func (f *fakeSource) Snapshot() *engine.Status { return &f.status }

func TestEndpoints(t *testing.T) {
	src := &fakeSource{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "director_up 1\n") })
	srv := httptest.NewServer(Handler(src, Options{Metrics: metrics, Version: "v9"}))
	defer srv.Close()

	if code, _, _ := testutil.Get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, _, body := testutil.Get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "not ready") {
		t.Errorf("/readyz before ready = %d %q, want 503", code, body)
	}
	src.ready = true
	if code, _, _ := testutil.Get(t, srv.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d, want 200", code)
	}
	if code, _, body := testutil.Get(t, srv.URL+"/metrics"); code != 200 || body != "director_up 1\n" {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, h, body := testutil.Get(t, srv.URL+"/api/v1/status"); code != 200 || h.Get("Content-Type") != "application/json" ||
		!strings.Contains(body, `"version": "v1"`) || !strings.Contains(body, `"virtual_servers": []`) {
		t.Errorf("/api/v1/status with nothing configured = %d %q %s", code, h.Get("Content-Type"), body)
	}
	code, h, body := testutil.Get(t, srv.URL+"/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, "No virtual servers") {
		t.Errorf("/ = %d %q %s", code, h.Get("Content-Type"), body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("/ Content-Security-Policy = %q; the page must not load anything", csp)
	}
	if code, _, _ := testutil.Get(t, srv.URL+"/nope"); code != 404 {
		t.Errorf("/nope = %d, want 404", code)
	}
	for _, path := range []string{"/healthz", "/api/v1/status", "/"} {
		resp, err := http.Post(srv.URL+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405: every endpoint is read-only", path, resp.StatusCode)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		secs int64
		want string
	}{{0, "0s"}, {59, "59s"}, {60, "1m0s"}, {303, "5m3s"}, {3600, "1h0m"}, {8040, "2h14m"}, {273600, "3d4h"}} {
		if got := humanDuration(time.Duration(tc.secs) * time.Second); got != tc.want {
			t.Errorf("humanDuration(%ds) = %q, want %q", tc.secs, got, tc.want)
		}
	}
}
