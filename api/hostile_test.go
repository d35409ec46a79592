package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

// recordingAdmin is an Admin that counts the changes it is asked for.
type recordingAdmin struct{ calls atomic.Int64 }

func (a *recordingAdmin) SetOverride(context.Context, engine.OverrideRequest) (engine.Override, error) {
	a.calls.Add(1)
	return engine.Override{}, nil
}

func (a *recordingAdmin) EnableServer(context.Context, string, netip.AddrPort, string, string) error {
	a.calls.Add(1)
	return nil
}

func (a *recordingAdmin) ClearPanic(context.Context, string, string) error {
	a.calls.Add(1)
	return nil
}

// rawRequest sends request as it is, byte for byte (no client cleans its
// path), to the server at addr and returns the response's status code and
// Location header; 0 when the server hung up without an answer.
func rawRequest(t *testing.T, addr, request string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go io.WriteString(c, request) // the server may answer before it has read it all
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestHostileRequests sends the director's listener, as the daemon runs it
// (Server with its limits, around Handler), requests that try tricks on
// the path, the method, the size, the body and the token. Each is answered
// with the status code that says why, and none reaches the engine.
func TestHostileRequests(t *testing.T) {
	const token = "s3cret-token"
	admin := &recordingAdmin{}
	tokenOn := atomic.Bool{}
	tokenOn.Store(true)
	h := Handler(&fakeSource{ready: true}, Options{Admin: admin, Token: func() string {
		if tokenOn.Load() {
			return token
		}
		return ""
	}})
	ln := testutil.Listen(t)
	srv := Server(ln.Addr().String(), h)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	drain := "/api/v1/servers/web/10.0.0.11:8080/drain"
	req := func(method, target string, headers ...string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: director\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
	}
	withBody := func(method, target, body string, headers ...string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: director\r\n" + strings.Join(headers, "") +
			fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n", len(body)) + body
	}
	auth := "Authorization: Bearer " + token + "\r\n"
	jsonCT := "Content-Type: application/json\r\n"
	longPath := "/" + strings.Repeat("a", 10<<10)
	hugePath := "/" + strings.Repeat("a", 64<<10)

	for _, tc := range []struct {
		name     string
		request  string
		want     int
		location string // for redirects: where to
	}{
		// Paths: dot segments and doubled slashes are redirected to the
		// clean path (307: a client that follows it asks again, token and
		// all, for what the clean path is); escaped dots are not dot
		// segments, so they name no endpoint; unknown paths 404.
		{"dot-dot", req("GET", "/../healthz"), 307, "/healthz"},
		{"dot-dot inside", req("GET", "/api/v1/../v1/status"), 307, "/api/v1/status"},
		{"escaped dot-dot", req("GET", "/%2e%2e/%2E%2E/healthz"), 404, ""},
		{"double slash", req("GET", "//healthz"), 307, "/healthz"},
		{"trailing slash", req("GET", "/healthz/"), 404, ""},
		{"escaped slash", req("GET", "/api/v1%2fstatus"), 404, ""},
		{"nul in path", req("GET", "/healthz%00"), 404, ""},
		{"absolute form elsewhere", req("GET", "http://example.com/../metrics"), 307, "/metrics"},
		{"long path", req("GET", longPath), 404, ""},
		{"path over the header limit", req("GET", hugePath), 431, ""},
		{"header over the limit", req("GET", "/healthz", "X-Big: "+strings.Repeat("b", 64<<10)+"\r\n"), 431, ""},
		// Methods: every read-only endpoint takes GET (and HEAD) only.
		{"unknown method", req("FOO", "/healthz"), 405, ""},
		{"DELETE", req("DELETE", "/api/v1/status"), 405, ""},
		{"TRACE", req("TRACE", "/"), 405, ""},
		{"POST to a read-only endpoint", withBody("POST", "/readyz", "x"), 405, ""},
		{"garbage request line", "GARBAGE\r\n\r\n", 400, ""},
		{"HTTP/9", "GET /healthz HTTP/9.0\r\nHost: d\r\n\r\n", 505, ""},
		{"bad host", req("GET", "/healthz", "Host: a b\r\n"), 400, ""},
		// The write API: the token first, then the body.
		{"no token", withBody("POST", drain, `{"reason":"x"}`, jsonCT), 401, ""},
		{"wrong token", withBody("POST", drain, `{"reason":"x"}`, jsonCT, "Authorization: Bearer "+token+"x\r\n"), 401, ""},
		{"token prefix", withBody("POST", drain, `{"reason":"x"}`, jsonCT, "Authorization: Bearer "+token[:5]+"\r\n"), 401, ""},
		{"token without Bearer", withBody("POST", drain, `{"reason":"x"}`, jsonCT, "Authorization: "+token+"\r\n"), 401, ""},
		{"token as basic auth", withBody("POST", drain, `{"reason":"x"}`, jsonCT, "Authorization: Basic "+token+"\r\n"), 401, ""},
		{"token in the query", withBody("POST", drain+"?token="+token, `{"reason":"x"}`, jsonCT), 401, ""},
		{"bad JSON", withBody("POST", drain, `{"reason":`, jsonCT, auth), 400, ""},
		{"JSON of another type", withBody("POST", drain, `["drain"]`, jsonCT, auth), 400, ""},
		{"unknown field", withBody("POST", drain, `{"reason":"x","weight":0}`, jsonCT, auth), 400, ""},
		{"two JSON values", withBody("POST", drain, `{"reason":"x"}{"reason":"y"}`, jsonCT, auth), 400, ""},
		{"not JSON", withBody("POST", drain, `reason=x`, "Content-Type: application/x-www-form-urlencoded\r\n", auth), 415, ""},
		{"ttl not a duration", withBody("POST", drain, `{"reason":"x","ttl":"forever"}`, jsonCT, auth), 400, ""},
		{"expiry in the past", withBody("POST", drain, `{"reason":"x","expires":"2001-01-01T00:00:00Z"}`, jsonCT, auth), 400, ""},
		{"oversize body", withBody("POST", drain, `{"reason":"`+strings.Repeat("x", MaxAdminBody)+`"}`, jsonCT, auth), 413, ""},
		{"body over the listener's cap", withBody("POST", drain, `{"reason":"`+strings.Repeat("x", 1<<20)+`"}`, jsonCT, auth), 413, ""},
		{"endless chunked body", "POST " + drain + " HTTP/1.1\r\nHost: d\r\n" + auth + jsonCT + "Transfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", 1000, strings.Repeat("x", 1000)), 200), 413, ""},
		{"not an address", withBody("POST", "/api/v1/servers/web/not-an-address/drain", `{}`, jsonCT, auth), 400, ""},
		{"unknown action", withBody("POST", "/api/v1/servers/web/10.0.0.11:8080/explode", `{}`, jsonCT, auth), 404, ""},
		{"dot-dot action", withBody("POST", "/api/v1/servers/web/10.0.0.11:8080/%2e%2e", `{}`, jsonCT, auth), 404, ""},
		{"dot-dot to the write API", withBody("POST", "/healthz/../api/v1/servers/web/10.0.0.11:8080/drain", `{}`, jsonCT, auth), 307, drain},
		{"double slash to the write API", withBody("POST", "/api/v1//servers/web/10.0.0.11:8080/drain", `{}`, jsonCT, auth), 307, drain},
		{"GET of a write endpoint", req("GET", drain, auth), 405, ""},
		{"PUT of a write endpoint", withBody("PUT", drain, `{}`, jsonCT, auth), 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, location := rawRequest(t, addr, tc.request)
			if code != tc.want || location != tc.location {
				t.Errorf("status %d location %q, want %d %q", code, location, tc.want, tc.location)
			}
		})
	}
	if n := admin.calls.Load(); n != 0 {
		t.Fatalf("%d hostile requests reached the engine", n)
	}

	// Without a token configured, even the right-looking request is off.
	tokenOn.Store(false)
	if code, _ := rawRequest(t, addr, withBody("POST", drain, `{"reason":"x"}`, jsonCT, auth)); code != 403 {
		t.Errorf("write API without a token configured: status %d, want 403", code)
	}
	if n := admin.calls.Load(); n != 0 {
		t.Fatalf("a request reached the engine with the write API off")
	}
	// The real thing goes through: the tests above were refused for
	// their faults, not for a broken setup.
	tokenOn.Store(true)
	if code, _ := rawRequest(t, addr, withBody("POST", drain, `{"reason":"maintenance","ttl":"1h"}`, jsonCT, auth)); code != 200 {
		t.Errorf("a good drain request: status %d, want 200", code)
	}
	if n := admin.calls.Load(); n != 1 {
		t.Errorf("a good request made %d engine calls, want 1", n)
	}
}

