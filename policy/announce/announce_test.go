package announce

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	vip1 = netip.MustParsePrefix("192.0.2.10/32")
	vip2 = netip.MustParsePrefix("2001:db8::10/128")
	t0   = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
)

// step is one decision on VIP vip1 with services "web" (total 4,
// watermarks 0.5 / 0.25) and, when tls >= 0, "tls" (total 2, no
// watermarks) with that healthy weight. want: 'A' announced, 'W'
// withdrawn, '+' stays announced, '.' stays withdrawn. reason: a part the
// decision's reason must contain.
type step struct {
	at        time.Duration
	web, tls  int
	unknown   bool
	unhealthy string
	want      byte
	reason    string
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rule  string
		steps []step
	}{
		{"announced once the pool reaches announce_above", RuleAll, []step{
			{0, 1, -1, false, "", '.', "web 1/4 (below announce_above 0.5)"},
			{time.Second, 2, -1, false, "", 'A', "healthy: web 2/4"},
			{2 * time.Second, 4, -1, false, "", '+', "healthy: web 4/4"},
		}},
		{"kept down to withdraw_below, withdrawn under it", RuleAll, []step{
			{0, 4, -1, false, "", 'A', "healthy"},
			{time.Second, 1, -1, false, "", '+', "web 1/4"},
			{2 * time.Second, 0, -1, false, "", 'W', "web 0/4 (no real server serving)"},
		}},
		{"between the watermarks a withdrawn VIP stays withdrawn", RuleAll, []step{
			{0, 4, -1, false, "", 'A', ""},
			{time.Second, 0, -1, false, "", 'W', ""},
			{time.Minute, 1, -1, false, "", '.', "below announce_above 0.5"},
			{2 * time.Minute, 2, -1, false, "", 'A', ""},
		}},
		{"hold-down delays the announcement after a withdraw", RuleAll, []step{
			{0, 4, -1, false, "", 'A', ""},
			{time.Second, 0, -1, false, "", 'W', ""},
			{2 * time.Second, 4, -1, false, "", '.', "hold-down: healthy: web 4/4; withdrawn 1s ago, announced again from 2026-12-01T12:00:11Z"},
			{10 * time.Second, 4, -1, false, "", '.', "hold-down"},
			{11 * time.Second, 4, -1, false, "", 'A', "healthy"},
		}},
		{"no hold-down before the first announcement", RuleAll, []step{
			{0, 0, -1, false, "", '.', ""},
			{time.Second, 4, -1, false, "", 'A', ""},
		}},
		{"waiting for check results is said so and keeps no verdict", RuleAll, []step{
			{0, 0, -1, true, "", '.', "web 0/4 (waiting for check results)"},
			{time.Second, 1, -1, false, "", '.', "below announce_above"},
		}},
		{"all: one failed service withdraws the VIP", RuleAll, []step{
			{0, 4, 2, false, "", 'A', "healthy: web 4/4; tls 2/2"},
			{time.Second, 4, 0, false, "", 'W', "unhealthy: tls 0/2 (no real server serving)"},
		}},
		{"any: one healthy service keeps it", RuleAny, []step{
			{0, 4, 2, false, "", 'A', ""},
			{time.Second, 4, 0, false, "", '+', "healthy: web 4/4"},
			{2 * time.Second, 0, 0, false, "", 'W', "no service healthy: web 0/4 (no real server serving); tls 0/2 (no real server serving)"},
		}},
		{"an unhealthy director withdraws a healthy VIP", RuleAll, []step{
			{0, 4, -1, false, "", 'A', ""},
			{time.Second, 4, -1, false, "kernel table not reconciled for 31s", 'W', "director unhealthy: kernel table not reconciled for 31s"},
			{2 * time.Second, 4, -1, false, "kernel table not reconciled for 32s", '.', "director unhealthy"},
			{20 * time.Second, 4, -1, false, "", 'A', ""},
		}},
		{"shutdown withdraws even during hold-down bookkeeping", RuleAll, []step{
			{0, 4, -1, false, "shutting down", '.', "director unhealthy: shutting down"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			for i, st := range tc.steps {
				svcs := []Service{{Name: "web", Healthy: uint64(st.web), Total: 4, Unknown: st.unknown, Above: 0.5, Below: 0.25}}
				if st.tls >= 0 {
					svcs = append(svcs, Service{Name: "tls", Healthy: uint64(st.tls), Total: 2})
				}
				ds, evs := s.Decide(Input{Now: t0.Add(st.at), HoldDown: 10 * time.Second, Unhealthy: st.unhealthy,
					VIPs: []VIP{{Prefix: vip1, Rule: tc.rule, Services: svcs}}})
				if len(ds) != 1 {
					t.Fatalf("step %d: %d decisions, want 1", i, len(ds))
				}
				d := ds[0]
				got := byte('.')
				switch {
				case d.Announce && len(evs) == 1:
					got = 'A'
				case d.Announce:
					got = '+'
				case len(evs) == 1:
					got = 'W'
				}
				if got != st.want || !strings.Contains(d.Reason, st.reason) {
					t.Errorf("step %d: %c %q, want %c with %q", i, got, d.Reason, st.want, st.reason)
				}
				wantCause := map[bool]Cause{true: CauseHealthy, false: CausePool}[d.Announce]
				switch {
				case strings.HasPrefix(d.Reason, "hold-down"):
					wantCause = CauseHoldDown
				case strings.HasPrefix(d.Reason, "director unhealthy"):
					wantCause = CauseDirector
				}
				if d.Cause != wantCause {
					t.Errorf("step %d: cause %q, want %q for %q", i, d.Cause, wantCause, d.Reason)
				}
				if len(evs) == 1 && evs[0] != d {
					t.Errorf("step %d: event %+v is not the decision %+v", i, evs[0], d)
				}
				if n := len(s.Announced()); (n == 1) != d.Announce {
					t.Errorf("step %d: Announced() = %v, decision %v", i, s.Announced(), d.Announce)
				}
			}
		})
	}
}

