package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

func getWith(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	code, _, body := testutil.Do(t, req)
	return code, body
}

// The profiles show the process's insides: only the token's holders get them.
func TestDebugProfilesNeedTheToken(t *testing.T) {
	s := startStack(t)
	on := adminServer(t, s, testToken)
	off := adminServer(t, s, "")
	for _, tt := range []struct {
		name, url, auth string
		want            int
		body            string
	}{
		{"no token configured", off + "/debug/pprof/heap", "Bearer " + testToken, 403, "debug endpoints are off"},
		{"no token sent", on + "/debug/pprof/heap", "", 401, "missing or wrong token"},
		{"wrong token", on + "/debug/pprof/goroutine?debug=1", "Bearer nope", 401, "missing or wrong token"},
		{"cpu profile without the token", on + "/debug/pprof/profile?seconds=1", "", 401, "missing or wrong token"},
		{"heap", on + "/debug/pprof/heap?debug=1", "Bearer " + testToken, 200, "# HeapAlloc = "},
		{"goroutines", on + "/debug/pprof/goroutine?debug=1", "Bearer " + testToken, 200, "goroutine profile: total"},
		{"index", on + "/debug/pprof/", "Bearer " + testToken, 200, "heap"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := getWith(t, tt.url, tt.auth)
			if code != tt.want || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s = %d %.200q, want %d with %q", tt.url, code, body, tt.want, tt.body)
			}
		})
	}
}
