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

// scriptedProber passes until fail is set, then returns what fail holds.
type scriptedProber struct {
	fail *atomic.Pointer[checks.Result]
}

func (p scriptedProber) Probe(context.Context) checks.Result {
	if r := p.fail.Load(); r != nil {
		out := *r
		out.Start = time.Now()
		return out
	}
	return checks.Result{OK: true, Start: time.Now()}
}

// A check the director could not make (out of file descriptors) says
// nothing of the server: it keeps its weight however many there are; the
// results are counted and logged once.
func TestInconclusiveResultsMoveNothing(t *testing.T) {
	b1 := newBackend(t)
	var fail atomic.Pointer[checks.Result]
	h, logs := startAdmin(t, testConfig("quiesce", b1), ipvs.NewMemory(), func(o *Options) {
		o.NewProber = func(checks.Spec) (checks.Prober, error) { return scriptedProber{&fail}, nil }
	})
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "up")
	fail.Store(&checks.Result{Reason: "local: too many open files", Inconclusive: true})
	poll(t, "inconclusive checks counted", func() bool {
		return h.counter("director_checks_inconclusive_total", "cause", "too many open files") >= 10
	})
	if w, _ := weights(t, h.table, webKey); w[b1.addr] != 100 {
		t.Errorf("weight %d after inconclusive checks, want 100", w[b1.addr])
	}
	if r := rsStatus(t, h.engine, "web", b1.addr); r.State.String() != "up" || r.ConsecutiveFailures != 0 {
		t.Errorf("state %s with %d failures after inconclusive checks, want up and 0", r.State, r.ConsecutiveFailures)
	}
	if n := logs.Count("health check could not be made", "too many open files"); n != 1 {
		t.Errorf("%d log lines for one cause, want 1:\n%s", n, logs)
	}
	// A real failure still counts.
	fail.Store(&checks.Result{Reason: "refused"})
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0}, "down on real failures")
}
