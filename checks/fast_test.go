package checks

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testLoop, when the tests run with DIRECTOR_CHECKS_FAST=1, is the loop
// mustNew puts every prober on that it can run, so that the probers'
// tests (framing, hostile servers, reasons) run against the fast path
// too (TestFastPathPassesTheProberTests).
var testLoop *FastLoop

func TestMain(m *testing.M) {
	if os.Getenv("DIRECTOR_CHECKS_FAST") == "1" {
		l, err := NewFastLoop()
		if err != nil {
			panic(err)
		}
		testLoop = l
	}
	code := m.Run()
	if testLoop != nil {
		testLoop.Close()
	}
	os.Exit(code)
}

// TestFastPathPassesTheProberTests runs the tcp and http probers' tests,
// the HTTP framing tests and the hostile-server tests again with every
// check the loop can run on the loop.
func TestFastPathPassesTheProberTests(t *testing.T) {
	if testLoop != nil {
		t.Skip("already on the fast path")
	}
	if testing.Short() {
		t.Skip("runs the prober tests again")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestHTTP|TestTCP|TestOneByteASecond|TestHugeBody|TestHostile|TestFast)", "-test.v")
	cmd.Env = append(os.Environ(), "DIRECTOR_CHECKS_FAST=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the prober tests on the fast path: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestFastLoopRanTheChecks") {
		t.Fatalf("the fast path's own check did not run:\n%s", out)
	}
}

// TestFastLoopRanTheChecks checks that, on the fast path, mustNew's
// probers do run on the loop: plain tcp and http checks, not TLS, dialogue
// or body checks.
func TestFastLoopRanTheChecks(t *testing.T) {
	if testLoop == nil {
		t.Skip("only on the fast path (DIRECTOR_CHECKS_FAST=1)")
	}
	target := netip.MustParseAddrPort("127.0.0.1:9")
	for _, tc := range []struct {
		spec Spec
		fast bool
	}{
		{Spec{Type: "tcp", Target: target}, true},
		{Spec{Type: "http", Target: target}, true},
		{Spec{Type: "http", Target: target, Options: HTTPOptions{Method: "HEAD", Path: "/x", ExpectStatus: []string{"200-399"}}}, true},
		{Spec{Type: "http", Target: target, Options: HTTPOptions{ExpectBody: "ok"}}, false},
		{Spec{Type: "https", Target: target}, false},
		{Spec{Type: "tcp", Target: target, Options: TCPOptions{Send: "PING\r\n"}}, false},
		{Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true}}, false},
	} {
		_, onLoop := mustNew(t, tc.spec).(*loopProber)
		if onLoop != tc.fast {
			t.Errorf("%s: on the loop %v, want %v", tc.spec, onLoop, tc.fast)
		}
	}
}

// TestFastLoopReasons compares the loop's results with Probe's for the
// outcomes of a plain check, in the same test run.
func TestFastLoopReasons(t *testing.T) {
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ok := serveOnce(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	bad := serveOnce(t, "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n")
	garbage := serveOnce(t, "SSH-2.0-OpenSSH\r\n")
	silent := serveOnce(t, "")
	closed := closedPort(t)
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "tcp", Target: ok}, ""},
		{Spec{Type: "tcp", Target: closed}, "refused"},
		{Spec{Type: "http", Target: ok}, ""},
		{Spec{Type: "http", Target: bad}, "status 503"},
		{Spec{Type: "http", Target: closed}, "refused"},
		{Spec{Type: "http", Target: silent, Timeout: 300 * time.Millisecond}, "timeout"},
		{Spec{Type: "http", Target: garbage}, ""}, // Probe's reason, whatever it is
	} {
		p, err := New(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Supports(p) {
			t.Fatalf("%s: not supported by the loop", tc.spec)
		}
		slow := probeWithin(t, p, time.Second)
		fast := probeWithin(t, l.FastProber(p), time.Second)
		if fast.Reason != slow.Reason || fast.OK != slow.OK || fast.Inconclusive != slow.Inconclusive {
			t.Errorf("%s: loop %+v, Probe %+v", tc.spec, fast, slow)
		}
		if tc.spec.Target != garbage && slow.Reason != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.spec, slow.Reason, tc.want)
		}
	}
}

