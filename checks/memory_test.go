package checks

import (
	"net/netip"
	"reflect"
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
