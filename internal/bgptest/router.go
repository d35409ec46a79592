// Package bgptest runs a GoBGP on loopback that plays the site's router
// for tests: it accepts a director's session and records what it gets.
package bgptest

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Router ASN and the ASN it expects its peer (the director) to have.
const (
	RouterASN = 65000
	PeerASN   = 65001
)

// Router is a GoBGP listening on 127.0.0.1:Port with one passive peer,
// 127.0.0.1 in PeerASN.
type Router struct {
	Port int
	s    *server.BgpServer

	mu      sync.Mutex
	updates int // paths received, withdrawals included
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs a Router until the test ends.
func Start(t testing.TB, log *slog.Logger) *Router {
	t.Helper()
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	r := &Router{s: server.NewBgpServer(server.LoggerOption(log, lvl)), Port: FreePort(t)}
	go r.s.Serve()
	ctx := context.Background()
	if err := r.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: RouterASN, RouterId: "10.255.0.1", ListenPort: int32(r.Port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.s.Stop)
	if err := r.s.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPathUpdate: func(ps []*apiutil.Path, _ time.Time) {
		r.mu.Lock()
		r.updates += len(ps)
		r.mu.Unlock()
	}}, server.WatchUpdate(false, "", "")); err != nil {
		t.Fatal(err)
	}
	if err := r.s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: PeerASN},
		Transport: &api.Transport{PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// RIB is the router's IPv4 routes, by prefix.
func (r *Router) RIB(t testing.TB) map[netip.Prefix]*apiutil.Path {
	t.Helper()
	out := map[netip.Prefix]*apiutil.Path{}
	err := r.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(prefix bgp.NLRI, paths []*apiutil.Path) {
			if p, err := netip.ParsePrefix(prefix.String()); err == nil && len(paths) > 0 {
				out[p] = paths[0]
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Updates counts the paths received so far, withdrawals included.
func (r *Router) Updates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updates
}

// WaitRIB waits up to 20s for the RIB to hold exactly want, and returns
// when it did.
func (r *Router) WaitRIB(t testing.TB, what string, want ...netip.Prefix) time.Time {
	t.Helper()
	slices.SortFunc(want, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []netip.Prefix
		for p := range r.RIB(t) {
			got = append(got, p)
		}
		slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		if slices.Equal(got, want) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: router holds %v, want %v", what, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
