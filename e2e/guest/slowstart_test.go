//go:build linux

package guest

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// 27. Slow start with wlc on the real kernel. Two virtual services over
// the same three real servers, one with slow start off and one with
// slow_start = "60s" (20 steps of 3s, long enough for a loaded emulated
// guest to sample it), hold long-lived connections (so wlc's active
// connection counts decide). rs3 fails (its connections are lost, as a
// restarted server's are) and comes back in both pools in the same
// reconcile (their identical checks are one). In the first moments, new
// connections alternate between the two VIPs: the pool without slow
// start sends nearly all of its to rs3, which has none, while the pool
// with it sends rs3 about one. Then, while the ramp lasts, rs3's share of
// the connections in the slow-start pool follows its weight: wlc keeps
// active/weight level, so rs3's ActiveConn stays near the others'
// average × its weight / theirs, read from ipvsadm -Ln at each sample.
func Test27SlowStartWLC(t *testing.T) {
	guest(t)
	const (
		offVIP, onVIP = "10.0.100.71:80", "10.0.100.72:80"
		offSvc, onSvc = "TCP " + offVIP, "TCP " + onVIP
		slowStart     = 60 * time.Second
		held          = 20 // connections per real server per pool before rs3 fails
		burst         = 20 // new connections per pool right after rs3 is back
	)
	// Checks with room for a loaded emulated guest: a false failure in
	// the middle would spoil the counts.
	const check = `
  [virtual_server.check]
  type = "http"
  path = "/healthz"
  expect_body = "ok"
  interval = "2s"
  timeout = "1500ms"
`
	vs := func(name, vip, extra string) string {
		return fmt.Sprintf("[[virtual_server]]\nname = %q\naddress = %q\nscheduler = \"wlc\"\n%s%s%s\n", name, vip, extra, check,
			reals(rs(1).addr4(80)+" 100", rs(2).addr4(80)+" 100", rs(3).addr4(80)+" 100"))
	}
	startDirector(t, directorConfig("30s", "keep", vs("ss-off", offVIP, ""), vs("ss-on", onVIP, fmt.Sprintf("slow_start = %q\n", slowStart))))
	// (A first check that times out under emulation makes a server "seen
	// down", so it may ramp even at start: allow for it.)
	upBound, downBound := time.Minute+slowStart, 3*2*time.Second+1500*time.Millisecond+slack
	for _, svc := range []string{offSvc, onSvc} {
		waitTable(t, upBound, svc+": all three up at their weight",
			dests(svc, "wlc", masq(rs(1), 100), masq(rs(2), 100), masq(rs(3), 100)))
	}

	// Long-lived connections: wlc spreads them evenly over three idle servers.
	pools := map[string]map[string][]*heldConn{
		offSvc: holdConns(t, offVIP, 3*held),
		onSvc:  holdConns(t, onVIP, 3*held),
	}
	for svc, conns := range pools {
		for _, b := range []string{"rs1", "rs2", "rs3"} {
			if n := len(conns[b]); n < held-2 || n > held+2 {
				t.Fatalf("%s: %d of %d connections on %s, want about %d (wlc over idle servers)", svc, n, 3*held, b, held)
			}
		}
	}

	// rs3 fails and loses its connections.
	rs(3).healthy.Store(false)
	for _, svc := range []string{offSvc, onSvc} {
		waitTable(t, downBound, svc+": rs3 quiesced", dests(svc, "wlc", masq(rs(1), 100), masq(rs(2), 100), masq(rs(3), 0)))
	}
	for _, conns := range pools {
		for _, h := range conns["rs3"] {
			h.abort()
		}
	}
	for _, svc := range []string{offSvc, onSvc} {
		waitConns(t, 10*time.Second, svc+": rs3 has no active connection left", svc, rs(3).addr4(80), func(c connCount) bool { return c.active == 0 })
	}

	// rs3 is back: in both pools in the same reconcile.
	rs(3).healthy.Store(true)
	var back time.Time
	waitTable(t, upBound, "rs3 back: at once without slow start, ramping with it", func(tb table) error {
		off, on := tb[offSvc].dests[rs(3).addr4(80)], tb[onSvc].dests[rs(3).addr4(80)]
		if off.weight != 100 || on.weight == 0 {
			return fmt.Errorf("rs3 weights: %d without slow start, %d with it", off.weight, on.weight)
		}
		if on.weight > 5 {
			return fmt.Errorf("rs3 at %d in the slow start pool when it came back, want the ramp's start (1, or 5 a step later)", on.weight)
		}
		back = time.Now()
		return nil
	})

	// New connections, alternating between the pools, right away.
	landed := map[string]map[string]int{offSvc: {}, onSvc: {}}
	for range burst {
		landed[offSvc][holdConn(t, offVIP).backend]++
		landed[onSvc][holdConn(t, onVIP).backend]++
	}
	took := time.Since(back)
	t.Logf("%d new connections per pool in the %.1fs after rs3 came back: without slow start %v, with it %v",
		burst, took.Seconds(), landed[offSvc], landed[onSvc])
	counts, err := ipvsConns()
	if err != nil {
		t.Fatal(err)
	}
	offRS3, onRS3 := counts[offSvc+" "+rs(3).addr4(80)], counts[onSvc+" "+rs(3).addr4(80)]
	// The kernel's counters and what the client saw agree.
	if offRS3.active != landed[offSvc]["rs3"] || onRS3.active != landed[onSvc]["rs3"] {
		t.Errorf("rs3's ActiveConn %d (no slow start) and %d (slow start), but the client landed %d and %d there",
			offRS3.active, onRS3.active, landed[offSvc]["rs3"], landed[onSvc]["rs3"])
	}
	if offRS3.active < burst*8/10 {
		t.Errorf("without slow start rs3 took %d of %d new connections, want nearly all (wlc sends every new connection to the server with the fewest)", offRS3.active, burst)
	}
	// At weight w of 100 wlc gives rs3 new connections until its active
	// count reaches w/100 of the others': with the ramp's weight at its
	// start (≤ 10, or a step or two more if the burst was slow) that is
	// one or two.
	allowed := 3
	if onRS3.weight > 10 {
		allowed = int(math.Ceil(float64(held+burst)*float64(onRS3.weight)/100)) + 1
	}
	if onRS3.active > allowed {
		t.Errorf("with slow start rs3 took %d of %d new connections at weight %d, want at most %d", onRS3.active, burst, onRS3.weight, allowed)
	}

	// While the ramp lasts: new connections to the slow start pool, a
	// few a second at most; after each pair, rs3's ActiveConn against
	// what its weight entitles it to.
	var weightsSeen []int
	statusSeen := false
	lastWeight := onRS3.weight
	for time.Since(back) < slowStart+5*time.Second {
		var toRS3, total int
		for range 2 {
			if holdConn(t, onVIP).backend == "rs3" {
				toRS3++
			}
			total++
			time.Sleep(250 * time.Millisecond)
		}
		counts, err := ipvsConns()
		if err != nil {
			t.Fatal(err)
		}
		r1, r2, r3 := counts[onSvc+" "+rs(1).addr4(80)], counts[onSvc+" "+rs(2).addr4(80)], counts[onSvc+" "+rs(3).addr4(80)]
		if n := len(weightsSeen); n == 0 || weightsSeen[n-1] != r3.weight {
			weightsSeen = append(weightsSeen, r3.weight)
		}
		others := float64(r1.active+r2.active) / 2
		fair := others * float64(r3.weight) / float64(r1.weight)
		t.Logf("%4.1fs: rs3 weight %3d, ActiveConn rs1 %d rs2 %d rs3 %d (its weight's share: %.1f); %d of the last %d new connections to rs3",
			time.Since(back).Seconds(), r3.weight, r1.active, r2.active, r3.active, fair, toRS3, total)
		// wlc never lets rs3 run ahead of its weight's share. Behind it
		// (a step adds 5% of the weight: a connection or two; a slow
		// guest opens few), rs3 gets every new connection until it
		// catches up: either it is near its share, or it got all (but
		// one, taken before a step) of the last two.
		if float64(r3.active) > fair+2 {
			t.Errorf("at %.1fs rs3 has %d active connections at weight %d, more than its share %.1f: the ramp does not hold it back",
				time.Since(back).Seconds(), r3.active, r3.weight, fair)
		}
		// Only when no step came during the pair: connections made at the
		// old weight are judged against the new share otherwise.
		stepped := r3.weight != lastWeight
		lastWeight = r3.weight
		if !stepped && float64(r3.active) < fair-3 && toRS3 < total-1 {
			t.Errorf("at %.1fs rs3 has %d active connections at weight %d, below its share %.1f, yet got only %d of the last %d new connections",
				time.Since(back).Seconds(), r3.active, r3.weight, fair, toRS3, total)
		}
		if !statusSeen && r3.weight > 1 && r3.weight < 90 {
			statusSeen = slowStartShown(t, "ss-on", rs(3).addr4(80))
		}
	}
	t.Logf("rs3's weights in the slow start pool: %v", weightsSeen)
	if len(weightsSeen) < 5 || weightsSeen[len(weightsSeen)-1] != 100 {
		t.Errorf("rs3's weights seen while ramping: %v, want a rise in many steps to 100", weightsSeen)
	}
	for i := 1; i < len(weightsSeen); i++ {
		if weightsSeen[i] < weightsSeen[i-1] {
			t.Errorf("rs3's weight went down while ramping: %v", weightsSeen)
			break
		}
	}
	if !statusSeen {
		t.Error("the status API never showed rs3's slow start while it ramped")
	}
	if _, ok := metric(t, "director_real_server_slow_start_ratio", map[string]string{"real_server": rs(3).addr4(80)}); ok {
		t.Error("director_real_server_slow_start_ratio still present after the ramp")
	}
}

