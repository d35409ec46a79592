package checks

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// httpProber checks an HTTP or HTTPS server: one request on a fresh
// connection, its status judged by the expected ranges, and optionally the
// start of its body by a regular expression. Redirects are not followed.
type httpProber struct {
	spec     Spec
	url      string   // for String and messages
	reqURL   *url.URL // the request target
	host     string   // the Host header
	method   string
	header   http.Header
	statuses []StatusRange
	body     *regexp.Regexp
	maxBody  int64
	tls      *tls.Config // nil for plain http
}

func newHTTP(spec Spec) (*httpProber, error) {
	p := &httpProber{spec: spec, maxBody: spec.MaxBodyBytes}
	switch m := strings.ToUpper(spec.Method); m {
	case "":
		p.method = http.MethodGet
	case http.MethodGet, http.MethodHead:
		p.method = m
	default:
		return nil, fmt.Errorf("%s: method: %q is not supported (want GET or HEAD)", spec, spec.Method)
	}

	path := spec.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%s: path: %q must start with \"/\"", spec, spec.Path)
	}
	if strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("%s: path: %q contains spaces or control characters", spec, spec.Path)
	}
	hostport := spec.Target.String()
	u, err := url.Parse(spec.Type + "://" + hostport + path)
	if err != nil || u.Host != hostport {
		return nil, fmt.Errorf("%s: path: %q is not a valid request path", spec, spec.Path)
	}
	p.url = u.String()
	p.reqURL = u
	p.host = hostport
	if spec.Host != "" {
		p.host = spec.Host
	}

	if spec.Host != "" && (strings.ContainsFunc(spec.Host, func(r rune) bool { return r <= ' ' || r == 0x7f }) ||
		strings.ContainsAny(spec.Host, "/?#@")) {
		return nil, fmt.Errorf("%s: host: %q is not a valid Host header", spec, spec.Host)
	}

	p.header = make(http.Header, len(spec.Headers)+1)
	for _, h := range spec.Headers {
		if !isToken(h.Name) {
			return nil, fmt.Errorf("%s: headers: %q is not a valid header name", spec, h.Name)
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			return nil, fmt.Errorf("%s: headers: value of %s contains a line break or NUL", spec, h.Name)
		}
		if strings.EqualFold(h.Name, "Host") {
			return nil, fmt.Errorf("%s: headers: set the Host header with the host option", spec)
		}
		p.header.Add(h.Name, h.Value)
	}
	if p.header.Get("User-Agent") == "" {
		p.header.Set("User-Agent", UserAgent)
	}

	if p.statuses, err = ParseStatusRanges(spec.ExpectStatus); err != nil {
		return nil, fmt.Errorf("%s: expect_status: %v", spec, err)
	}
	if p.body, err = compileRegexp(spec, "expect_body", spec.ExpectBody); err != nil {
		return nil, err
	}
	if p.body != nil && p.method == http.MethodHead {
		return nil, fmt.Errorf("%s: expect_body: a HEAD response has no body (use method GET)", spec)
	}
	if p.maxBody < 0 {
		return nil, fmt.Errorf("%s: max_body_bytes: %d is negative", spec, spec.MaxBodyBytes)
	}
	if p.maxBody == 0 {
		p.maxBody = DefaultMaxBodyBytes
	}

	if spec.Type == "https" {
		if p.tls, err = tlsConfig(spec); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Probe sends one request on a new connection, which it closes before
// returning; the deadline covers connect, handshake, request and body.
func (p *httpProber) Probe(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := withDeadline(ctx, p.spec.Timeout)
	defer cancel()
	return result(start, p.probe(ctx))
}

func (p *httpProber) probe(ctx context.Context) string {
	// One request on a connection of its own, without net/http's Transport:
	// no connection pool, no per-request goroutines, no state shared between
	// checks. The request is written and the response parsed by net/http's
	// own Request.Write and ReadResponse, so framing (status line, headers,
	// chunked or length-delimited bodies) is exactly net/http's.
	conn, err := dial(ctx, &p.spec, p.tls)
	if err != nil {
		return classify(ctx, err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	// A cancelled (not timed-out) context must end a blocked read too.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := &http.Request{
		Method:     p.method,
		URL:        p.reqURL,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     p.header,
		Host:       p.host,
		Close:      true,
	}
	bw := bufio.NewWriterSize(conn, 1024)
	if err := req.Write(bw); err != nil {
		return classify(ctx, err)
	}
	if err := bw.Flush(); err != nil {
		return classify(ctx, err)
	}
	br := bufio.NewReaderSize(io.LimitReader(conn, maxHeadBytes+p.maxBody), 4096)
	resp, err := http.ReadResponse(br, req)
	// Interim responses (100 Continue, 103 Early Hints) precede the real
	// one; 101 would switch protocols and is judged as it is.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		return classify(ctx, err)
	}
	defer resp.Body.Close()

	if !statusOK(p.statuses, resp.StatusCode) {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	if p.body == nil {
		return ""
	}
	// The body up to the cap must arrive within the deadline; then the
	// regular expression sees all of it at once.
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBody))
	if err != nil && !(errors.Is(err, io.ErrUnexpectedEOF) && len(body) > 0) {
		return classify(ctx, err)
	}
	if !p.body.Match(body) {
		return "body mismatch"
	}
	return ""
}

// maxHeadBytes bounds what a check reads before the body: the status line,
// headers, interim (1xx) responses and chunk framing.
const maxHeadBytes = 256 << 10

func statusOK(ranges []StatusRange, code int) bool {
	for _, r := range ranges {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// isToken reports whether s is a valid HTTP header name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
