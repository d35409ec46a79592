package checks

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// HTTPOptions are the options of http and https checks.
type HTTPOptions struct {
	Method       string   // GET (default) or HEAD, in any case
	Path         string   // default "/"
	Host         string   // Host header, and TLS server name unless ServerName is set
	Headers      []Header // extra request headers, in order
	ExpectStatus []string // codes and ranges, "200", "200-299"; default 200-299
	ExpectBody   string   // regular expression over the first MaxBodyBytes of the body
	ExpectDigest string   // MD5 of the body as keepalived's genhash prints it, or "sha256:<hex>"
	// URLs, when set, are several requests, each on a connection of its
	// own and all of which must pass (keepalived's url {} blocks); Path,
	// ExpectStatus, ExpectBody and ExpectDigest are then each entry's.
	URLs         []HTTPURL
	MaxBodyBytes int64 // default DefaultMaxBodyBytes
	TLSOptions         // https only
}

// HTTPURL is one request of an http or https check and what its response
// must be.
type HTTPURL struct {
	Path         string   // required in url entries
	ExpectStatus []string // default 200-299
	ExpectBody   string
	ExpectDigest string
}

// withoutURLs qualifies the keys that url entries take over.
const withoutURLs = "without url entries"

// urlKeys are the keys of one entry of url.
var urlKeys = []string{"path", "expect_status", "expect_body", "expect_digest"}

// Header is one extra HTTP request header.
type Header struct{ Name, Value string }

const (
	// DefaultMaxBodyBytes is how much of an HTTP body expect_body sees.
	DefaultMaxBodyBytes int64 = 64 << 10
	// maxBodyLimit is the largest max_body_bytes.
	maxBodyLimit = 1 << 30
	// UserAgent is sent by the http and https probers unless the spec's
	// headers set their own.
	UserAgent = "director-healthcheck"
)

var (
	httpKeys = []Key{{Name: "method"}, {Name: "path", When: withoutURLs}, {Name: "host"}, {Name: "headers"},
		{Name: "expect_status", When: withoutURLs}, {Name: "expect_body", When: withoutURLs},
		{Name: "expect_digest", When: withoutURLs}, {Name: "url"}, {Name: "max_body_bytes"}}

	httpKind = Kind{
		Name: "http", Foreign: map[string]string{"http_get": "keepalived's HTTP_GET"},
		Keys: httpKeys, Zero: HTTPOptions{},
		Decode:   func(d Decoder) Options { return decodeHTTP(d, false) },
		build:    newHTTP,
		DataPath: true,
	}
	httpsKind = Kind{
		Name: "https", Foreign: map[string]string{"ssl_get": "keepalived's SSL_GET"},
		Keys:     slices.Concat(httpKeys, tlsOptionKeys("")),
		Zero:     HTTPOptions{},
		Decode:   func(d Decoder) Options { return decodeHTTP(d, true) },
		build:    newHTTP,
		DataPath: true,
	}
)

func decodeHTTP(d Decoder, withTLS bool) Options {
	var o HTTPOptions
	o.Method, _ = d.String("method")
	o.Host, _ = d.String("host")
	if m, ok := d.StringTable("headers", "header values", headerProblem); ok {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			o.Headers = append(o.Headers, Header{name, m[name]})
		}
	}
	if entries, ok := d.Tables("url", urlKeys); ok && len(entries) > 0 {
		// Each entry says what its own request expects; the check's
		// own keys would be ignored, so setting them is an error.
		d.Unused("path", "expect_status", "expect_body", "expect_digest")
		for _, e := range entries {
			o.URLs = append(o.URLs, decodeURL(e))
		}
	} else {
		u := decodeURL(d)
		o.Path, o.ExpectStatus, o.ExpectBody, o.ExpectDigest = u.Path, u.ExpectStatus, u.ExpectBody, u.ExpectDigest
	}
	o.MaxBodyBytes, _ = d.Int("max_body_bytes", 1, maxBodyLimit, fmt.Sprintf("max_body_bytes must be 1-%d", maxBodyLimit))
	if withTLS {
		o.TLSOptions = decodeTLS(d)
	}
	return o
}

