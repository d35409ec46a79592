package checks

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pageBody is what /page serves, whole or in chunks.
const pageBody = "<html><body>version 42</body></html>\n"

func md5Hex(s string) string    { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
func sha256Hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// urlMux serves healthMux's paths and /page: with Content-Length, or
// chunked (?chunked) in three writes flushed one by one.
func urlMux(rec *recorder) *http.ServeMux {
	mux := healthMux(rec)
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		if r.URL.Query().Has("chunked") {
			for part := range slices.Values([]string{pageBody[:5], pageBody[5:20], pageBody[20:]}) {
				io.WriteString(w, part)
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(pageBody)))
		io.WriteString(w, pageBody)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 5000))
	})
	return mux
}

func TestHTTPSeveralURLs(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, urlMux(rec))
	probe := func(o HTTPOptions) Result {
		return probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: o}), 5*time.Second)
	}
	// All pass: every URL was requested, each on its own request.
	_, _, before := rec.last()
	wantOK(t, probe(HTTPOptions{URLs: []HTTPURL{{Path: "/"}, {Path: "/page", ExpectBody: "version 42"},
		{Path: "/down", ExpectStatus: []string{"503"}}}}))
	if _, _, after := rec.last(); after-before != 3 {
		t.Errorf("server saw %d requests, want 3", after-before)
	}
	// The failing URL is named, the first one that fails.
	wantReason(t, probe(HTTPOptions{URLs: []HTTPURL{{Path: "/"}, {Path: "/down"}, {Path: "/page", ExpectBody: "nope"}}}),
		"/down: status 503")
	wantReason(t, probe(HTTPOptions{URLs: []HTTPURL{{Path: "/"}, {Path: "/page", ExpectBody: "nope"}}}),
		"/page: body mismatch")
	// One URL entry reports as the check's own keys do.
	wantReason(t, probe(HTTPOptions{URLs: []HTTPURL{{Path: "/down"}}}), "status 503")
	// Host, headers and method apply to each URL.
	wantOK(t, probe(HTTPOptions{Host: "vhost.example", URLs: []HTTPURL{{Path: "/down", ExpectStatus: []string{"503"}}, {Path: "/page"}}}))
	if req, _, _ := rec.last(); req.Host != "vhost.example" || req.URL.Path != "/page" {
		t.Errorf("last request: Host %q path %q", req.Host, req.URL.Path)
	}
}

func TestHTTPDigest(t *testing.T) {
	rec := &recorder{}
	_, target := testServer(t, nil, urlMux(rec))
	probe := func(o HTTPOptions) Result {
		return probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: o}), 5*time.Second)
	}
	for _, path := range []string{"/page", "/page?chunked"} {
		t.Run(path, func(t *testing.T) {
			// The digest is of the body without its chunk framing.
			wantOK(t, probe(HTTPOptions{Path: path, ExpectDigest: md5Hex(pageBody)}))
			wantOK(t, probe(HTTPOptions{Path: path, ExpectDigest: strings.ToUpper(md5Hex(pageBody))}))
			wantOK(t, probe(HTTPOptions{Path: path, ExpectDigest: "sha256:" + sha256Hex(pageBody)}))
			wantOK(t, probe(HTTPOptions{Path: path, ExpectBody: "version", ExpectDigest: md5Hex(pageBody)}))
			wantReason(t, probe(HTTPOptions{Path: path, ExpectDigest: md5Hex(pageBody + "x")}), "digest mismatch")
			wantReason(t, probe(HTTPOptions{Path: path, ExpectDigest: "sha256:" + sha256Hex("")}), "digest mismatch")
			wantReason(t, probe(HTTPOptions{URLs: []HTTPURL{{Path: "/"}, {Path: path, ExpectDigest: md5Hex("other")}}}),
				path+": digest mismatch")
		})
	}
	// A body over max_body_bytes cannot be digested whole.
	wantReason(t, probe(HTTPOptions{Path: "/big", MaxBodyBytes: 4999, ExpectDigest: md5Hex(strings.Repeat("x", 5000))}), "body too large")
	wantOK(t, probe(HTTPOptions{Path: "/big", MaxBodyBytes: 5000, ExpectDigest: md5Hex(strings.Repeat("x", 5000))}))
	// expect_body alone still judges what fits under the cap.
	wantOK(t, probe(HTTPOptions{Path: "/big", MaxBodyBytes: 10, ExpectBody: "^x{10}$"}))
	// The status is judged before the body.
	wantReason(t, probe(HTTPOptions{Path: "/down", ExpectDigest: md5Hex("down\n")}), "status 503")
	wantOK(t, probe(HTTPOptions{Path: "/down", ExpectStatus: []string{"503"}, ExpectDigest: md5Hex("down\n")}))
}

