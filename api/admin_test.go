package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

const testToken = "0123456789abcdef-test-token"

// adminServer serves the stack's engine with the write API, the token
// being what token returns.
func adminServer(t *testing.T, s *stack, token string) string {
	t.Helper()
	srv := httptest.NewServer(Server("", Handler(s.engine, Options{Logger: slog.New(slog.DiscardHandler), Table: s.table,
		Admin: s.engine, Token: func() string { return token }})).Handler)
	t.Cleanup(srv.Close)
	return srv.URL
}

func post(t *testing.T, url, auth, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	code, _, b := testutil.Do(t, req)
	return code, b
}

func (s *stack) weights(t *testing.T) string {
	t.Helper()
	svcs, err := s.table.Services(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, svc := range svcs {
		for _, d := range svc.Destinations {
			out = append(out, fmt.Sprintf("%s=%d", d.Address, d.Weight))
		}
	}
	return strings.Join(out, " ")
}

func TestWriteAPIOffWithoutToken(t *testing.T) {
	s := startStack(t)
	url := adminServer(t, s, "")
	before := s.weights(t)
	code, body := post(t, url+"/api/v1/servers/web/"+s.up.String()+"/drain", "Bearer anything", "application/json", `{"reason":"x"}`)
	if code != http.StatusForbidden || !strings.Contains(body, "api_token_file") {
		t.Errorf("drain without a token configured = %d %s, want 403 naming api_token_file", code, body)
	}
	if code, _ := post(t, url+"/api/v1/virtual_servers/web/panic/clear", "", "", ""); code != http.StatusForbidden {
		t.Errorf("panic clear without a token configured = %d, want 403", code)
	}
	if got := s.weights(t); got != before {
		t.Errorf("table changed: %s -> %s", before, got)
	}
	_, _, st := testutil.Get(t, url+"/api/v1/status")
	if !strings.Contains(st, `"write_api": false`) {
		t.Errorf("status does not say the write API is off")
	}
}

func TestWriteAPIRejects(t *testing.T) {
	s := startStack(t)
	url := adminServer(t, s, testToken)
	drain := url + "/api/v1/servers/web/" + s.up.String() + "/drain"
	auth := "Bearer " + testToken
	before := s.weights(t)
	for _, tt := range []struct {
		name, url, auth, ct, body string
		want                      int
	}{
		{"no token", drain, "", "application/json", `{"reason":"x"}`, 401},
		{"wrong token", drain, "Bearer " + testToken + "x", "application/json", `{"reason":"x"}`, 401},
		{"prefix of the token", drain, "Bearer " + testToken[:10], "application/json", `{"reason":"x"}`, 401},
		{"basic auth", drain, "Basic " + testToken, "application/json", `{"reason":"x"}`, 401},
		{"bad json", drain, auth, "application/json", `{"reason":`, 400},
		{"unknown field", drain, auth, "application/json", `{"reason":"x","weight":0}`, 400},
		{"two values", drain, auth, "application/json", `{"reason":"x"}{"reason":"y"}`, 400},
		{"wrong type", drain, auth, "application/json", `{"reason":5}`, 400},
		{"form", drain, auth, "application/x-www-form-urlencoded", `reason=x`, 415},
		{"too large", drain, auth, "application/json", `{"reason":"` + strings.Repeat("a", MaxAdminBody) + `"}`, 413},
		{"no reason", drain, auth, "application/json", `{}`, 400},
		{"reason too long", drain, auth, "application/json", `{"reason":"` + strings.Repeat("a", 300) + `"}`, 400},
		{"expired ttl", drain, auth, "application/json", `{"reason":"x","ttl":"-5m"}`, 400},
		{"zero ttl", drain, auth, "application/json", `{"reason":"x","ttl":"0s"}`, 400},
		{"bad ttl", drain, auth, "application/json", `{"reason":"x","ttl":"soon"}`, 400},
		{"past expiry", drain, auth, "application/json", `{"reason":"x","expires":"2001-01-01T00:00:00Z"}`, 400},
		{"both", drain, auth, "application/json", `{"reason":"x","ttl":"1h","expires":"2099-01-01T00:00:00Z"}`, 400},
		{"unknown virtual server", url + "/api/v1/servers/nope/" + s.up.String() + "/drain", auth, "", `{"reason":"x"}`, 404},
		{"unknown real server", url + "/api/v1/servers/web/10.1.2.3:80/drain", auth, "", `{"reason":"x"}`, 404},
		{"not an address", url + "/api/v1/servers/web/..%2f..%2fetc/drain", auth, "", `{"reason":"x"}`, 400},
		{"unknown action", url + "/api/v1/servers/web/" + s.up.String() + "/explode", auth, "", `{"reason":"x"}`, 404},
		{"enable with nothing to end", url + "/api/v1/servers/web/" + s.up.String() + "/enable", auth, "", ``, 409},
		// The IPv4-mapped spelling names the same server (not 404).
		{"IPv4-mapped address", url + fmt.Sprintf("/api/v1/servers/web/[::ffff:%s]:%d/enable", s.up.Addr(), s.up.Port()), auth, "", ``, 409},
		{"panic clear when not in panic", url + "/api/v1/virtual_servers/web/panic/clear", auth, "", ``, 409},
		{"panic clear unknown", url + "/api/v1/virtual_servers/nope/panic/clear", auth, "", ``, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, tt.url, tt.auth, tt.ct, tt.body)
			if code != tt.want {
				t.Errorf("= %d %s, want %d", code, body, tt.want)
			}
			if code != 413 && !strings.HasPrefix(strings.TrimSpace(body), `{`) {
				t.Errorf("error body is not JSON: %s", body)
			}
			if got := s.weights(t); got != before {
				t.Errorf("table changed: %s -> %s", before, got)
			}
		})
	}
	if code, _, _ := testutil.Get(t, drain); code != http.StatusMethodNotAllowed {
		t.Errorf("GET on a write endpoint = %d, want 405", code)
	}
}

