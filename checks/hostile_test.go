package checks

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// Hostile backends: whatever a server does, a check ends within its
// timeout with the right reason, reads and allocates a bounded amount, and
// leaves no goroutine behind.

// hostileServer runs handle on each connection until the test ends; done
// is closed then, before the server waits for its handlers, so a handler
// that would go on for ever selects on it. A handler returns on its own
// once the prober hangs up (its writes fail).
func hostileServer(t *testing.T, handle func(c net.Conn, done <-chan struct{})) netip.AddrPort {
	t.Helper()
	done := make(chan struct{})
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) { handle(c, done) })
	t.Cleanup(func() { close(done) }) // runs before ServeConns' cleanup waits
	return target
}

// readHead reads an HTTP request head, so that answers come after the
// request, as they would from a real server.
func readHead(c net.Conn) bool {
	_, err := http.ReadRequest(bufio.NewReader(c))
	return err == nil
}

// trickle writes s one byte per every, until it is all sent, the
// connection fails or done.
func trickle(c net.Conn, s string, every time.Duration, done <-chan struct{}) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		select {
		case <-time.After(every):
		case <-done:
			return
		}
	}
}

// A server that answers one byte a second never completes an answer in
// time: a deadline per read would be reset by every byte, the check's
// deadline is not.
func TestOneByteASecond(t *testing.T) {
	noLeaks(t)
	const every = time.Second
	head := "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"
	slowHead := hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		if readHead(c) {
			trickle(c, head+"status: ok\r\n", every, done)
		}
	})
	slowBody := hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		if readHead(c) {
			c.Write([]byte(head))
			trickle(c, "status: ok\r\n", every, done)
		}
	})
	slowBanner := hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		trickle(c, "220 mail.example ESMTP ready\r\n", every, done)
	})
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"http status line", Spec{Type: "http", Target: slowHead}, "timeout"},
		{"http body", Spec{Type: "http", Target: slowBody, Options: HTTPOptions{ExpectBody: "status: ok"}}, "timeout"},
		{"https handshake", Spec{Type: "https", Target: slowBanner, Options: HTTPOptions{TLSOptions: TLSOptions{TLSSkipVerify: true}}}, "timeout"},
		// Something arrived, but not the match: the tcp prober's documented
		// reason for a dialogue that does not match by the deadline.
		{"tcp banner", Spec{Type: "tcp", Target: slowBanner, Options: TCPOptions{Expect: "ESMTP ready"}}, "expect mismatch"},
	}
	// All at once: each takes its whole timeout.
	const timeout = 2500 * time.Millisecond
	results := make([]Result, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		p := mustNew(t, tc.spec)
		wg.Go(func() { results[i] = probeWithin(t, p, timeout) })
	}
	wg.Wait()
	for i, tc := range cases {
		if res := results[i]; res.OK || res.Reason != tc.want {
			t.Errorf("%s: OK=%v reason %q, want %s", tc.name, res.OK, res.Reason, tc.want)
		}
	}
}

// hugeBody is announced by the 1 GB servers; they stream it from one
// buffer, so the test allocates nothing per byte either.
const hugeBody = 1 << 30

// hugeServer answers every request with a 1 GB body, length-delimited or
// chunked, that starts with "status: ok". maxSent keeps the most bytes of
// body any one connection got out before the prober hung up.
func hugeServer(t *testing.T, chunked bool, maxSent *atomic.Int64) netip.AddrPort {
	t.Helper()
	chunk := []byte("status: ok " + strings.Repeat("x", 32<<10-11))
	framed := fmt.Appendf(nil, "%x\r\n%s\r\n", len(chunk), chunk)
	return hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		if !readHead(c) {
			return
		}
		if chunked {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		} else {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", hugeBody)
		}
		sent := int64(0)
		defer func() {
			for old := maxSent.Load(); sent > old && !maxSent.CompareAndSwap(old, sent); old = maxSent.Load() {
			}
		}()
		for sent < hugeBody {
			buf := chunk
			if chunked {
				buf = framed
			}
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
}

// A 1 GB body is judged by its status, or by the start of it that
// expect_body looks at; the probe neither reads nor keeps the rest.
func TestHugeBody(t *testing.T) {
	noLeaks(t)
	var maxSent atomic.Int64
	for _, chunked := range []bool{false, true} {
		target := hugeServer(t, chunked, &maxSent)
		for _, tc := range []struct {
			body, want string
		}{
			{"", ""},
			{"^status: ok", ""},
			{"NEVER", "body mismatch"},
		} {
			res := probeWithin(t, mustNew(t, Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: tc.body}}), 5*time.Second)
			if res.OK != (tc.want == "") || res.Reason != tc.want {
				t.Errorf("chunked=%v expect_body %q: OK=%v reason %q, want %q", chunked, tc.body, res.OK, res.Reason, tc.want)
			}
		}
	}
	// What was sent is what the sockets' buffers took, not the body.
	if n := maxSent.Load(); n > hugeBody/16 {
		t.Errorf("a probe let the server send %d MB of its 1 GB body", n>>20)
	}
}

