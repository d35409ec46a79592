package engine

import (
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

func TestLoopProcs(t *testing.T) {
	for _, tc := range []struct {
		base   int
		perSec float64
		procs  int
		loops  int
	}{
		{2, 0, 2, 1},
		{2, 1000, 2, 1},     // N = 1,000 at 1 s: one loop, half the wake-ups
		{2, 2000, 2, 1},     //
		{2, 2001, 2, 2},     //
		{2, 7000, 2, 2},     // the capacity command: two loops keep up
		{2, 7999, 2, 2},     // just under 4,000 a CPU
		{2, 8000, 4, 4},     // from 4,000 a CPU: twice the Ps
		{2, 14000, 4, 4},    // 40,000 real servers, HTTP every 5 s and TCP every 2 s
		{8, 14000, 8, 7},    // eight CPUs have time to spare at that rate
		{8, 40000, 16, 16},  // not at five times it
		{0, 1000, 1, 1},     // a runtime that said nothing: one
		{1, 3999.9, 1, 1},   //
		{1, 4000, 2, 2},     //
		{4, 1e9, 8, 8},      // never more than twice
		{3, 11999.99, 3, 3}, //
	} {
		if procs, loops := loopProcs(tc.base, tc.perSec); procs != tc.procs || loops != tc.loops {
			t.Errorf("loopProcs(%d, %v) = %d Ps, %d loops; want %d, %d", tc.base, tc.perSec, procs, loops, tc.procs, tc.loops)
		}
	}
}

// TestLoopsFollowTheCheckRate: a config with many loop checks a second
// doubles the Ps (through SetProcs) and the loops before its runners are
// bound to loops; a reload to a quiet config gives the Ps back and keeps
// the loops (runners stay where they were bound).
func TestLoopsFollowTheCheckRate(t *testing.T) {
	b := newBackend(t)
	busy := testConfig("quiesce", b)
	busy.Director.FastChecks = true
	c := &busy.VirtualServers[0].Checks[0]
	c.Type, c.Options = "tcp", nil
	c.Interval, c.Timeout = 200*time.Microsecond, time.Second // 5,000 a second: over 4,000 for one CPU
	var mu sync.Mutex
	var set []int
	h := startWith(t, busy, ipvs.NewMemory(), io.Discard, func(o *Options) {
		o.BaseProcs = 1
		o.SetProcs = func(n int) { mu.Lock(); set = append(set, n); mu.Unlock() }
	})
	h.eventually(map[netip.AddrPort]uint32{b.addr: 100}, "start")

	quiet := testConfig("quiesce", b)
	quiet.Director.FastChecks = true
	c = &quiet.VirtualServers[0].Checks[0]
	c.Type, c.Options = "tcp", nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.engine.Reload(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	h.stop()
	mu.Lock()
	defer mu.Unlock()
	if len(set) != 2 || set[0] != 2 || set[1] != 1 {
		t.Errorf("Ps set to %v, want [2 1]: doubled at start, back at the reload", set)
	}
	if n := len(h.engine.fast); n != 2 {
		t.Errorf("%d loops, want 2", n)
	}
}
