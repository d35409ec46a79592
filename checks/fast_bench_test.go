package checks

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// The answer the bench backends give (bench/backends.go).
const benchHTTPAnswer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"

// BenchmarkFastJudgeHead is the loop's parse of a whole HTTP answer: what
// an HTTP check costs beyond a TCP one, bar the write and the reads.
func BenchmarkFastJudgeHead(b *testing.B) {
	p, err := New(Spec{Type: "http", Target: netip.MustParseAddrPort("127.0.0.1:80")})
	if err != nil {
		b.Fatal(err)
	}
	hp := p.(*httpProber)
	l := &FastLoop{reads: map[string]*http.Request{}, br: bufio.NewReaderSize(nil, 4096)}
	buf := []byte(benchHTTPAnswer)
	deadline := time.Now().Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if reason, complete := hp.judgeHead(l.br, l.readRequest(hp.method), buf, nil, deadline); reason != "" || !complete {
			b.Fatalf("judged %q, complete %v", reason, complete)
		}
	}
}

// BenchmarkFastHTTPCheck runs HTTP checks one after another on the loop
// against a loopback server that answers as the bench backends do. The
// server's goroutines are in the figure too; -cpuprofile splits them.
func BenchmarkFastHTTPCheck(b *testing.B) {
	benchFastCheck(b, "http")
}

// BenchmarkFastTCPCheck is the same with TCP connect checks.
func BenchmarkFastTCPCheck(b *testing.B) {
	benchFastCheck(b, "tcp")
}

func benchFastCheck(b *testing.B, kind string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if kind == "http" {
					var req [4096]byte
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, err := c.Read(req[:]); err != nil {
						return
					}
					c.Write([]byte(benchHTTPAnswer))
				}
			}()
		}
	}()
	loop, err := NewFastLoop()
	if err != nil {
		b.Fatal(err)
	}
	defer loop.Close()
	p, err := New(Spec{Type: kind, Target: netip.MustParseAddrPort(ln.Addr().String()), Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	fp := loop.FastProber(p)
	b.ReportAllocs()
	for b.Loop() {
		if res := fp.Probe(b.Context()); !res.OK {
			b.Fatalf("check failed: %s", res.Reason)
		}
	}
}