// heapPeak samples the heap until stop is called, which returns the
// largest HeapAlloc seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(quit); <-finished; return peak.Load() }
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Many probes at once against 1 GB bodies, endless headers and servers
// that answer one byte a second: the heap stays within a few megabytes of
// where it started, during and after.
func TestHostileMemoryBounded(t *testing.T) {
	noLeaks(t)
	var maxSent atomic.Int64
	huge, hugeChunked := hugeServer(t, false, &maxSent), hugeServer(t, true, &maxSent)
	endlessHeaders := hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		if !readHead(c) {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := []byte("X-Padding: " + strings.Repeat("p", 1000) + "\r\n")
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	})
	slow := hostileServer(t, func(c net.Conn, done <-chan struct{}) {
		if readHead(c) {
			trickle(c, "HTTP/1.1 200 OK\r\n\r\n", time.Second, done)
		}
	})
	specs := []Spec{
		{Type: "http", Target: huge, Options: HTTPOptions{ExpectBody: "NEVER"}},
		{Type: "http", Target: hugeChunked, Options: HTTPOptions{ExpectBody: "NEVER"}},
		{Type: "http", Target: huge},
		{Type: "http", Target: hugeChunked, Options: HTTPOptions{ExpectBody: "status: ok", MaxBodyBytes: 1 << 20}},
		{Type: "http", Target: endlessHeaders},
		{Type: "http", Target: slow, Timeout: 200 * time.Millisecond},
		{Type: "tcp", Target: huge, Options: TCPOptions{Send: "GET / HTTP/1.1\r\n\r\n", Expect: "NEVER"}},
	}
	probers := make([]Prober, len(specs))
	for i, s := range specs {
		if s.Timeout == 0 {
			s.Timeout = 3 * time.Second
		}
		probers[i] = mustNew(t, s)
	}

	before := heapAfterGC()
	peak := heapPeak()
	const workers, rounds = 16, 6
	var wg sync.WaitGroup
	var probes atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				i := (w + r) % len(probers)
				res := probers[i].Probe(context.Background())
				probes.Add(1)
				if res.OK != (i == 2 || i == 3) {
					t.Errorf("%s: OK=%v reason %q", specs[i], res.OK, res.Reason)
				}
			}
		})
	}
	wg.Wait()
	top := peak()
	after := heapAfterGC()
	t.Logf("%d probes: heap %d MB before, peak %d MB, %d MB after; at most %d MB of a 1 GB body sent",
		probes.Load(), before>>20, top>>20, after>>20, maxSent.Load()>>20)
	const bound = 32 << 20
	if top > before+bound {
		t.Errorf("heap peaked at %d MB, %d MB above the %d MB before the probes (bound %d MB)",
			top>>20, (top-before)>>20, before>>20, bound>>20)
	}
	if after > before+bound/4 {
		t.Errorf("heap after the probes and a GC is %d MB, %d MB above before: something is kept", after>>20, (after-before)>>20)
	}
	if n := maxSent.Load(); n > hugeBody/16 {
		t.Errorf("a probe let the server send %d MB of its 1 GB body", n>>20)
	}
}

// A server that aborts the connection (SO_LINGER 0, so the kernel sends a
// reset) before or in the middle of its answer fails the check as "reset".
func TestHTTPResetMidResponse(t *testing.T) {
	noLeaks(t)
	abort := func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) } // the deferred Close then resets
	beforeAnswer := hostileServer(t, func(c net.Conn, _ <-chan struct{}) {
		readHead(c)
		abort(c)
	})
	midBody := hostileServer(t, func(c net.Conn, _ <-chan struct{}) {
		if !readHead(c) {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nstatus: ")
		time.Sleep(50 * time.Millisecond) // the head reaches the prober first
		abort(c)
	})
	midHandshake := hostileServer(t, func(c net.Conn, _ <-chan struct{}) {
		c.Read(make([]byte, 64)) // part of the ClientHello
		abort(c)
	})
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"before the answer", Spec{Type: "http", Target: beforeAnswer}},
		{"in the body", Spec{Type: "http", Target: midBody, Options: HTTPOptions{ExpectBody: "status: ok"}}},
		{"in the TLS handshake", Spec{Type: "https", Target: midHandshake, Options: HTTPOptions{TLSOptions: TLSOptions{TLSSkipVerify: true}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantReason(t, probeWithin(t, mustNew(t, tc.spec), 5*time.Second), "reset")
		})
	}
}
