package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/internal/testutil"
)

// genhashPage is served in chunks, so that the digest must be of the body
// without the chunk framing.
const genhashPage = "<html>the page</html>\n"

func genhashServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			if r.Host != r.URL.Query().Get("host") && r.URL.Query().Has("host") {
				w.WriteHeader(http.StatusMisdirectedRequest)
				return
			}
			io.WriteString(w, genhashPage[:6])
			w.(http.Flusher).Flush()
			io.WriteString(w, genhashPage[6:])
		case "/gone":
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, "gone\n")
		case "/big":
			io.WriteString(w, strings.Repeat("y", 70000))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGenhash(t *testing.T) {
	srv := genhashServer(t)
	md5Sum := md5.Sum([]byte(genhashPage))
	sha := sha256.Sum256([]byte(genhashPage))
	for _, tc := range []struct {
		args []string
		want []string // lines of stdout, in order
	}{
		{[]string{srv.URL + "/page"}, []string{"MD5SUM = " + hex.EncodeToString(md5Sum[:]), `path = "/page"`,
			`expect_digest = "` + hex.EncodeToString(md5Sum[:]) + `"`}},
		{[]string{"-sha256", srv.URL + "/page"}, []string{"SHA256SUM = " + hex.EncodeToString(sha[:]),
			`expect_digest = "sha256:` + hex.EncodeToString(sha[:]) + `"`}},
		{[]string{"-host", "site.example", srv.URL + "/page?host=site.example"}, []string{"MD5SUM = " + hex.EncodeToString(md5Sum[:]),
			`path = "/page?host=site.example"`}},
		{[]string{srv.URL + "/gone"}, []string{`expect_status = ["410"]`, `expect_digest = "` + md5Hex("gone\n") + `"`}},
		{[]string{srv.URL + "/big"}, []string{`expect_digest = "` + md5Hex(strings.Repeat("y", 70000)) + `"`, "max_body_bytes = 70000"}},
	} {
		var out, errOut bytes.Buffer
		if code := realMain(append([]string{"genhash"}, tc.args...), &out, &errOut); code != 0 {
			t.Errorf("genhash %q: exit %d, %s", tc.args, code, errOut.String())
			continue
		}
		rest := out.String()
		for _, line := range tc.want {
			i := strings.Index(rest, line+"\n")
			if i < 0 {
				t.Errorf("genhash %q printed\n%s\nwant the line %q (in order)", tc.args, out.String(), line)
				break
			}
			rest = rest[i:]
		}
	}
}

// The line genhash prints makes a check that passes.
func TestGenhashLineMakesPassingCheck(t *testing.T) {
	srv := genhashServer(t)
	var out, errOut bytes.Buffer
	if code := realMain([]string{"genhash", srv.URL + "/page"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	m := regexp.MustCompile(`(?m)^expect_digest = "([0-9a-f]{32})"$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no expect_digest line in\n%s", out.String())
	}
	target := testutil.AddrPort(t, srv.Listener.Addr())
	for _, tc := range []struct {
		digest, reason string
	}{
		{m[1], ""},
		{md5Hex("another page"), "digest mismatch"},
	} {
		p, err := checks.New(checks.Spec{Type: "http", Target: target, Timeout: 5 * time.Second,
			Options: checks.HTTPOptions{Path: "/page", ExpectDigest: tc.digest}})
		if err != nil {
			t.Fatal(err)
		}
		if res := p.Probe(context.Background()); res.Reason != tc.reason {
			t.Errorf("check with expect_digest = %q: reason %q, want %q", tc.digest, res.Reason, tc.reason)
		}
	}
}

func TestGenhashErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "want one URL"},
		{[]string{"ftp://x/"}, 2, `want an http:// or https:// URL`},
		{[]string{"http://127.0.0.1:0/"}, 2, "invalid port"},
		{[]string{"http://127.0.0.1:1/"}, 1, "http://127.0.0.1:1/: refused"},
	} {
		var out, errOut bytes.Buffer
		code := realMain(append([]string{"genhash"}, tc.args...), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("genhash %q: exit %d, %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

func md5Hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