// TestReadyzFollowsKernelFailures runs an engine behind the handler: while
// the kernel refuses every change (permission denied) /readyz says 503,
// and 200 again once a retry succeeds.
func TestReadyzFollowsKernelFailures(t *testing.T) {
	up := testutil.ServeHTTP(t, testutil.Answer(200, "ok\n"))
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	table := ipvs.NewMemory()
	cfg := &config.Config{
		Path:     "director.toml",
		Director: config.Director{Listen: "127.0.0.1:0", ResyncInterval: 50 * time.Millisecond, OnFailure: "quiesce", OnShutdown: "keep"},
		VirtualServers: []config.VirtualServer{{
			Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wrr",
			PersistenceNetmask: 32, Forwarding: "nat", OnFailure: "quiesce",
			Checks: []config.Check{{Type: "http", Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond,
				Rise: 1, Fall: 1, Options: checks.HTTPOptions{MaxBodyBytes: 1024}}},
			RealServers: []config.RealServer{{Address: up, Weight: 100, Forwarding: "nat"}},
		}},
	}
	eng, err := engine.New(cfg, engine.Options{Table: table, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	srv := httptest.NewServer(Handler(eng, Options{Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	readyz := func(want int, what string) {
		t.Helper()
		code := 0
		if !testutil.Within(15*time.Second, func() bool { code, _, _ = testutil.Get(t, srv.URL+"/readyz"); return code == want }) {
			t.Fatalf("%s: /readyz = %d, want %d", what, code, want)
		}
	}
	readyz(200, "started")
	key := ipvs.AddressKey(ipvs.TCP, vip)
	if err := table.UpdateDestination(context.Background(), key, ipvs.Destination{Address: up, Weight: 7}); err != nil {
		t.Fatal(err) // drift the director must repair...
	}
	table.SetFail(func(ipvs.Op) error { return fmt.Errorf("netlink: %w", ipvs.ErrPermission) }) // ...and may not
	readyz(503, "the kernel refuses")
	if code, _, _ := testutil.Get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d while the kernel refuses, want 200: the process is alive", code)
	}
	table.SetFail(nil)
	readyz(200, "the kernel accepts again")
}