func TestWriteAPIDrainDisableEnable(t *testing.T) {
	s := startStack(t)
	url := adminServer(t, s, testToken)
	auth := "Bearer " + testToken
	base := url + "/api/v1/servers/web/" + s.up.String()
	key := ipvs.AddressKey(ipvs.TCP, s.vip)
	weight := func() (uint32, bool) {
		svcs, _ := s.table.Services(t.Context())
		for _, svc := range svcs {
			if svc.Key == key {
				for _, d := range svc.Destinations {
					if d.Address == s.up {
						return d.Weight, true
					}
				}
			}
		}
		return 0, false
	}

	code, body := post(t, base+"/drain", auth, "application/json", `{"reason":"new kernel","ttl":"2h"}`)
	if code != 200 {
		t.Fatalf("drain = %d %s", code, body)
	}
	var res OverrideResultV1
	if err := json.Unmarshal([]byte(body), &res); err != nil || res.Override == nil || res.Override.Kind != "drain" ||
		res.Override.Expires == nil || res.Override.Expires.Sub(time.Now()) < time.Hour || res.Override.Source != "api" {
		t.Errorf("drain answer = %s", body)
	}
	if w, ok := weight(); !ok || w != 0 {
		t.Errorf("after drain: weight %d present %v, want 0 present", w, ok)
	}
	_, _, st := testutil.Get(t, url+"/api/v1/status")
	if !strings.Contains(st, `"reason": "new kernel"`) || !strings.Contains(st, `"write_api": true`) {
		t.Errorf("status lacks the override:\n%s", st)
	}

	if code, body := post(t, base+"/disable", auth, "", `{"reason":"disk"}`); code != 200 {
		t.Fatalf("disable = %d %s", code, body)
	}
	if _, ok := weight(); ok {
		t.Errorf("after disable the server is still in the table")
	}
	if code, body := post(t, base+"/enable", auth, "", `{"reason":"fixed"}`); code != 200 {
		t.Fatalf("enable = %d %s", code, body)
	}
	if w, ok := weight(); !ok || w != 100 {
		t.Errorf("after enable: weight %d present %v, want 100", w, ok)
	}
}
