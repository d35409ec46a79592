package checks

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	MaxBodyBytes int64    // default DefaultMaxBodyBytes
	TLSOptions            // https only
}

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
	httpKeys = []Key{{Name: "method"}, {Name: "path"}, {Name: "host"}, {Name: "headers"},
		{Name: "expect_status"}, {Name: "expect_body"}, {Name: "max_body_bytes"}}

	httpKind = Kind{
		Name: "http", Foreign: map[string]string{"http_get": "keepalived's HTTP_GET"},
		Keys: httpKeys, Zero: HTTPOptions{},
		Decode: func(d Decoder) Options { return decodeHTTP(d, false) },
		build:  newHTTP,
	}
	httpsKind = Kind{
		Name: "https", Foreign: map[string]string{"ssl_get": "keepalived's SSL_GET"},
		Keys:   slices.Concat(httpKeys, tlsOptionKeys("")),
		Zero:   HTTPOptions{},
		Decode: func(d Decoder) Options { return decodeHTTP(d, true) },
		build:  newHTTP,
	}
)

func decodeHTTP(d Decoder, withTLS bool) Options {
	var o HTTPOptions
	o.Method, _ = d.String("method")
	o.Path, _ = d.String("path")
	o.Host, _ = d.String("host")
	if m, ok := d.StringTable("headers", "header values", headerProblem); ok {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			o.Headers = append(o.Headers, Header{name, m[name]})
		}
	}
	if list, ok := d.Strings("expect_status"); ok {
		if len(list) == 0 {
			d.Errorf("expect_status", "must not be empty; leave it out to accept 200-299")
		} else {
			o.ExpectStatus = list
		}
	}
	o.ExpectBody, _ = d.String("expect_body")
	o.MaxBodyBytes, _ = d.Int("max_body_bytes", 1, maxBodyLimit, fmt.Sprintf("max_body_bytes must be 1-%d", maxBodyLimit))
	if withTLS {
		o.TLSOptions = decodeTLS(d)
	}
	return o
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
	switch {
	case o.Path == "":
	case !strings.HasPrefix(o.Path, "/"):
		bad("path", "%q must start with \"/\"", o.Path)
	case strings.ContainsFunc(o.Path, isControlOrSpace):
		bad("path", "%q contains spaces or control characters", o.Path)
	}
	if o.Host != "" && (strings.ContainsFunc(o.Host, isControlOrSpace) || strings.ContainsAny(o.Host, "/?#@")) {
		bad("host", "%q is not a valid Host header", o.Host)
	}
	for _, h := range o.Headers {
		if msg := headerProblem(h.Name, h.Value); msg != "" {
			errs = append(errs, OptionError{Key: "headers", Entry: h.Name, Msg: msg})
		}
	}
	if _, err := ParseStatusRanges(o.ExpectStatus); err != nil {
		bad("expect_status", "%v", err)
	}
	if msg := regexpProblem(o.ExpectBody); msg != "" {
		bad("expect_body", "%s", msg)
	} else if o.ExpectBody != "" && o.method() == http.MethodHead {
		errs = append(errs, OptionError{Key: "expect_body", With: []string{"method"},
			Msg: "a HEAD response has no body (use method GET)"})
	}
	if o.MaxBodyBytes < 0 || o.MaxBodyBytes > maxBodyLimit {
		bad("max_body_bytes", "%d is out of range; max_body_bytes must be 1-%d", o.MaxBodyBytes, maxBodyLimit)
	}
	return errs
}

// method is the request method, GET by default.
func (o HTTPOptions) method() string {
	if o.Method == "" {
		return http.MethodGet
	}
	return strings.ToUpper(o.Method)
}

