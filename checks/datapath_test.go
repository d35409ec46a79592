package checks

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestDataPathSpec(t *testing.T) {
	a := netip.MustParseAddr
	base := Spec{Type: "tcp", Target: netip.MustParseAddrPort("10.0.0.11:80"), Source: a("10.0.0.50"),
		DataPath: DataPath{VIP: a("192.0.2.10")}}
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		want   string // "" for valid
	}{
		{"tcp", func(*Spec) {}, ""},
		{"http", func(s *Spec) { s.Type = "http" }, ""},
		{"https", func(s *Spec) { s.Type = "https" }, ""},
		{"dialogue", func(s *Spec) {
			s.Type = "dialogue"
			s.Options = DialogueOptions{Steps: []Step{{Expect: "^220"}}}
		}, ""},
		{"tun", func(s *Spec) { s.DataPath.Tunnel = true }, ""},
		{"udp", func(s *Spec) { s.Type = "udp" }, "udp checks cannot probe through the data path (http, https, tcp and dialogue checks can)"},
		{"no source", func(s *Spec) { s.Source = netip.Addr{} }, "needs a source address"},
		{"ipv6", func(s *Spec) {
			s.Target = netip.MustParseAddrPort("[2001:db8::11]:80")
			s.Source = a("2001:db8::50")
			s.DataPath.VIP = a("2001:db8::10")
		}, "only IPv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.change(&s)
			_, err := New(s)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}

	// The data path is part of the check's identity.
	plain := base
	plain.DataPath = DataPath{}
	tun := base
	tun.DataPath.Tunnel = true
	other := base
	other.DataPath.VIP = a("192.0.2.20")
	keys := map[string]string{}
	for name, s := range map[string]Spec{"dr": base, "plain": plain, "tun": tun, "other vip": other} {
		if prev, dup := keys[s.Key()]; dup {
			t.Errorf("%s and %s have the same key", name, prev)
		}
		keys[s.Key()] = name
	}
	if _, ok := plain.DataPathRoute(); ok {
		t.Error("a plain check has a data-path route")
	}
	if r, _ := tun.DataPathRoute(); r.Source != base.Source || r.RealServer != base.Target.Addr() || r.VIP != base.DataPath.VIP || !r.Tunnel {
		t.Errorf("route %+v does not match the spec %+v", r, tun)
	}
}

func TestDataPathWithoutDialerIsInconclusive(t *testing.T) {
	p, err := New(Spec{Type: "tcp", Target: netip.MustParseAddrPort("10.0.0.11:80"), Source: netip.MustParseAddr("10.0.0.50"),
		DataPath: DataPath{VIP: netip.MustParseAddr("192.0.2.10")}})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Probe(context.Background())
	if res.OK || !res.Inconclusive || !strings.HasPrefix(res.Reason, "local: datapath: ") {
		t.Errorf("result %+v, want inconclusive with a local: datapath: reason", res)
	}
}

func TestClassifyDataPathTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	if got := classify(ctx, &noAnswerError{os.ErrDeadlineExceeded}); got != reasonNoAnswer {
		t.Errorf("classify = %q, want %q", got, reasonNoAnswer)
	}
	if got := classify(ctx, errors.New("plain")); got != "timeout" {
		t.Errorf("classify of a plain error after the deadline = %q, want timeout", got)
	}
}
