package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/logbuf"
	"github.com/lvsdirector/director/internal/lograte"
)

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestRefusalsDoNotFloodTheLog: 20,000 write requests without the token
// (no header, a wrong token; 2,000 with 15 KB paths) write a bounded log: one line
// per cause a minute, each path cut to 128 bytes. They once wrote a line
// each: 3.7 MB for 20,000 requests, 28 MiB for 2,000 with 15 KB paths.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	var logs logbuf.Buffer
	counts := map[string]int{}
	var mu sync.Mutex
	h := Handler(&fakeSource{ready: true}, Options{Admin: &recordingAdmin{}, Token: func() string { return testToken },
		Logger: slogText(&logs), Refused: func(cause string) {
			mu.Lock()
			counts[cause]++
			mu.Unlock()
		}})
	longPath := "/api/v1/servers/web/" + strings.Repeat("%0Ax", 15<<10/4) + "/drain"
	const requests = 20_000
	// Refused before the body is read: the same requests can be sent again.
	short := httptest.NewRequest(http.MethodPost, "/api/v1/servers/web/10.0.0.11:8080/drain", nil)
	long := httptest.NewRequest(http.MethodPost, longPath, nil)
	wrong := httptest.NewRequest(http.MethodPost, "/api/v1/servers/web/10.0.0.11:8080/drain", nil)
	wrong.Header.Set("Authorization", "Bearer not-"+testToken)
	for i := range requests {
		req := short
		switch {
		case i%10 == 1:
			req = long // 2,000 of them
		case i%3 == 0:
			req = wrong
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d: %d, want 401", i, rec.Code)
		}
	}
	out := logs.String()
	t.Logf("%d refused requests logged %d bytes:\n%s", requests, len(out), out)
	if len(out) > 2048 {
		t.Errorf("%d refused requests logged %d bytes, want at most 2 KiB", requests, len(out))
	}
	if n := strings.Count(out, "write request refused"); n != 2 {
		t.Errorf("%d refusal lines, want 2 (one per cause)", n)
	}
	if strings.Contains(out, "\n\n") || strings.Count(out, "\n") != 2 {
		t.Errorf("a path broke a log line:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if counts["no bearer token"]+counts["wrong bearer token"] != requests {
		t.Errorf("refusals counted: %v; every one must be", counts)
	}
}

func TestLoggedPath(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/servers/web/x/drain", "/api/v1/servers/web/x/drain"},
		{"/a\nb", "/a%0Ab"},
		{"/" + strings.Repeat("a", 200), "/" + strings.Repeat("a", 127) + "...(201 bytes)"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = tc.path
		req.URL.RawPath = ""
		if got := loggedPath(req.URL); got != tc.want {
			t.Errorf("loggedPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// The count of refusals held back reaches the log with the next line.
func TestRefusalLogCountsWhatItHeldBack(t *testing.T) {
	var logs logbuf.Buffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &adminHandler{log: slogText(&logs), refusals: lograte.New(refusalLogInterval), now: func() time.Time { return clock }}
	req := httptest.NewRequest(http.MethodPost, "/x", nil)
	for range 5 {
		h.refuse(req, "no bearer token")
	}
	clock = clock.Add(refusalLogInterval)
	h.refuse(req, "no bearer token")
	if out := logs.String(); strings.Count(out, "\n") != 2 || !strings.Contains(out, "refused_since_last_logged=4") {
		t.Errorf("log:\n%s\nwant two lines, the second with refused_since_last_logged=4", out)
	}
}
