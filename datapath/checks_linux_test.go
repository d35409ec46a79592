//go:build linux

package datapath_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/datapath"
	"github.com/lvsdirector/director/internal/testutil"
)

// TestProbersThroughTheDataPath runs the probers that have datapath =
// true against a DR real server with and without the VIP on its lo.
func TestProbersThroughTheDataPath(t *testing.T) {
	l := newLab(t)
	var web, smtp net.Listener
	err := l.rs.Do(func() (err error) {
		if web, err = net.Listen("tcp4", ":80"); err != nil {
			return err
		}
		smtp, err = net.Listen("tcp4", ":25")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("served on " + r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()))
	})}
	go srv.Serve(web)
	t.Cleanup(func() { srv.Close() })
	testutil.ServeConns(t, smtp, func(c net.Conn) { c.Write([]byte("220 rs ready\r\n")) })

	m := l.manager(t)
	sh := checks.NewShared()
	sh.DataPath = m
	specs := map[string]checks.Spec{
		"tcp":  {Type: "tcp", Target: netip.AddrPortFrom(labRIP, 80)},
		"http": {Type: "http", Target: netip.AddrPortFrom(labRIP, 80), Options: checks.HTTPOptions{ExpectBody: "served on " + labVIP.String() + ":80"}},
		"dialogue": {Type: "dialogue", Target: netip.AddrPortFrom(labRIP, 25),
			Options: checks.DialogueOptions{Steps: []checks.Step{{Expect: "^220 "}}}},
	}
	var routes []datapath.Route
	probers := map[string]checks.Prober{}
	for name, spec := range specs {
		spec.Source, spec.Timeout, spec.Interval = labSource, time.Second, 2*time.Second
		spec.DataPath = checks.DataPath{VIP: labVIP}
		r, ok := spec.DataPathRoute()
		if !ok {
			t.Fatalf("%s: no data-path route", name)
		}
		routes = append(routes, r)
		p, err := sh.New(spec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		probers[name] = p
	}
	if err := m.Sync(context.Background(), routes); err != nil {
		t.Fatal(err)
	}

	l.vipOnRealServer(t, true)
	for name, p := range probers {
		if res := p.Probe(context.Background()); !res.OK {
			t.Errorf("%s through the data path of a real server with the VIP: %s", name, res.Reason)
		}
	}

	l.vipOnRealServer(t, false)
	for name, p := range probers {
		if res := p.Probe(context.Background()); res.OK || res.Reason != "datapath: no answer for VIP" || res.Inconclusive {
			t.Errorf("%s through the data path of a real server without the VIP: %+v, want reason %q", name, res, "datapath: no answer for VIP")
		}
	}
	// The plain check, from the director's own namespace to the real
	// server's address, sees nothing wrong.
	plain, err := checks.New(checks.Spec{Type: "tcp", Target: netip.AddrPortFrom(labRIP, 80), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var res checks.Result
	l.director.Do(func() error { res = plain.Probe(context.Background()); return nil })
	if !res.OK {
		t.Errorf("plain tcp check of the real server's address: %s", res.Reason)
	}

	// Without the director's namespaces the check says nothing of the
	// server.
	m.Close()
	if res := probers["tcp"].Probe(context.Background()); !res.Inconclusive {
		t.Errorf("a data-path check without its namespace: %+v, want inconclusive", res)
	}
}