// TestFastLoopLateStart: a run whose deadline passed before it started is
// the director's delay, as on Probe.
func TestFastLoopLateStart(t *testing.T) {
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, _ := New(Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:9")})
	ch := make(chan Result, 1)
	l.Do(func() { l.Start(p, time.Now().Add(-time.Second), DoneFunc(func(r Result) { ch <- r })) })
	r := <-ch
	if r.OK || !r.Inconclusive || r.Reason != reasonLate {
		t.Errorf("late start: %+v, want inconclusive %q", r, reasonLate)
	}
}

// TestFastLoopAbortAndClose: an aborted run reports nothing and closes its
// socket; Close ends the loop with runs in flight.
func TestFastLoopAbortAndClose(t *testing.T) {
	noLeaks(t)
	silent := serveOnce(t, "")
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := New(Spec{Type: "http", Target: silent})
	called := make(chan Result, 2)
	var run *FastRun
	l.Do(func() { run = l.Start(p, time.Now().Add(time.Second), DoneFunc(func(r Result) { called <- r })) })
	l.Do(func() { run.Abort() })
	l.Do(func() { l.Start(p, time.Now().Add(time.Second), DoneFunc(func(r Result) { called <- r })) })
	l.Close()
	select {
	case r := <-called:
		t.Errorf("a run reported %+v after Abort or Close", r)
	case <-time.After(100 * time.Millisecond):
	}
	ran := false
	l.Do(func() { ran = true }) // a closed loop runs fn at once
	if !ran {
		t.Error("Do on a closed loop did not run")
	}
}

// serveOnce serves answer to every connection (read the request, write
// answer, close; "" never answers) on a loopback port.
// TestFastHTTPCheckReadsOnce: an answer that comes whole in one segment
// costs the loop one read: none to hear EAGAIN after the request is
// written, none after the head is whole (there were three).
func TestFastHTTPCheckReadsOnce(t *testing.T) {
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := serveOnce(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
	p, err := New(Spec{Type: "http", Target: addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fp := l.FastProber(p)
	readCalls := func() (n int) {
		l.Do(func() { n = l.readCalls })
		return n
	}
	for range 3 {
		before := readCalls()
		wantOK(t, fp.Probe(t.Context()))
		if got := readCalls() - before; got != 1 {
			t.Errorf("an HTTP check took %d reads, want 1", got)
		}
	}
}

func serveOnce(t *testing.T, answer string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if answer == "" {
				go func() { // hold it open until the client gives up
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, 4096)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				}()
				continue
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte(answer))
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func closedPort(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return a
}

// A run whose deadline comes before the loop has read what the server
// sent in time is judged on what was sent, not failed for the loop's
// own delay.
func TestFastLoopLateLoopIsNotTheServersFault(t *testing.T) {
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Type: "tcp", Target: serveOnce(t, "HTTP/1.1 200 OK\r\n\r\n")}, ""},
		{Spec{Type: "http", Target: serveOnce(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")}, ""},
		{Spec{Type: "http", Target: serveOnce(t, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")}, "status 500"},
		{Spec{Type: "http", Target: serveOnce(t, "")}, "timeout"},
	} {
		p, _ := New(tc.spec)
		ch := make(chan Result, 1)
		// The loop reaches the deadline first, as a loop that fell behind
		// would: its timer runs before the socket's readiness is read.
		var run *FastRun
		l.Do(func() {
			run = l.Start(p, time.Now().Add(5*time.Second), DoneFunc(func(r Result) { ch <- r }))
			l.Stop(&run.timer)
		})
		time.Sleep(100 * time.Millisecond) // connected, the request written (by the loop)
		l.Do(func() {
			time.Sleep(300 * time.Millisecond) // the server answers meanwhile
			run.expire()
		})
		if r := <-ch; r.Reason != tc.want {
			t.Errorf("%s: %q after a late deadline, want %q", tc.spec, r.Reason, tc.want)
		}
	}
}

// A loop that was busy past a run's deadline, with the connection made
// meanwhile, writes the request too late for any server to answer in
// time: the result says the director fell behind, not that the server
// timed out.
func TestFastLoopRequestSentLateIsInconclusive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-served })
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Read(make([]byte, 4096))
		time.Sleep(50 * time.Millisecond) // a healthy server's think time
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	}()
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, _ := New(Spec{Type: "http", Target: netip.MustParseAddrPort(ln.Addr().String())})
	ch := make(chan Result, 1)
	l.Do(func() {
		l.Start(p, time.Now().Add(100*time.Millisecond), DoneFunc(func(r Result) { ch <- r }))
		time.Sleep(300 * time.Millisecond) // the loop is busy: connected, nothing written
	})
	r := <-ch
	if r.Reason != reasonBehind || !r.Inconclusive || r.OK {
		t.Errorf("request sent after the deadline: %+v, want inconclusive %q", r, reasonBehind)
	}
}

func TestGrainUp(t *testing.T) {
	base := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in, want time.Duration // after base
	}{
		{0, 0},
		{1, timerGrain},
		{timerGrain - 1, timerGrain},
		{timerGrain, timerGrain},
		{timerGrain + time.Microsecond, 2 * timerGrain},
	} {
		if got := grainUp(base.Add(tc.in)); !got.Equal(base.Add(tc.want)) {
			t.Errorf("grainUp(base+%v) = base+%v, want base+%v", tc.in, got.Sub(base), tc.want)
		}
	}
}

// chainedChecks runs n checks of p on the loop one after another, each
// started by the last one's result, and counts the failures.
type chainedChecks struct {
	l        *FastLoop
	p        Prober
	left     int
	failures int
	end      chan struct{}
}

func (c *chainedChecks) FastDone(r Result) {
	if !r.OK {
		c.failures++
	}
	if c.left--; c.left <= 0 {
		close(c.end)
		return
	}
	c.l.Start(c.p, time.Now().Add(5*time.Second), c)
}

// TestFastCheckAllocatesNothing: a TCP check on the loop, driven as a
// runner drives it, allocates nothing once warm: its run and deadline
// timer come back to the loop when it ends (they were two allocations a
// check, and the garbage collector's work at 40,000 real servers). The
// server is a socket that never accepts, so the count is the loop's own:
// the kernel completes the handshakes from its listen queue.
func TestFastCheckAllocatesNothing(t *testing.T) {
	l, p := loopAndSilentListener(t)
	run := func(n int) *chainedChecks {
		c := &chainedChecks{l: l, p: p, left: n, end: make(chan struct{})}
		l.Do(func() { l.Start(p, time.Now().Add(5*time.Second), c) })
		<-c.end
		return c
	}
	run(50) // warm: the loop's map of runs and free list
	const n = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := run(n)
	runtime.ReadMemStats(&after)
	if c.failures > 0 {
		t.Fatalf("%d of %d checks failed", c.failures, n)
	}
	// Do's own closure and channel, and the chain's: a handful in all.
	if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.2 {
		t.Errorf("%.2f allocations per check, want none", per)
	}
}

// loopAndSilentListener is a loop and a TCP check of a loopback socket
// that listens and never accepts: the kernel completes the handshakes
// from its listen queue, so the server costs the test nothing. Both end
// with the test.
func loopAndSilentListener(t *testing.T) (*FastLoop, Prober) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	l, err := NewFastLoop()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	p, err := New(Spec{Type: "tcp", Target: netip.MustParseAddrPort(ln.Addr().String())})
	if err != nil {
		t.Fatal(err)
	}
	return l, p
}

// countDone counts the results of the checks a test started.
type countDone struct{ ok, failed int }

func (c *countDone) FastDone(r Result) {
	if r.OK {
		c.ok++
	} else {
		c.failed++
	}
}

// TestFastLoopReadsAnswersBeforeTimers: a loop that was held up (here a
// timer that starts more checks than one wait returns events for, then
// takes 50 ms) reads every answer waiting before it fires a timer that
// fell due meanwhile. Firing it after one wait's worth of events left
// the other answers unread until their deadlines, each then looked at by
// a poll of its own, and a loop behind fell further behind (it saw 256 of
// 300 here). The second timer is armed, already due, by the first, so a
// loop that wakes late fires them in two turns all the same.
func TestFastLoopReadsAnswersBeforeTimers(t *testing.T) {
	l, p := loopAndSilentListener(t)
	n := len(l.events) + 44
	var done countDone
	seen := make(chan int, 1)
	l.Do(func() {
		l.At(time.Now().Add(10*time.Millisecond), func() {
			for range n {
				l.Start(p, time.Now().Add(5*time.Second), &done)
			}
			time.Sleep(50 * time.Millisecond) // held up; the handshakes are all done meanwhile
			l.At(time.Now(), func() { seen <- done.ok + done.failed })
		})
	})
	if got := <-seen; got != n {
		t.Errorf("the timer due after the checks saw %d of their %d results", got, n)
	}
	l.Do(func() {
		if done.failed > 0 {
			t.Errorf("%d checks failed", done.failed)
		}
	})
}