func TestDecideVIPLeavesTheConfig(t *testing.T) {
	var s State
	healthy := []Service{{Name: "a", Healthy: 1, Total: 1}}
	_, evs := s.Decide(Input{Now: t0, VIPs: []VIP{{Prefix: vip2, Services: healthy}, {Prefix: vip1, Services: []Service{{Name: "b", Healthy: 1, Total: 1}}}}})
	if len(evs) != 2 || !evs[0].Announce || evs[0].Prefix != vip2 || evs[1].Prefix != vip1 {
		t.Fatalf("events %+v, want both announced in input order", evs)
	}
	ds, evs := s.Decide(Input{Now: t0.Add(time.Second), VIPs: []VIP{{Prefix: vip2, Services: healthy}}})
	if len(ds) != 1 || len(evs) != 1 || evs[0] != (Event{Prefix: vip1, Cause: CauseRemoved, Reason: "no longer announced by the config"}) {
		t.Fatalf("decisions %+v events %+v, want vip1 withdrawn as gone", ds, evs)
	}
	if got := s.Announced(); len(got) != 1 || got[0] != vip2 {
		t.Errorf("Announced() = %v", got)
	}
	// Nothing is remembered of it: coming back is a first announcement,
	// without hold-down.
	_, evs = s.Decide(Input{Now: t0.Add(2 * time.Second), HoldDown: time.Hour, VIPs: []VIP{
		{Prefix: vip2, Services: healthy}, {Prefix: vip1, Services: []Service{{Name: "b", Healthy: 1, Total: 1}}}}})
	if len(evs) != 1 || evs[0].Prefix != vip1 || !evs[0].Announce {
		t.Errorf("events %+v, want vip1 announced again at once", evs)
	}
}

func TestDecideNoChangeNoEvent(t *testing.T) {
	var s State
	in := Input{Now: t0, VIPs: []VIP{{Prefix: vip1, Services: []Service{{Name: "a", Healthy: 3, Total: 3}}}}}
	if _, evs := s.Decide(in); len(evs) != 1 {
		t.Fatalf("first decision: %d events, want 1", len(evs))
	}
	for i := range 5 {
		in.Now = in.Now.Add(time.Second)
		in.VIPs[0].Services[0].Healthy = uint64(1 + i%3)
		if _, evs := s.Decide(in); len(evs) != 0 {
			t.Errorf("decision %d: events %+v, want none while the pool stays healthy", i, evs)
		}
	}
}
