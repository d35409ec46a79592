package engine

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

func TestLoopProcs(t *testing.T) {
	for _, tc := range []struct {
		base           int
		onLoops, usual float64
		procs, loops   int
	}{
		{2, 0, 0, 1, 1},
		{2, 1000, 0, 1, 1},     // N = 1,000 at 1 s: one P, no thread woken to look for work
		{2, 1999, 0, 1, 1},     //
		{2, 1000, 333, 1, 1},   // the usual path's checks count three times
		{2, 1000, 334, 2, 1},   // ... and with them the load is no longer quiet
		{2, 0, 700, 2, 1},      // usual checks only: the loop idles, the Ps are the runtime's
		{2, 2000, 0, 2, 1},     //
		{2, 2001, 0, 2, 2},     //
		{2, 7000, 0, 2, 2},     // the capacity command: two loops keep up
		{2, 7999, 0, 2, 2},     // just under 4,000 a CPU
		{2, 8000, 0, 4, 4},     // from 4,000 a CPU: twice the Ps
		{2, 14000, 0, 4, 4},    // 40,000 real servers, HTTP every 5 s and TCP every 2 s
		{8, 14000, 0, 8, 7},    // eight CPUs have time to spare at that rate
		{8, 40000, 0, 16, 16},  // not at five times it
		{0, 1000, 0, 1, 1},     // a runtime that said nothing: one
		{0, 3000, 0, 1, 1},     //
		{1, 3999.9, 0, 1, 1},   //
		{1, 4000, 0, 2, 2},     //
		{4, 1e9, 0, 8, 8},      // never more than twice
		{3, 11999.99, 0, 3, 3}, //
	} {
		if procs, loops := loopProcs(tc.base, tc.onLoops, tc.usual); procs != tc.procs || loops != tc.loops {
			t.Errorf("loopProcs(%d, %v, %v) = %d Ps, %d loops; want %d, %d", tc.base, tc.onLoops, tc.usual, procs, loops, tc.procs, tc.loops)
		}
	}
}

// TestLoopsFollowTheCheckRate: a config with many loop checks a second
// doubles the Ps (through SetProcs) and the loops before its runners are
// bound to loops; a reload to a quiet config leaves one P and keeps the
// loops (runners stay where they were bound); one with many checks on the
// usual path gives the runtime's Ps back.
func TestLoopsFollowTheCheckRate(t *testing.T) {
	b := newBackend(t)
	busy := testConfig("quiesce", b)
	busy.Director.FastChecks = true
	c := &busy.VirtualServers[0].Checks[0]
	c.Type, c.Options = "tcp", nil
	c.Interval, c.Timeout = 125*time.Microsecond, time.Second // 8,000 a second: 4,000 for each of two CPUs
	var mu sync.Mutex
	var set []int
	h := startWith(t, busy, ipvs.NewMemory(), io.Discard, func(o *Options) {
		o.BaseProcs = 2
		o.SetProcs = func(n int) { mu.Lock(); set = append(set, n); mu.Unlock() }
	})
	h.eventually(map[netip.AddrPort]uint32{b.addr: 100}, "start")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := testConfig("quiesce", b)
	quiet.Director.FastChecks = true
	c = &quiet.VirtualServers[0].Checks[0]
	c.Type, c.Options = "tcp", nil
	if err := h.engine.Reload(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	// The quiet config's runner (a check of its own: another interval)
	// goes to the first loop, not to the next of the four.
	v, err := h.engine.submit(ctx, func(context.Context, time.Time) (any, bool, error) {
		var on []int
		for _, p := range h.engine.probes {
			on = append(on, slices.Index(h.engine.fast, p.loop))
		}
		return on, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if on := v.([]int); !slices.Equal(on, []int{0}) {
		t.Errorf("after the quiet reload, runners on loops %v; want [0]: one, on the first loop", on)
	}
	// The HTTP check with a body to match runs on the usual path: 1,000
	// a second there weigh as 3,000 on a loop.
	usual := testConfig("quiesce", b)
	usual.Director.FastChecks = true
	usual.VirtualServers[0].Checks[0].Interval = time.Millisecond
	if err := h.engine.Reload(ctx, usual); err != nil {
		t.Fatal(err)
	}
	h.stop()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(set, []int{4, 1, 2}) {
		t.Errorf("Ps set to %v, want [4 1 2]: doubled at start, one when quiet, the runtime's for the usual path", set)
	}
	if n := len(h.engine.fast); n != 4 {
		t.Errorf("%d loops, want 4", n)
	}
}
