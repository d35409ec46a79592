package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/internal/lograte"
)

// The write API: operator overrides and clearing a panic. Every request
// needs "Authorization: Bearer <token>", the token being the content of
// [director] api_token_file; without one configured, the endpoints answer
// 403 and change nothing.
//
//	POST /api/v1/servers/{virtual_server}/{real_server}/drain    body {"reason": "...", "ttl": "2h"} or {"reason": "...", "expires": "<RFC 3339>"}
//	POST /api/v1/servers/{virtual_server}/{real_server}/disable  same body
//	POST /api/v1/servers/{virtual_server}/{real_server}/enable   body optional: {"reason": "..."}
//	POST /api/v1/virtual_servers/{name}/panic/clear              body optional: {"reason": "..."}

// Admin is what the write endpoints change: the engine.
type Admin interface {
	SetOverride(ctx context.Context, req engine.OverrideRequest) (engine.Override, error)
	EnableServer(ctx context.Context, vs string, rs netip.AddrPort, reason, by string) error
	ClearPanic(ctx context.Context, name, by string) error
}

// MaxAdminBody caps a write request's body.
const MaxAdminBody = 4 << 10

// MaxTTL is the longest ttl or expiry accepted: an override meant to be
// forever has none.
const MaxTTL = 366 * 24 * time.Hour

// adminTimeout bounds how long a write request waits for the engine.
const adminTimeout = 10 * time.Second

// adminBody is a write request's JSON body.
type adminBody struct {
	Reason  string `json:"reason"`
	Expires string `json:"expires"` // RFC 3339
	TTL     string `json:"ttl"`     // a Go duration: "30m", "2h"
}

// OverrideResultV1 answers a successful server request.
type OverrideResultV1 struct {
	VirtualServer string      `json:"virtual_server"`
	RealServer    string      `json:"real_server"`
	Action        string      `json:"action"`
	Override      *OverrideV1 `json:"override"` // in force after the request; null: none
}

// PanicResultV1 answers a successful panic clear.
type PanicResultV1 struct {
	VirtualServer string `json:"virtual_server"`
	Panic         bool   `json:"panic"` // always false
}

type errorV1 struct {
	Error string `json:"error"`
}

func registerAdmin(mux *http.ServeMux, opts Options) {
	a := &adminHandler{admin: opts.Admin, token: opts.Token, log: opts.Logger, refused: opts.Refused,
		refusals: lograte.New(refusalLogInterval), now: time.Now}
	mux.HandleFunc("POST /api/v1/servers/{virtual_server}/{real_server}/{action}", a.server)
	mux.HandleFunc("POST /api/v1/virtual_servers/{name}/panic/clear", a.clearPanic)
	registerDebug(mux, a)
}

type adminHandler struct {
	admin   Admin
	token   func() string
	log     *slog.Logger
	refused func(cause string) // counts every refusal; may be nil

	// Anyone who can reach the listener can send requests without the
	// token, as fast as they like: their refusals are logged once a minute
	// per cause, with the number held back.
	refusals *lograte.Limiter
	now      func() time.Time
}

// refusalLogInterval is how often a refusal of one cause is logged.
const refusalLogInterval = time.Minute

// maxLoggedPath caps what a request's path contributes to a log line.
const maxLoggedPath = 128

// loggedPath is a request path as logged: percent-escaped (no control
// characters, no line breaks) and cut to maxLoggedPath bytes, saying how
// long it was when cut.
func loggedPath(u *url.URL) string {
	p := u.EscapedPath()
	if len(p) <= maxLoggedPath {
		return p
	}
	return fmt.Sprintf("%s...(%d bytes)", p[:maxLoggedPath], len(p))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, _ := json.MarshalIndent(v, "", "  ")
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}

func fail(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, errorV1{Error: fmt.Sprintf(format, a...)})
}

// authorize checks the bearer token in constant time and answers the
// request itself when it fails.
func (a *adminHandler) authorize(w http.ResponseWriter, r *http.Request) bool {
	return a.checkToken(w, r, a.admin != nil, "the write API is off")
}

// authorizeToken is authorize for endpoints that need the token but no
// engine to write to (debug.go).
func (a *adminHandler) authorizeToken(w http.ResponseWriter, r *http.Request) bool {
	return a.checkToken(w, r, true, "the debug endpoints are off")
}

