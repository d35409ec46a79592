package checks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// TestHTTPResponseFraming drives the prober with raw responses, byte for
// byte, to show it reads every framing net/http accepts and refuses what
// is not HTTP.
func TestHTTPResponseFraming(t *testing.T) {
	big := strings.Repeat("x", 300<<10)
	for _, tc := range []struct {
		name     string
		response string
		body     string // expect_body; "" for none
		want     string // "" for OK, else the reason or its prefix
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nall ok\n", "ok", ""},
		{"chunked, match across chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\no\r\n2\r\nk!\r\n0\r\n\r\n", "ok!", ""},
		{"close-delimited HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\nstatus: ok", "status: ok", ""},
		{"interim 100 then 204", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", "", ""},
		{"status judged", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "", "status 503"},
		{"redirect not followed", "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", "", "status 302"},
		{"body shorter than its length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok", "ok", "body shorter than Content-Length"},
		{"chunked body cut inside a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nok", "ok", "body incomplete"},
		{"chunked body without its last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", "ok", "body incomplete"},
		{"short body not read without expect_body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok", "", ""},
		{"garbage", "SSH-2.0-OpenSSH_9.2\r\n", "", "error: "},
		{"bad chunk framing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", "ok", "error: "},
		{"headers beyond the cap", "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 2\r\n\r\nok", "ok", "headers too large (limit 262144)"},
		{"nothing at all", "", "", "error: connection closed"},
		{"binary garbage", "\x16\x03\x01\x00\xff\x00\x00\x80\xfe\r\n\r\n", "", "error: "},
		{"status not a number", "HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n", "", "error: "},
		{"status line without end", "HTTP/1.1 200 " + big, "", "headers too large (limit 262144)"},
		{"header without colon", "HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\n", "", "error: "},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", "ok", "error: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
				// Read the request head, then answer and close.
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				c.Write([]byte(tc.response))
			})
			spec := Spec{Type: "http", Target: target, Timeout: 2 * time.Second, Options: HTTPOptions{ExpectBody: tc.body, MaxBodyBytes: 1024}}
			res := probeWithin(t, mustNew(t, spec), 2*time.Second)
			switch {
			case tc.want == "":
				wantOK(t, res)
			case strings.HasSuffix(tc.want, " "):
				wantReasonPrefix(t, res, tc.want)
			default:
				wantReason(t, res, tc.want)
			}
		})
	}
}

// TestHTTPRequestOnTheWire checks what the lean path sends.
func TestHTTPRequestOnTheWire(t *testing.T) {
	got := make(chan *http.Request, 1)
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		got <- req
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	})
	spec := Spec{Type: "http", Target: target, Timeout: 2 * time.Second, Options: HTTPOptions{Method: "HEAD", Path: "/health?deep=1",
		Host: "www.example.org", Headers: []Header{{"X-Check", "director"}}}}
	wantOK(t, probeWithin(t, mustNew(t, spec), 2*time.Second))
	req := <-got
	if req.Method != "HEAD" || req.RequestURI != "/health?deep=1" || req.Host != "www.example.org" ||
		req.Header.Get("X-Check") != "director" || req.Header.Get("User-Agent") != UserAgent || !req.Close {
		t.Errorf("request on the wire: %s %s Host=%s headers=%v close=%v", req.Method, req.RequestURI, req.Host, req.Header, req.Close)
	}
}

// rawServer answers every request with response, then keeps the connection
// open until the test ends, so that only the prober can end the exchange.
func rawServer(t *testing.T, response []byte) netip.AddrPort {
	t.Helper()
	return hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		if !readHead(c) {
			return
		}
		c.Write(response)
		<-done
	})
}

// A response head over the limit is reported as such, at once, even while
// the server keeps the connection open.
func TestHTTPHeadersTooLarge(t *testing.T) {
	noLeaks(t)
	head := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Padding: "+strings.Repeat("p", 1000)+"\r\n", 300) + "Content-Length: 2\r\n\r\nok"
	target := rawServer(t, []byte(head))
	for _, body := range []string{"", "ok"} {
		start := time.Now()
		res := probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: body}}), 5*time.Second)
		wantReason(t, res, "headers too large (limit 262144)")
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %v: the prober waited for the server", el)
		}
	}
}