func (o HTTPOptions) path() string {
	if o.Path == "" {
		return "/"
	}
	return o.Path
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
	c.str("path", o.path())
	c.str("host", o.Host)
	headers := make([]string, len(o.Headers))
	for i, h := range o.Headers {
		headers[i] = strconv.Quote(h.Name) + ":" + strconv.Quote(h.Value)
	}
	c.list("headers", headers)
	status := o.ExpectStatus
	if len(status) == 0 {
		status = []string{"200-299"}
	}
	c.list("expect_status", status)
	c.str("expect_body", o.ExpectBody)
	c.int("max_body_bytes", o.maxBody())
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is the URL checked, after the method unless it is GET:
// "http://10.0.0.11:8080/healthz", "HEAD https://[2001:db8::1]:443/".
func (o HTTPOptions) Describe(s Spec) string {
	u := s.Type + "://" + s.Target.String() + o.path()
	if o.method() == http.MethodHead {
		return "HEAD " + u
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

// httpProber checks an HTTP or HTTPS server: one request on a fresh
// connection, its status judged by the expected ranges, and optionally its
// body by a regular expression. Redirects are not followed.
type httpProber struct {
	spec     Spec
	reqURL   *url.URL // the request target
	host     string   // the Host header
	method   string
	header   http.Header
	statuses []StatusRange
	body     *regexp.Regexp
	maxBody  int64
	tls      *tls.Config // nil for plain http
	fast     *fastSpec   // how a FastLoop runs it; nil: only Probe
}

// newHTTP builds the prober of a spec whose options passed Validate.
func newHTTP(spec Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(HTTPOptions)
	p := &httpProber{spec: spec, method: o.method(), maxBody: o.maxBody()}
	hostport := spec.Target.String()
	u, err := url.Parse(spec.Type + "://" + hostport + o.path())
	if err != nil || u.Host != hostport {
		return nil, fmt.Errorf("%s: path: %q is not a valid request path", spec, o.Path)
	}
	p.reqURL = u
	p.host = hostport
	if o.Host != "" {
		p.host = o.Host
	}
	p.header = make(http.Header, len(o.Headers)+1)
	for _, h := range o.Headers {
		p.header.Add(h.Name, h.Value)
	}
	if p.header.Get("User-Agent") == "" {
		p.header.Set("User-Agent", UserAgent)
	}
	// expect_body matches the body as sent; a server may still compress
	// it, and then only gzip is decoded.
	if p.header.Get("Accept-Encoding") == "" {
		p.header.Set("Accept-Encoding", "identity")
	}
	p.statuses, _ = ParseStatusRanges(o.ExpectStatus) // Validate judged them
	if o.ExpectBody != "" {
		p.body = regexp.MustCompile(o.ExpectBody) // Validate compiled it
	}
	if spec.Type == "https" {
		if p.tls, err = tlsConfig(spec, o.TLSOptions, o.Host); err != nil {
			return nil, err
		}
	}
	// Plain HTTP judged on its status can run on a FastLoop: the same
	// request bytes, the head parsed by the same ReadResponse.
	if p.tls == nil && p.body == nil {
		var b bytes.Buffer
		if err := p.request().Write(&b); err == nil {
			if f := newFastSpec(&p.spec); f != nil {
				f.http, f.request, f.req = p, b.Bytes(), p.request()
				p.fast = f
			}
		}
	}
	return p, nil
}

// Probe sends one request on a new connection, which it closes before
// returning; the deadline covers connect, handshake, request and body.
func (p *httpProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
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
	defer deadlineConn(ctx, conn)()

	req := p.request()
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

	if !statusOK(p.statuses, resp.StatusCode) {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	if p.body == nil {
		return ""
	}
	capped.left += p.maxBody
	return p.judgeBody(ctx, resp, capped)
}

// request is the check's request: HTTP/1.1, on a connection of its own.
func (p *httpProber) request() *http.Request {
	return &http.Request{
		Method:     p.method,
		URL:        p.reqURL,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     p.header,
		Host:       p.host,
		Close:      true,
	}
}

// judgeBody reads the body, up to maxBody bytes, and matches it. The body
// up to the cap must arrive within the deadline; then the regular
// expression sees all of it at once. A body the server ended early (before
// its Content-Length, or inside a chunk) fails: it is an incomplete
// message (RFC 9112, section 6.3). One cut short by the director's own cap
// on what it reads is judged as far as it came.
func (p *httpProber) judgeBody(ctx context.Context, resp *http.Response, capped *capReader) string {
	var body io.Reader = resp.Body
	limit := p.maxBody
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
			return bodyError(ctx, resp, capped, err)
		default:
			defer zr.Close()
			body, limit = zr, p.maxBody+1
		}
	default:
		return fmt.Sprintf("body encoded as %q (only gzip is decoded)", clip(enc))
	}
	data, err := io.ReadAll(io.LimitReader(body, limit))
	if int64(len(data)) > p.maxBody {
		return "body too large"
	}
	if err != nil {
		if reason := bodyError(ctx, resp, capped, err); reason != "" {
			return reason
		}
	}
	if !p.body.Match(data) {
		return "body mismatch"
	}
	return ""
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