// checkToken answers 403 unless on and a token is configured, 401 unless
// the request carries it; off says so in the 403.
func (a *adminHandler) checkToken(w http.ResponseWriter, r *http.Request, on bool, off string) bool {
	want := ""
	if a.token != nil {
		want = a.token()
	}
	if want == "" || !on {
		// Not logged per request: the token watcher logs the state once.
		if a.refused != nil {
			a.refused("write API off")
		}
		fail(w, http.StatusForbidden, "%s: api_token_file is not set, or the file is missing, empty or unusable (see the director's log)", off)
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	// Compare digests: equal length, so the time taken says nothing of
	// the token's length or content.
	gh, wh := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(want))
	if !ok || subtle.ConstantTimeCompare(gh[:], wh[:]) != 1 {
		cause := "wrong bearer token"
		if !ok {
			cause = "no bearer token"
		}
		a.refuse(r, cause)
		w.Header().Set("WWW-Authenticate", `Bearer realm="director"`)
		fail(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <the content of api_token_file>")
		return false
	}
	return true
}

// refuse counts a refused write request and logs it, rate-limited per
// cause.
func (a *adminHandler) refuse(r *http.Request, cause string) {
	if a.refused != nil {
		a.refused(cause)
	}
	if log, held := a.refusals.Allow(cause, a.now()); log {
		a.log.Warn("api: write request refused", "cause", cause, "path", loggedPath(r.URL), "remote", r.RemoteAddr,
			"refused_since_last_logged", held, "logged_at_most", "once a minute per cause")
	}
}

// readBody decodes an optional JSON body, strictly. It answers the
// request itself on failure.
func readBody(w http.ResponseWriter, r *http.Request, into *adminBody) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			fail(w, http.StatusUnsupportedMediaType, "the body must be JSON (Content-Type: application/json), not %q", ct)
			return false
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", MaxAdminBody)
			return false
		}
		fail(w, http.StatusBadRequest, "reading the body: %v", err)
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		fail(w, http.StatusBadRequest, "the body is not valid: %v; send {\"reason\": \"...\", \"ttl\": \"2h\"} or {\"reason\": \"...\", \"expires\": \"2025-06-01T18:00:00Z\"}", err)
		return false
	}
	if dec.More() {
		fail(w, http.StatusBadRequest, "the body holds more than one JSON value")
		return false
	}
	return true
}

// expiry turns a body's expires or ttl into a time; zero: none.
func expiry(b adminBody, now time.Time) (time.Time, string) {
	switch {
	case b.Expires != "" && b.TTL != "":
		return time.Time{}, "set expires or ttl, not both"
	case b.TTL != "":
		d, err := time.ParseDuration(b.TTL)
		if err != nil {
			return time.Time{}, fmt.Sprintf("ttl %q is not a duration such as \"30m\" or \"2h\"", b.TTL)
		}
		if d <= 0 {
			return time.Time{}, fmt.Sprintf("ttl %q must be greater than 0", b.TTL)
		}
		if d > MaxTTL {
			return time.Time{}, fmt.Sprintf("ttl %q is longer than %s; leave it out for an override without expiry", b.TTL, MaxTTL)
		}
		return now.Add(d), ""
	case b.Expires != "":
		t, err := time.Parse(time.RFC3339, b.Expires)
		if err != nil {
			return time.Time{}, fmt.Sprintf("expires %q is not an RFC 3339 time such as \"2025-06-01T18:00:00Z\"", b.Expires)
		}
		if !t.After(now) {
			return time.Time{}, fmt.Sprintf("expires %s has already passed", b.Expires)
		}
		if t.Sub(now) > MaxTTL {
			return time.Time{}, fmt.Sprintf("expires %s is more than %s away; leave it out for an override without expiry", b.Expires, MaxTTL)
		}
		return t, ""
	}
	return time.Time{}, ""
}

// engineError answers an engine error with its status code.
func engineError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, engine.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, engine.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, engine.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, engine.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	fail(w, code, "%v", err)
}

func (a *adminHandler) server(w http.ResponseWriter, r *http.Request) {
	if !a.authorize(w, r) {
		return
	}
	action := r.PathValue("action")
	if action != "drain" && action != "disable" && action != "enable" {
		fail(w, http.StatusNotFound, "unknown action %q; use drain, disable or enable", action)
		return
	}
	vs := r.PathValue("virtual_server")
	rs, err := netip.ParseAddrPort(r.PathValue("real_server"))
	if err != nil {
		fail(w, http.StatusBadRequest, "real server %q is not ip:port, such as 10.0.0.11:8080 or [2001:db8::11]:443", r.PathValue("real_server"))
		return
	}
	// [::ffff:10.0.0.11]:8080 is 10.0.0.11:8080, as in the config.
	rs = netip.AddrPortFrom(rs.Addr().Unmap(), rs.Port())
	var body adminBody
	if !readBody(w, r, &body) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	res := OverrideResultV1{VirtualServer: vs, RealServer: rs.String(), Action: action}
	if action == "enable" {
		if body.Expires != "" || body.TTL != "" {
			fail(w, http.StatusBadRequest, "enable takes no expires or ttl")
			return
		}
		if err := a.admin.EnableServer(ctx, vs, rs, body.Reason, r.RemoteAddr); err != nil {
			engineError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	exp, msg := expiry(body, time.Now())
	if msg != "" {
		fail(w, http.StatusBadRequest, "%s", msg)
		return
	}
	o, err := a.admin.SetOverride(ctx, engine.OverrideRequest{VirtualServer: vs, RealServer: rs, Kind: action,
		Reason: body.Reason, Expires: exp, By: r.RemoteAddr})
	if err != nil {
		engineError(w, err)
		return
	}
	ov := overrideV1(o)
	res.Override = &ov
	writeJSON(w, http.StatusOK, res)
}

func (a *adminHandler) clearPanic(w http.ResponseWriter, r *http.Request) {
	if !a.authorize(w, r) {
		return
	}
	var body adminBody
	if !readBody(w, r, &body) {
		return
	}
	if body.Expires != "" || body.TTL != "" {
		fail(w, http.StatusBadRequest, "panic/clear takes no expires or ttl")
		return
	}
	if msg := engine.CheckReason(body.Reason, false); msg != "" {
		fail(w, http.StatusBadRequest, "%s", msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	by := r.RemoteAddr
	if body.Reason != "" {
		by += ": " + body.Reason
	}
	name := r.PathValue("name")
	if err := a.admin.ClearPanic(ctx, name, by); err != nil {
		engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PanicResultV1{VirtualServer: name})
}