// decodeURL reads what one request expects, from the check or from one
// entry of url.
func decodeURL(d Decoder) HTTPURL {
	var u HTTPURL
	u.Path, _ = d.String("path")
	if list, ok := d.Strings("expect_status"); ok {
		if len(list) == 0 {
			d.Errorf("expect_status", "must not be empty; leave it out to accept 200-299")
		} else {
			u.ExpectStatus = list
		}
	}
	u.ExpectBody, _ = d.String("expect_body")
	u.ExpectDigest, _ = d.String("expect_digest")
	return u
}

// Validate checks each option, and that a HEAD request expects no body.
func (o HTTPOptions) Validate() []OptionError {
	var errs []OptionError
	bad := func(key, format string, a ...any) {
		errs = append(errs, OptionError{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	if m := o.method(); m != http.MethodGet && m != http.MethodHead {
		bad("method", "unknown method %q; valid: GET, HEAD", o.Method)
	}
	if len(o.URLs) == 0 {
		errs = append(errs, o.validateURL(HTTPURL{o.Path, o.ExpectStatus, o.ExpectBody, o.ExpectDigest}, 0)...)
	} else if o.Path != "" || len(o.ExpectStatus) > 0 || o.ExpectBody != "" || o.ExpectDigest != "" {
		// The config never reads them beside url entries; a caller
		// building options must not expect them to count.
		errs = append(errs, OptionError{Key: "url", With: []string{"path", "expect_status", "expect_body", "expect_digest"},
			Msg: "with url entries, path, expect_status, expect_body and expect_digest belong in each entry"})
	}
	for i, u := range o.URLs {
		if u.Path == "" {
			errs = append(errs, OptionError{Key: "url", Index: i + 1, Entry: "path",
				Msg: "missing: each url entry needs its path, such as path = \"/healthz\""})
		}
		errs = append(errs, o.validateURL(u, i+1)...)
	}
	if o.Host != "" && (strings.ContainsFunc(o.Host, isControlOrSpace) || strings.ContainsAny(o.Host, "/?#@")) {
		bad("host", "%q is not a valid Host header", o.Host)
	}
	for _, h := range o.Headers {
		if msg := headerProblem(h.Name, h.Value); msg != "" {
			errs = append(errs, OptionError{Key: "headers", Entry: h.Name, Msg: msg})
		}
	}
	if o.MaxBodyBytes < 0 || o.MaxBodyBytes > maxBodyLimit {
		bad("max_body_bytes", "%d is out of range; max_body_bytes must be 1-%d", o.MaxBodyBytes, maxBodyLimit)
	}
	return errs
}

// validateURL judges what one request expects: the check's own keys when
// index is 0, else the keys of url entry index (counted from 1).
func (o HTTPOptions) validateURL(u HTTPURL, index int) []OptionError {
	var errs []OptionError
	bad := func(key, msg string, with ...string) {
		if index == 0 {
			errs = append(errs, OptionError{Key: key, With: with, Msg: msg})
		} else {
			errs = append(errs, OptionError{Key: "url", Index: index, Entry: key, With: with, Msg: msg})
		}
	}
	switch {
	case u.Path == "":
	case !strings.HasPrefix(u.Path, "/"):
		bad("path", fmt.Sprintf("%q must start with \"/\"", u.Path))
	case strings.ContainsFunc(u.Path, isControlOrSpace):
		bad("path", fmt.Sprintf("%q contains spaces or control characters", u.Path))
	}
	if _, err := ParseStatusRanges(u.ExpectStatus); err != nil {
		bad("expect_status", err.Error())
	}
	head := o.method() == http.MethodHead
	if msg := regexpProblem(u.ExpectBody); msg != "" {
		bad("expect_body", msg)
	} else if u.ExpectBody != "" && head {
		bad("expect_body", "a HEAD response has no body (use method GET)", "method")
	}
	if _, _, err := ParseDigest(u.ExpectDigest); err != nil {
		bad("expect_digest", err.Error())
	} else if u.ExpectDigest != "" && head {
		bad("expect_digest", "a HEAD response has no body (use method GET)", "method")
	}
	return errs
}

// urls are the requests the check makes, in order: the url entries, or
// the one the check's own keys describe.
func (o HTTPOptions) urls() []HTTPURL {
	if len(o.URLs) > 0 {
		return o.URLs
	}
	return []HTTPURL{{o.Path, o.ExpectStatus, o.ExpectBody, o.ExpectDigest}}
}

// ParseDigest parses an expect_digest value: 32 hex digits are an MD5
// (what keepalived's genhash prints), "sha256:" and 64 hex digits a
// SHA-256. It returns the algorithm's name ("md5" or "sha256") and the
// digest; "" gives "", nil.
func ParseDigest(s string) (alg string, sum []byte, err error) {
	if s == "" {
		return "", nil, nil
	}
	alg, digits, size := "md5", s, md5.Size
	if rest, ok := strings.CutPrefix(s, "sha256:"); ok {
		alg, digits, size = "sha256", rest, sha256.Size
	}
	sum, err = hex.DecodeString(digits)
	if err != nil || len(sum) != size {
		return "", nil, fmt.Errorf("%q is not a digest: want 32 hex digits (MD5, as keepalived's genhash prints) or \"sha256:\" and 64 hex digits", s)
	}
	return alg, sum, nil
}

// newDigest returns the hash of the named algorithm.
func newDigest(alg string) hash.Hash {
	if alg == "sha256" {
		return sha256.New()
	}
	return md5.New()
}

// FormatDigest renders sum as expect_digest takes it: plain hex for MD5,
// "sha256:<hex>" for SHA-256.
func FormatDigest(alg string, sum []byte) string {
	if alg == "sha256" {
		return "sha256:" + hex.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

// method is the request method, GET by default.
func (o HTTPOptions) method() string {
	if o.Method == "" {
		return http.MethodGet
	}
	return strings.ToUpper(o.Method)
}

func (u HTTPURL) path() string {
	if u.Path == "" {
		return "/"
	}
	return u.Path
}

func (o HTTPOptions) maxBody() int64 {
	if o.MaxBodyBytes == 0 {
		return DefaultMaxBodyBytes
	}
	return o.MaxBodyBytes
}

// Canonical renders every option with its default applied.
func (o HTTPOptions) Canonical() string {
	var c canonical
	c.str("method", o.method())
	c.str("host", o.Host)
	headers := make([]string, len(o.Headers))
	for i, h := range o.Headers {
		headers[i] = strconv.Quote(h.Name) + ":" + strconv.Quote(h.Value)
	}
	c.list("headers", headers)
	// The requests, each with its defaults applied: one url entry is the
	// same check as the check's own keys saying the same.
	c.b.WriteString("urls=[")
	for _, u := range o.urls() {
		var uc canonical
		uc.str("path", u.path())
		status := u.ExpectStatus
		if len(status) == 0 {
			status = []string{"200-299"}
		}
		uc.list("expect_status", status)
		uc.str("expect_body", u.ExpectBody)
		digest := u.ExpectDigest
		if alg, sum, err := ParseDigest(digest); err == nil {
			digest = FormatDigest(alg, sum) // lower case
		}
		uc.str("expect_digest", digest)
		c.b.WriteString("{" + uc.text() + "},")
	}
	c.b.WriteString("] ")
	c.int("max_body_bytes", o.maxBody())
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is the URL checked, after the method unless it is GET, and how
// many there are when more than one: "http://10.0.0.11:8080/healthz",
// "HEAD https://[2001:db8::1]:443/", "http://10.0.0.11/a (+2 URLs)".
func (o HTTPOptions) Describe(s Spec) string {
	urls := o.urls()
	u := s.Type + "://" + s.Target.String() + urls[0].path()
	if o.method() == http.MethodHead {
		u = "HEAD " + u
	}
	if len(urls) > 1 {
		u += fmt.Sprintf(" (+%d URLs)", len(urls)-1)
	}
	return u
}

// headerProblem judges one extra request header.
func headerProblem(name, value string) string {
	switch {
	case !isToken(name):
		return fmt.Sprintf("%q is not a valid HTTP header name", name)
	case strings.ContainsAny(value, "\r\n\x00"):
		return "header values must not contain line breaks or NUL"
	case strings.EqualFold(name, "Host"):
		return "set the Host header with the host option"
	}
	return ""
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// ParseStatusRanges parses expect_status entries: "200", "200-299".
func ParseStatusRanges(list []string) ([]StatusRange, error) {
	if len(list) == 0 {
		return []StatusRange{{200, 299}}, nil
	}
	return parseCodeRanges(list, 100, 599)
}

// parseCodeRanges parses codes and ranges of codes, each within [least,
// most].
func parseCodeRanges(list []string, least, most int) ([]StatusRange, error) {
	out := make([]StatusRange, 0, len(list))
	for _, s := range list {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
		min, err1 := strconv.Atoi(strings.TrimSpace(lo))
		max := min
		var err2 error
		if isRange {
			max, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || min < least || max > most || min > max {
			return nil, fmt.Errorf("invalid status %q: want a code %d-%d or a range like \"200-299\"", s, least, most)
		}
		out = append(out, StatusRange{min, max})
	}
	return out, nil
}

// httpProber checks an HTTP or HTTPS server: for each URL one request on a
// fresh connection, its status judged by the expected ranges, and
// optionally its body by a regular expression and a digest. Redirects are
// not followed. A check of several URLs fails at the first that fails.
type httpProber struct {
	*httpShape             // what its options make of its requests, shared
	spec       *Spec       // its target, timeout, source
	host       string      // the Host header
	tls        *tls.Config // nil for plain http
	fast       fastSpec    // how a FastLoop runs it; unset (fastOf): only Probe
}

// httpShape is what an http or https check's options make of its
// requests, whatever their target: the method, the header, each URL's
// request target and what its response must be. The target goes only in
// the Host header and the connection, so the checks of one virtual server
// need one shape: a Shared builds one per distinct options and its probers
// share it (a copy each, with its parsed URLs and status ranges, was ~250
// bytes a real server, docs/performance.md, "Memory, second pass").
type httpShape struct {
	method  string
	header  http.Header
	maxBody int64
	urls    []urlProbe
	// request is the request as a FastLoop writes it; nil when the loop
	// cannot run the checks (TLS, several URLs, a body to judge).
	request *requestTemplate
}

// requestTemplate is an HTTP request's bytes as Request.Write writes
// them, around its Host header's value when that is the target (each
// prober's host goes between before and after; a copy of the whole
// request per prober was ~150 bytes a real server).
type requestTemplate struct {
	before, after []byte
	target        bool // the host goes between before and after; false: before is the whole request
}

// hostMarker stands for the target in a template as it is written.
const hostMarker = "target.invalid"

// size is the length of the request to host.
func (t *requestTemplate) size(host string) int {
	if !t.target {
		return len(t.before)
	}
	return len(t.before) + len(host) + len(t.after)
}

// appendTo appends the request to host to b.
func (t *requestTemplate) appendTo(b []byte, host string) []byte {
	b = append(b, t.before...)
	if t.target {
		b = append(append(b, host...), t.after...)
	}
	return b
}

// urlProbe is one request of a check and what its response must be.
type urlProbe struct {
	path      string
	reqURL    *url.URL // the request target; no host (the request's Host header has it)
	statuses  []StatusRange
	body      *regexp.Regexp // nil: any body
	digestAlg string         // "" : no digest expected
	digest    []byte
}

// newHTTP builds the prober of a spec whose options passed Validate.
func newHTTP(spec *Spec, sh *Shared) (Prober, error) {
	o := spec.Options.(HTTPOptions)
	hostport := spec.Target.String()
	// Each URL is parsed with the target, as a request to it would be, so
	// that a path is judged the same whatever the shape holds.
	targets := make([]*url.URL, 0, len(o.urls()))
	for i, u := range o.urls() {
		target, err := url.Parse(spec.Type + "://" + hostport + u.path())
		if err != nil || target.Host != hostport {
			key := "path"
			if len(o.URLs) > 0 {
				key = fmt.Sprintf("url[%d].path", i)
			}
			return nil, fmt.Errorf("%s: %s: %q is not a valid request path", spec, key, u.Path)
		}
		targets = append(targets, target)
	}
	shape := sh.httpShape(spec.Type+"\x00"+o.Canonical(), func() *httpShape { return newHTTPShape(spec.Type, o, targets, sh) })
	p := &httpProber{httpShape: shape, spec: spec, host: hostport}
	if o.Host != "" {
		p.host = o.Host
	}
	if spec.Type == "https" {
		var err error
		if p.tls, err = tlsConfig(spec, o.TLSOptions, o.Host); err != nil {
			return nil, err
		}
	}
	// Plain HTTP with one URL judged on its status can run on a FastLoop:
	// the same request bytes, the head parsed by the same ReadResponse.
	// The template is checked against the request as Request.Write
	// writes it to this host: a host written otherwise (a zone or a name
	// made punycode) leaves the check on Probe, which writes it so.
	if t := p.request; t != nil {
		req := &http.Request{Method: p.method, URL: p.urls[0].reqURL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: p.header, Host: p.host, Close: true}
		var b bytes.Buffer
		if err := req.Write(&b); err == nil && bytes.Equal(b.Bytes(), t.appendTo(nil, p.host)) && p.fast.init(p.spec) {
			p.fast.http = p
		}
	}
	return p, nil
}

// newHTTPShape is the shape of o's requests; targets are its URLs as
// parsed for one target.
func newHTTPShape(scheme string, o HTTPOptions, targets []*url.URL, sh *Shared) *httpShape {
	s := &httpShape{method: o.method(), maxBody: o.maxBody(), header: sh.requestHeader(o.Headers)}
	for i, u := range o.urls() {
		reqURL := *targets[i]
		reqURL.Host = "" // a request carries its target in Host
		up := urlProbe{path: u.path(), reqURL: &reqURL}
		up.statuses, _ = ParseStatusRanges(u.ExpectStatus) // Validate judged them
		if u.ExpectBody != "" {
			up.body = regexp.MustCompile(u.ExpectBody) // Validate compiled it
		}
		up.digestAlg, up.digest, _ = ParseDigest(u.ExpectDigest)
		s.urls = append(s.urls, up)
	}
	if u := &s.urls[0]; scheme == "http" && len(s.urls) == 1 && u.body == nil && u.digest == nil {
		s.request = newRequestTemplate(&http.Request{Method: s.method, URL: u.reqURL, Proto: "HTTP/1.1", ProtoMajor: 1,
			ProtoMinor: 1, Header: s.header, Host: o.Host, Close: true})
	}
	return s
}

// newRequestTemplate is the template of req: with its Host when that is
// set, else around the target's place. nil if req cannot be written.
func newRequestTemplate(req *http.Request) *requestTemplate {
	t := &requestTemplate{target: req.Host == ""}
	if t.target {
		req.Host = hostMarker
	}
	var b bytes.Buffer
	if err := req.Write(&b); err != nil {
		return nil
	}
	t.before = bytes.Clone(b.Bytes())
	if t.target {
		// Values cannot hold line breaks (Validate): the Host line is
		// the only one that can look so.
		at := bytes.Index(t.before, []byte("\r\nHost: "+hostMarker+"\r\n"))
		if at < 0 {
			return nil
		}
		at += len("\r\nHost: ")
		t.before, t.after = t.before[:at], t.before[at+len(hostMarker):]
	}
	return t
}

// requestHeader is the header of a request with the extra headers hs:
// one map per distinct list, shared by the probers built through sh
// (read only: Request.Write only reads it), where a map per prober was
// ~300 bytes a real server at 10,000 HTTP checks (docs/performance.md,
// "Memory per real server"). A nil sh builds a map of its own.
func (sh *Shared) requestHeader(hs []Header) http.Header {
	var key strings.Builder
	for _, h := range hs {
		key.WriteString(h.Name)
		key.WriteByte(0)
		key.WriteString(h.Value)
		key.WriteByte(0)
	}
	if sh != nil {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if h, ok := sh.headers[key.String()]; ok {
			return h
		}
	}
	h := make(http.Header, len(hs)+2)
	for _, x := range hs {
		h.Add(x.Name, x.Value)
	}
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", UserAgent)
	}
	// expect_body matches the body as sent; a server may still compress
	// it, and then only gzip is decoded.
	if h.Get("Accept-Encoding") == "" {
		h.Set("Accept-Encoding", "identity")
	}
	if sh != nil {
		if sh.headers == nil {
			sh.headers = map[string]http.Header{}
		}
		sh.headers[key.String()] = h
	}
	return h
}

// Probe sends one request per URL, each on a new connection which it
// closes before the next; the deadline covers all of them: connects,
// handshakes, requests and bodies.
func (p *httpProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *httpProber) probe(ctx context.Context) string {
	for i := range p.urls {
		u := &p.urls[i]
		reason := p.exchange(ctx, u, func(resp *http.Response, capped *capReader) string {
			return p.judge(ctx, u, resp, capped)
		})
		switch {
		case reason == "" || len(p.urls) == 1:
		case strings.HasPrefix(reason, localPrefix):
			// The director's own trouble, not the URL's: the
			// reason stays as inconclusive reasons are.
		default:
			reason = u.path + ": " + reason
		}
		if reason != "" {
			return reason
		}
	}
	return ""
}

// exchange sends u's request on a connection of its own and hands the
// response to read, whose reason it returns.
func (p *httpProber) exchange(ctx context.Context, u *urlProbe, read func(*http.Response, *capReader) string) string {
	// One request on a connection of its own, without net/http's Transport:
	// no connection pool, no per-request goroutines, no state shared between
	// checks. The request is written and the response parsed by net/http's
	// own Request.Write and ReadResponse, so framing (status line, headers,
	// chunked or length-delimited bodies) is exactly net/http's.
	conn, err := dial(ctx, p.spec, p.tls)
	if err != nil {
		return classify(ctx, err)
	}
	defer conn.Close()
	defer deadlineConn(ctx, conn)()

	req := &http.Request{
		Method:     p.method,
		URL:        u.reqURL,
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
	// What is read from the connection is capped: first the head, then as
	// much again as the body may take.
	capped := &capReader{r: conn, left: maxHeadBytes}
	br := bufio.NewReaderSize(capped, 4096)
	resp, err := http.ReadResponse(br, req)
	// Interim responses (100 Continue, 103 Early Hints) precede the real
	// one; 101 would switch protocols and is judged as it is.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		if capped.hit {
			return fmt.Sprintf("headers too large (limit %d)", maxHeadBytes)
		}
		return classify(ctx, err)
	}
	defer resp.Body.Close()
	return read(resp, capped)
}

// judge judges u's response: its status, then its body.
func (p *httpProber) judge(ctx context.Context, u *urlProbe, resp *http.Response, capped *capReader) string {
	if !statusOK(u.statuses, resp.StatusCode) {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	if u.body == nil && u.digest == nil {
		return ""
	}
	whole := u.digest != nil // a digest is of the whole body, not a prefix
	data, reason := p.readBody(ctx, resp, capped, whole)
	if reason != "" {
		return reason
	}
	if u.body != nil && !u.body.Match(data) {
		return "body mismatch"
	}
	if u.digest != nil {
		h := newDigest(u.digestAlg)
		h.Write(data)
		if !bytes.Equal(h.Sum(nil), u.digest) {
			return "digest mismatch"
		}
	}
	return ""
}

// readBody reads the body, up to maxBody bytes, decoded from its transfer
// coding (chunked) and from gzip. The body up to the cap must arrive
// within the deadline. A body the server ended early (before its
// Content-Length, or inside a chunk) fails: it is an incomplete message
// (RFC 9112, section 6.3). One cut short by the director's own cap on what
// it reads is returned as far as it came, unless whole is set: then a body
// over the cap fails with "body too large".
func (p *httpProber) readBody(ctx context.Context, resp *http.Response, capped *capReader, whole bool) ([]byte, string) {
	capped.left += p.maxBody
	var body io.Reader = resp.Body
	limit := p.maxBody
	if whole {
		limit++ // one byte more tells a body over the cap
	}
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		// Asked for identity, the server compressed anyway: decode, and
		// read one byte more than the cap to tell a body over it, such as
		// a few kilobytes that would expand to gigabytes.
		zr, err := gzip.NewReader(resp.Body)
		switch {
		case errors.Is(err, io.EOF):
			body = strings.NewReader("") // no body at all
		case err != nil:
			return nil, bodyError(ctx, resp, capped, err)
		default:
			defer zr.Close()
			body, limit = zr, p.maxBody+1
		}
	default:
		return nil, fmt.Sprintf("body encoded as %q (only gzip is decoded)", clip(enc))
	}
	data, err := io.ReadAll(io.LimitReader(body, limit))
	if int64(len(data)) > p.maxBody || (whole && capped.hit) {
		return nil, "body too large"
	}
	if err != nil {
		if reason := bodyError(ctx, resp, capped, err); reason != "" {
			return nil, reason
		}
	}
	return data, ""
}

// bodyError judges an error reading the body: "" when the director's own
// cap ended the read (the body is judged as far as it came), else the
// reason.
func bodyError(ctx context.Context, resp *http.Response, capped *capReader, err error) string {
	var corrupt flate.CorruptInputError
	switch {
	case capped.hit:
		return ""
	case ctx.Err() != nil:
	case errors.Is(err, io.ErrUnexpectedEOF):
		if resp.ContentLength >= 0 {
			return "body shorter than Content-Length"
		}
		return "body incomplete"
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return "body: invalid gzip"
	}
	return classify(ctx, err)
}

// maxHeadBytes bounds what a check reads before the body: the status line,
// headers and interim (1xx) responses. Chunk framing shares it with the
// body.
const maxHeadBytes = 256 << 10

// capReader reads at most left bytes from r; hit records that a read was
// refused at the cap, so that an end of stream can be told from the
// server's.
type capReader struct {
	r    io.Reader
	left int64
	hit  bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.hit = true
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

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

// Fetched is what FetchDigest got from a URL.
type Fetched struct {
	Status int
	Size   int64  // bytes of body digested
	Digest string // as expect_digest takes it
}

// FetchDigest requests the one URL of the http or https check spec as the
// check would, and digests its body with alg ("md5" or "sha256") as
// expect_digest would: the body after its transfer coding (chunked) is
// removed, up to max_body_bytes (a longer body fails with "body too
// large"). The status is not judged. reason is "" on success, else what a
// check would report.
func FetchDigest(ctx context.Context, spec Spec, alg string) (Fetched, string, error) {
	pr, err := New(spec)
	if err != nil {
		return Fetched{}, "", err
	}
	p, ok := pr.(*httpProber)
	if !ok || len(p.urls) != 1 {
		return Fetched{}, "", fmt.Errorf("%s: not an http or https check of one URL", spec)
	}
	ctx, cancel := withDeadline(ctx, spec.Timeout)
	defer cancel()
	var got Fetched
	reason := p.exchange(ctx, &p.urls[0], func(resp *http.Response, capped *capReader) string {
		got.Status = resp.StatusCode
		data, reason := p.readBody(ctx, resp, capped, true)
		if reason != "" {
			return reason
		}
		h := newDigest(alg)
		h.Write(data)
		got.Size, got.Digest = int64(len(data)), FormatDigest(alg, h.Sum(nil))
		return ""
	})
	return got, reason, nil
}
