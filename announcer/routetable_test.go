//go:build linux

package announcer

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/policy/announce"
)

// inNewNetns returns a netlink handle on a network namespace of its own,
// with lo up, or skips the test without CAP_NET_ADMIN.
func inNewNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // switches this thread into it
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skip("needs CAP_NET_ADMIN for a network namespace of its own")
		}
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRouteTable(t *testing.T) {
	h := inNewNetns(t)
	v6 := netip.MustParsePrefix("2001:db8::10/128")
	// A route a previous run left behind goes at start; other routes of
	// the table stay.
	stale := &RouteTable{h: h, table: 100, dev: "lo"}
	if err := stale.Add(context.Background(), announce.Route{Prefix: vipB}); err != nil {
		t.Fatal(err)
	}
	lo, _ := h.LinkByName("lo")
	foreign := stale.route(netip.MustParsePrefix("198.51.100.1/32"), lo.Attrs().Index)
	foreign.Protocol = 4 // static
	if err := h.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}

	rt, err := NewRouteTable(config.RouteTable{Table: 100, Device: "lo"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rt.Routes(); len(got) != 0 {
		t.Errorf("routes of a previous run left: %v", got)
	}
	if rs, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE); len(rs) != 1 {
		t.Errorf("table 100 holds %v, want the foreign route alone", rs)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := NewRunner(rt, Options{Logger: testLogger(), StuckAfter: time.Minute, Retry: 20 * time.Millisecond})
	go r.Run(ctx)
	wait := func(what string, want ...netip.Prefix) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := rt.Routes()
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: table 100 holds %v, want %v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	r.Announce([]announce.Route{{Prefix: vipA}, {Prefix: v6}})
	wait("both installed", vipA, v6)
	if main, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE); len(main) != 0 {
		t.Errorf("the main table got routes: %v", main)
	}
	r.Announce([]announce.Route{{Prefix: v6}})
	wait("v4 withdrawn", v6)
	if err := r.WithdrawAll(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	wait("all withdrawn")
}