// Chunk framing shares the cap with the body: a body whose framing is
// bulky (one-byte chunks with as long an extension as net/http allows,
// 21 bytes on the wire per byte of body) is cut by the director's cap,
// not by the server, and is judged as far as it came.
func TestHTTPOwnCapIsNotAnIncompleteBody(t *testing.T) {
	noLeaks(t)
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range 30000 {
		fmt.Fprintf(&b, "1;eeeeeeeeeeeeee\r\n%c\r\n", "ok"[i%2])
	}
	b.WriteString("0\r\n\r\n")
	target := rawServer(t, []byte(b.String()))
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target,
		Options: HTTPOptions{ExpectBody: "^okok", MaxBodyBytes: 20 << 10}}), 5*time.Second))
}

// The request asks for the body as it is, unless the operator's headers
// say otherwise.
func TestHTTPAcceptEncoding(t *testing.T) {
	got := make(chan string, 2)
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		got <- strings.Join(req.Header.Values("Accept-Encoding"), ",")
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	})
	for _, tc := range []struct {
		headers []Header
		want    string
	}{
		{nil, "identity"},
		{[]Header{{"Accept-Encoding", "gzip"}}, "gzip"},
	} {
		wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{Headers: tc.headers}}), 2*time.Second))
		if ae := <-got; ae != tc.want {
			t.Errorf("headers %v: Accept-Encoding %q, want %q", tc.headers, ae, tc.want)
		}
	}
}

func gzipped(t *testing.T, write func(w io.Writer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	write(zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A body compressed although the request asked for identity is decoded,
// within max_body_bytes of decoded data: a small body expanding to many
// megabytes ends as "body too large", reading a bounded amount.
func TestHTTPGzipBody(t *testing.T) {
	noLeaks(t)
	ok := gzipped(t, func(w io.Writer) { io.WriteString(w, "status: ok\n") })
	bomb := gzipped(t, func(w io.Writer) {
		zeros := make([]byte, 1<<20)
		for range 64 {
			w.Write(zeros)
		}
	})
	respond := func(enc string, body []byte, chunked bool) []byte {
		framing := fmt.Sprintf("Content-Length: %d", len(body))
		if chunked {
			framing = "Transfer-Encoding: chunked"
			body = fmt.Appendf(nil, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		}
		return fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\n%s\r\n\r\n%s", enc, framing, body)
	}
	corrupt := slices.Clone(ok)
	corrupt[len(corrupt)-5] ^= 0xff // the CRC-32
	for _, tc := range []struct {
		name     string
		response []byte
		want     string
	}{
		{"gzip", respond("gzip", ok, false), ""},
		{"x-gzip, chunked", respond("X-Gzip", ok, true), ""},
		{"empty gzip body", respond("gzip", nil, false), "body mismatch"},
		{"gzip bomb", respond("gzip", bomb, false), "body too large"},
		{"corrupt gzip", respond("gzip", corrupt, false), "body: invalid gzip"},
		{"not gzip at all", respond("gzip", []byte("status: ok"), false), "body: invalid gzip"},
		{"gzip cut short", respond("gzip", ok, false)[:len(respond("gzip", ok, false))-8], "body shorter than Content-Length"},
		{"brotli", respond("br", []byte("status: ok"), false), `body encoded as "br" (only gzip is decoded)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
				if readHead(c) {
					c.Write(tc.response)
				}
			})
			before := heapAfterGC()
			res := probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Timeout: 2 * time.Second,
				Options: HTTPOptions{ExpectBody: "^status: ok"}}), 2*time.Second)
			if tc.want == "" {
				wantOK(t, res)
			} else {
				wantReason(t, res, tc.want)
			}
			if grew := int64(heapAfterGC()) - int64(before); grew > 8<<20 {
				t.Errorf("heap grew by %d MB", grew>>20)
			}
		})
	}
}
