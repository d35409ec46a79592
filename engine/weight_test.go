package engine

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/ipvs"
)

// weightProber passes and reports the weight it is set to (-1: none), as
// an exec check with a dynamic weight does.
type weightProber struct{ weight *atomic.Int64 }

func (p weightProber) Probe(context.Context) checks.Result {
	r := checks.Result{OK: true, Start: time.Now()}
	if w := p.weight.Load(); w >= 0 {
		r.HasWeight, r.Weight = true, uint32(w)
	}
	return r
}

// A weight reported by a server's check replaces its configured weight in
// the kernel while the server is up, follows each change, and gives way
// to the configured weight when the check stops reporting one.
func TestCheckReportedWeight(t *testing.T) {
	b1 := newBackend(t)
	var weight atomic.Int64
	weight.Store(-1)
	h, _ := startAdmin(t, testConfig("quiesce", b1), ipvs.NewMemory(), func(o *Options) {
		o.NewProber = func(checks.Spec) (checks.Prober, error) { return weightProber{&weight}, nil }
	})
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "configured weight")
	weight.Store(7)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 7}, "reported weight 7")
	if r := rsStatus(t, h.engine, "web", b1.addr); r.CheckWeight != 7 || r.ConfiguredWeight != 100 {
		t.Errorf("status weights: check %d configured %d, want 7 and 100", r.CheckWeight, r.ConfiguredWeight)
	}
	weight.Store(0)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0}, "reported weight 0")
	weight.Store(-1)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "no weight reported: configured again")
}
