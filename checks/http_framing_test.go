package checks

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
		{"body shorter than its length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok", "ok", ""},
		{"garbage", "SSH-2.0-OpenSSH_9.2\r\n", "", "error: "},
		{"bad chunk framing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", "ok", "error: "},
		{"headers beyond the cap", "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 2\r\n\r\nok", "ok", "error: "},
		{"nothing at all", "", "", "error: connection closed"},
		{"binary garbage", "\x16\x03\x01\x00\xff\x00\x00\x80\xfe\r\n\r\n", "", "error: "},
		{"status not a number", "HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n", "", "error: "},
		{"status line without end", "HTTP/1.1 200 " + big, "", "error: "},
		{"header without colon", "HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\n", "", "error: "},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", "ok", "error: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := connServer(t, listen(t, "127.0.0.1:0"), func(c net.Conn) {
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
	target := connServer(t, listen(t, "127.0.0.1:0"), func(c net.Conn) {
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
