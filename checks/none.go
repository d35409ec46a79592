package checks

import (
	"context"
	"time"
)

// NoneOptions are the options of none checks: there are none.
type NoneOptions struct{}

// noneKind never probes: its real servers are always up. It is for
// services whose health is not the director's business, such as a table
// imported from `ipvsadm -S` or ldirectord's checktype = on.
var noneKind = Kind{
	Name:    "none",
	Foreign: map[string]string{"on": "ldirectord's checktype = on"},
	NoPort:  true,
	Zero:    NoneOptions{},
	Decode:  func(Decoder) Options { return NoneOptions{} },
	build:   func(spec *Spec, _ *Shared) (Prober, error) { return noneProber{timeout: spec.Timeout}, nil },
}

// Validate has nothing to judge.
func (NoneOptions) Validate() []OptionError { return nil }

// Canonical is empty: every none check of a target is the same.
func (NoneOptions) Canonical() string { return "" }

// Describe is "none 10.0.0.11".
func (NoneOptions) Describe(s Spec) string { return "none " + s.Target.Addr().String() }

// noneProber reports up without touching the network.
type noneProber struct{ timeout time.Duration }

// Probe succeeds at once, unless ctx has already ended: a canceled check
// reports nothing about the server, up included.
func (p noneProber) Probe(ctx context.Context) Result {
	return run(ctx, p.timeout, func(ctx context.Context) string { return classify(ctx, ctx.Err()) })
}
