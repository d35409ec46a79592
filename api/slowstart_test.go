package api

import (
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/health"
)

// A ramping server's slow start is in the JSON with its share of the
// target weight, rounded down; a server not ramping has null.
func TestStatusSlowStart(t *testing.T) {
	since := time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	st := engine.Status{VirtualServers: []engine.VirtualServerStatus{{Name: "web", RealServers: []engine.RealServerStatus{
		{Address: netip.MustParseAddrPort("10.0.0.1:80"), State: health.Up, ProgrammedWeight: 33,
			RealServerAdmin: engine.RealServerAdmin{SlowStart: &engine.SlowStart{Since: since, Until: since.Add(3 * time.Second), Weight: 33, Target: 200}}},
		{Address: netip.MustParseAddrPort("10.0.0.2:80"), State: health.Up, ProgrammedWeight: 100},
	}}}}
	rs := statusV1(st, "v1").VirtualServers[0].RealServers
	got := rs[0].SlowStart
	want := SlowStartV1{Since: since.UTC(), Until: since.Add(3 * time.Second).UTC(), Weight: 33, TargetWeight: 200, Percent: 16}
	if got == nil || *got != want {
		t.Errorf("slow_start = %+v, want %+v", got, want)
	}
	if rs[1].SlowStart != nil {
		t.Errorf("slow_start of a server not ramping = %+v, want null", rs[1].SlowStart)
	}
	if p := statusV1(st, "v1").VirtualServers[0].Pool; p.Serving != 2 {
		t.Errorf("pool %+v: a ramping server is serving", p)
	}
}