func TestFetchDigest(t *testing.T) {
	_, target := testServer(t, nil, urlMux(&recorder{}))
	for _, tt := range []struct{ path, alg, want string }{
		{"/page", "md5", md5Hex(pageBody)},
		{"/page?chunked", "md5", md5Hex(pageBody)},
		{"/page?chunked", "sha256", "sha256:" + sha256Hex(pageBody)},
		{"/down", "md5", md5Hex("down\n")},
	} {
		got, reason, err := FetchDigest(context.Background(), Spec{Type: "http", Target: target, Timeout: 5 * time.Second,
			Options: HTTPOptions{Path: tt.path, MaxBodyBytes: maxBodyLimit}}, tt.alg)
		if err != nil || reason != "" || got.Digest != tt.want {
			t.Errorf("%s %s: %+v %q %v, want digest %s", tt.path, tt.alg, got, reason, err, tt.want)
		}
	}
	got, reason, err := FetchDigest(context.Background(), Spec{Type: "http", Target: target, Timeout: 5 * time.Second,
		Options: HTTPOptions{Path: "/big", MaxBodyBytes: maxBodyLimit}}, "md5")
	if err != nil || reason != "" || got.Size != 5000 || got.Status != 200 {
		t.Errorf("/big: %+v %q %v", got, reason, err)
	}
}

func TestHTTPURLValidate(t *testing.T) {
	md5OK := md5Hex("x")
	for _, tt := range []struct {
		o    HTTPOptions
		want []string // OptionError paths and messages
	}{
		{HTTPOptions{ExpectDigest: md5OK}, nil},
		{HTTPOptions{ExpectDigest: "sha256:" + sha256Hex("x")}, nil},
		{HTTPOptions{ExpectDigest: "abc"}, []string{`expect_digest: "abc" is not a digest: want 32 hex digits (MD5, as keepalived's genhash prints) or "sha256:" and 64 hex digits`}},
		{HTTPOptions{ExpectDigest: "sha256:" + md5OK}, []string{`expect_digest: "sha256:` + md5OK + `" is not a digest: want 32 hex digits (MD5, as keepalived's genhash prints) or "sha256:" and 64 hex digits`}},
		{HTTPOptions{Method: "HEAD", ExpectDigest: md5OK}, []string{"expect_digest: a HEAD response has no body (use method GET)"}},
		{HTTPOptions{URLs: []HTTPURL{{Path: "/a"}, {}}}, []string{`url[1].path: missing: each url entry needs its path, such as path = "/healthz"`}},
		{HTTPOptions{URLs: []HTTPURL{{Path: "a", ExpectStatus: []string{"999"}}, {Path: "/b", ExpectBody: "(", ExpectDigest: "x"}}}, []string{
			`url[0].path: "a" must start with "/"`,
			`url[0].expect_status: invalid status "999": want a code 100-599 or a range like "200-299"`,
			"url[1].expect_body: invalid regular expression: error parsing regexp: missing closing ): `(`",
			`url[1].expect_digest: "x" is not a digest: want 32 hex digits (MD5, as keepalived's genhash prints) or "sha256:" and 64 hex digits`}},
		{HTTPOptions{Method: "HEAD", URLs: []HTTPURL{{Path: "/a", ExpectBody: "x"}}}, []string{"url[0].expect_body: a HEAD response has no body (use method GET)"}},
		{HTTPOptions{Path: "/x", URLs: []HTTPURL{{Path: "/a"}}}, []string{"url: with url entries, path, expect_status, expect_body and expect_digest belong in each entry"}},
	} {
		var got []string
		for _, e := range tt.o.Validate() {
			got = append(got, e.Error())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%+v:\n got %q\nwant %q", tt.o, got, tt.want)
		}
	}
}

// Each field of each url entry is part of the key, and so is their order;
// one entry is the check's own keys saying the same.
func TestKeyURLs(t *testing.T) {
	key := func(o HTTPOptions) string { return Spec{Type: "http", Target: tgt, Options: o}.Key() }
	base := HTTPOptions{URLs: []HTTPURL{{Path: "/a", ExpectStatus: []string{"200"}, ExpectBody: "a", ExpectDigest: md5Hex("a")},
		{Path: "/b"}}}
	for i := range base.URLs {
		for _, name := range []string{"Path", "ExpectStatus", "ExpectBody", "ExpectDigest"} {
			o := base
			o.URLs = slices.Clone(base.URLs)
			mutate(t, reflect.ValueOf(&o.URLs[i]).Elem().FieldByName(name))
			if key(o) == key(base) {
				t.Errorf("changing URLs[%d].%s does not change the key", i, name)
			}
		}
	}
	o := base
	o.URLs = []HTTPURL{base.URLs[1], base.URLs[0]}
	if key(o) == key(base) {
		t.Error("swapping two url entries does not change the key")
	}
	one := base.URLs[0]
	if key(HTTPOptions{URLs: []HTTPURL{one}}) != key(HTTPOptions{Path: one.Path, ExpectStatus: one.ExpectStatus,
		ExpectBody: one.ExpectBody, ExpectDigest: strings.ToUpper(one.ExpectDigest)}) {
		t.Error("one url entry and the same keys on the check give different keys")
	}
	if key(HTTPOptions{URLs: []HTTPURL{{Path: "/"}}}) != key(HTTPOptions{}) {
		t.Error("a url entry of defaults and the defaults give different keys")
	}
}
