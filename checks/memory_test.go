package checks

import (
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
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
		if got := string(x.p.fast.request); !strings.HasPrefix(got, x.want) {
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