// slowStartShown reports whether the status API shows rs of vs in slow
// start, with a share between 0 and 100, and its metric (read just
// before) a share between 0 and 1.
func slowStartShown(t *testing.T, vs, rs string) bool {
	t.Helper()
	ratio, ok := metric(t, "director_real_server_slow_start_ratio", map[string]string{"virtual_server": vs, "real_server": rs})
	var doc struct {
		VirtualServers []struct {
			Name        string `json:"name"`
			RealServers []struct {
				Address   string `json:"address"`
				SlowStart *struct {
					Percent      int    `json:"percent"`
					Weight       uint32 `json:"weight"`
					TargetWeight uint32 `json:"target_weight"`
				} `json:"slow_start"`
			} `json:"real_servers"`
		} `json:"virtual_servers"`
	}
	getStatus(t, &doc)
	for _, v := range doc.VirtualServers {
		for _, r := range v.RealServers {
			if v.Name != vs || r.Address != rs || r.SlowStart == nil {
				continue
			}
			t.Logf("status: %s in slow start, %d%% (weight %d of %d); metric %v (present %v)",
				rs, r.SlowStart.Percent, r.SlowStart.Weight, r.SlowStart.TargetWeight, ratio, ok)
			return r.SlowStart.Percent > 0 && r.SlowStart.Percent < 100 && r.SlowStart.TargetWeight == 100 && ok && ratio > 0 && ratio <= 1
		}
	}
	return false
}
