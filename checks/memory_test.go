package checks

import (
	"bytes"
	"net/http"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// HTTP probers built through one Shared with the same extra headers share
// one header map (a map each was ~300 bytes a real server); different
// headers get their own, and a prober's request still carries them.
func TestHTTPProbersShareTheirRequestHeader(t *testing.T) {
	sh := NewShared()
	build := func(addr string, hs ...Header) *httpProber {
		t.Helper()
		p, err := sh.New(Spec{Type: "http", Target: netip.MustParseAddrPort(addr), Timeout: time.Second,
			Options: HTTPOptions{Headers: hs}})
		if err != nil {
			t.Fatal(err)
		}
		return p.(*httpProber)
	}
	a, b := build("127.0.0.1:80"), build("127.0.0.2:80")
	c := build("127.0.0.3:80", Header{"X-Check", "1"})
	same := func(x, y *httpProber) bool {
		return reflect.ValueOf(x.header).UnsafePointer() == reflect.ValueOf(y.header).UnsafePointer()
	}
	if !same(a, b) {
		t.Error("two probers with the same headers have a header map each")
	}
	if same(a, c) {
		t.Error("probers with different headers share a header map")
	}
	if c.header.Get("X-Check") != "1" || a.header.Get("X-Check") != "" || a.header.Get("User-Agent") != UserAgent {
		t.Errorf("headers: a %v, c %v", a.header, c.header)
	}
}

// A prober built by NewFor reads the caller's spec, and so does its form
// on a FastLoop: no copy of a check's spec per prober (~220 bytes a real
// server). NewFor completes the spec without changing its identity.
func TestProbersReadTheirCallersSpec(t *testing.T) {
	for _, spec := range []Spec{
		{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:80"), Timeout: time.Second},
		{Type: "http", Target: netip.MustParseAddrPort("127.0.0.1:80"), Timeout: time.Second},
		{Type: "http", Target: netip.MustParseAddrPort("127.0.0.1:80"), Options: HTTPOptions{ExpectBody: "ok"}},
		{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:80"), Options: TCPOptions{Send: "x"}},
	} {
		key, text := spec.Key(), spec.String()
		kept := spec
		p, err := NewShared().NewFor(&kept)
		if err != nil {
			t.Fatal(err)
		}
		var held *Spec
		switch p := p.(type) {
		case *tcpProber:
			held = p.spec
		case *httpProber:
			held = p.spec
		}
		if held != &kept {
			t.Errorf("%s: the prober holds a spec of its own", text)
		}
		if f := fastOf(p); f != nil && f.spec != &kept {
			t.Errorf("%s: its fast form holds a spec of its own", text)
		}
		if kept.Key() != key || kept.String() != text {
			t.Errorf("%s: NewFor changed the spec's identity to %s", text, kept)
		}
	}
}

// HTTP probers built through one Shared with the same options share one
// shape of their requests (method, header, URLs, status ranges, body and
// digest expectations): a copy each was ~250 bytes a real server. Other
// options get another shape; each request still goes to its own target;
// a shape no prober holds any more is forgotten.
func TestHTTPProbersShareTheirRequestShape(t *testing.T) {
	sh := NewShared()
	build := func(addr string, o HTTPOptions) *httpProber {
		t.Helper()
		p, err := sh.New(Spec{Type: "http", Target: netip.MustParseAddrPort(addr), Timeout: time.Second, Options: o})
		if err != nil {
			t.Fatal(err)
		}
		return p.(*httpProber)
	}
	a := build("127.0.0.1:80", HTTPOptions{Path: "/health", ExpectStatus: []string{"200", "204"}})
	b := build("127.0.0.2:80", HTTPOptions{Path: "/health", ExpectStatus: []string{"200", "204"}})
	c := build("127.0.0.3:80", HTTPOptions{Path: "/other"})
	if a.httpShape != b.httpShape {
		t.Error("two probers with the same options have a shape each")
	}
	if a.httpShape == c.httpShape {
		t.Error("probers with different paths share a shape")
	}
	for _, x := range []struct {
		p    *httpProber
		want string
	}{
		{a, "GET /health HTTP/1.1\r\nHost: 127.0.0.1:80\r\n"},
		{b, "GET /health HTTP/1.1\r\nHost: 127.0.0.2:80\r\n"},
		{c, "GET /other HTTP/1.1\r\nHost: 127.0.0.3:80\r\n"},
	} {
		if got := string(x.p.request.appendTo(nil, x.p.host)); !strings.HasPrefix(got, x.want) {
			t.Errorf("request %q, want it to start with %q", got, x.want)
		}
	}
	if got := b.urls[0].statuses; !reflect.DeepEqual(got, []StatusRange{{200, 200}, {204, 204}}) {
		t.Errorf("status ranges %v", got)
	}
	runtime.KeepAlive(a)
	a, b, c = nil, nil, nil
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		sh.mu.Lock()
		left := len(sh.shapes.m)
		sh.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shapes kept after their probers went", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The probers of one shape share its request template, and what the
// loop writes from it is byte for byte what Request.Write writes for the
// prober's own request, with the target or the host option as Host.
func TestHTTPRequestTemplateIsTheRequest(t *testing.T) {
	sh := NewShared()
	for _, o := range []HTTPOptions{
		{},
		{Path: "/a%20b?x=1&y", Method: "head", Headers: []Header{{"X-Check", "1"}, {"Accept-Encoding", "gzip"}}},
		{Host: "www.example.com", Path: "/healthz"},
		{Host: "bücher.example", Path: "/"},
	} {
		var shape *httpShape
		for _, addr := range []string{"127.0.0.1:8080", "[::1]:80"} {
			pr, err := sh.New(Spec{Type: "http", Target: netip.MustParseAddrPort(addr), Timeout: time.Second, Options: o})
			if err != nil {
				t.Fatal(err)
			}
			p := pr.(*httpProber)
			if fastOf(p) == nil {
				t.Fatalf("%+v to %s: not on the loop", o, addr)
			}
			if shape == nil {
				shape = p.httpShape
			} else if p.request != shape.request {
				t.Errorf("%+v: two probers of one shape have a request template each", o)
			}
			req := &http.Request{Method: p.method, URL: p.urls[0].reqURL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: p.header, Host: p.host, Close: true}
			var want bytes.Buffer
			if err := req.Write(&want); err != nil {
				t.Fatal(err)
			}
			got := p.request.appendTo(nil, p.host)
			if !bytes.Equal(got, want.Bytes()) || p.request.size(p.host) != len(got) {
				t.Errorf("%+v to %s: the loop writes\n%q\nRequest.Write writes\n%q", o, addr, got, want.Bytes())
			}
		}
	}
}

// What a prober holds of its own beyond the caller's spec, per target,
// when its options' shape is shared: a TCP connect its prober with its
// fast form inline (112 bytes; 176 with the fast form allocated apart),
// a plain HTTP check its prober and its host string (144 bytes; with a
// request, URL, status ranges and spec copy of its own it was ~900).
func TestProbersHoldLittlePerTarget(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		kind string
		opts Options
		max  float64
	}{
		{"tcp", TCPOptions{}, 120},
		{"http", HTTPOptions{Path: "/healthz"}, 150},
	} {
		sh := NewShared()
		specs := make([]Spec, n)
		probers := make([]Prober, n)
		for i := range specs {
			specs[i] = Spec{Type: tc.kind, Target: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 80),
				Timeout: time.Second, Options: tc.opts}
		}
		if _, err := sh.New(specs[0]); err != nil { // the shared parts, once
			t.Fatal(err)
		}
		before := heapInUse()
		for i := range specs {
			p, err := sh.NewFor(&specs[i])
			if err != nil {
				t.Fatal(err)
			}
			probers[i] = p
		}
		per := float64(heapInUse()-before) / n
		runtime.KeepAlive(probers)
		t.Logf("%s: %.0f bytes per prober", tc.kind, per)
		if per > tc.max {
			t.Errorf("%s: %.0f bytes per prober, want at most %.0f", tc.kind, per, tc.max)
		}
	}
}

// heapInUse is the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // and what the first one's finalizers and pools let go
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A FastTimer kept in a struct is armed again for each run without an
// allocation (At made one per run, ~60 bytes a check on the loop with its
// function); a zero one is not pending, and stopping it disturbs no other
// timer; arming a pending one moves it.
func TestFastTimerArmedAgain(t *testing.T) {
	l := &FastLoop{epoch: time.Now()}
	var fired []string
	var a, b, zero FastTimer
	a.Init(func() { fired = append(fired, "a") })
	b.Init(func() { fired = append(fired, "b") })
	now := time.Now()
	l.Arm(&a, now.Add(2*time.Second))
	l.Arm(&b, now.Add(time.Second))
	l.Stop(&zero)
	l.Arm(&a, now) // moved before b
	l.fireTimers(now.Add(2 * time.Second))
	if !reflect.DeepEqual(fired, []string{"a", "b"}) {
		t.Errorf("fired %v, want [a b]", fired)
	}
	runs := 0
	a.Init(func() { runs++ })
	if allocs := testing.AllocsPerRun(100, func() {
		l.Arm(&a, now)
		l.fireTimers(now) // a is due: armed for a time the last turn passed
		l.Arm(&b, now)
		l.Stop(&b)
	}); allocs != 0 || runs != 101 {
		t.Errorf("%.0f allocations to arm a timer again (%d runs)", allocs, runs)
	}
}

// The sizes of what is held per check, exactly: a spec (208 bytes: its
// data-path dialer is reached through its Shared), a prober's form on the
// loop (64, inline) and the loop's timer (32: its time an int64, and its
// wheel slot's list two pointers; 24 with the heap's index, but the
// runner it sits in stays in its size class, engine's TestRunnerIs352Bytes).
func TestPerCheckSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"Spec", unsafe.Sizeof(Spec{}), 208},
		{"fastSpec", unsafe.Sizeof(fastSpec{}), 64},
		{"FastTimer", unsafe.Sizeof(FastTimer{}), 32},
		{"tcpProber", unsafe.Sizeof(tcpProber{}), 104},
		{"httpProber", unsafe.Sizeof(httpProber{}), 104},
	} {
		if c.got > c.want {
			t.Errorf("%s is %d bytes, want at most %d", c.name, c.got, c.want)
		}
	}
}

// A TCP check that only connects (the usual one) is 80 bytes: what a
// dialogue needs (send, expect, TLS) is out of line, made for those that
// have one.
func TestTCPProberIs80Bytes(t *testing.T) {
	if n := unsafe.Sizeof(tcpProber{}); n != 80 {
		t.Errorf("tcpProber is %d bytes, want 80", n)
	}
	spec := Spec{Type: "tcp", Target: netip.MustParseAddrPort("127.0.0.1:1"), Interval: time.Second, Timeout: time.Second,
		Options: TCPOptions{}}
	p, err := newTCP(&spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.(*tcpProber).dialogue != nil {
		t.Error("a TCP check that only connects holds a dialogue")
	}
	spec.Options = TCPOptions{Send: "PING\r\n", Expect: "PONG"}
	if p, err = newTCP(&spec, nil); err != nil || p.(*tcpProber).dialogue == nil {
		t.Errorf("a TCP check with send and expect has no dialogue (%v)", err)
	}
}
