package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/drain"
)

// ConfigPlan is what loading a config would do to a kernel table.
type ConfigPlan struct {
	Ops      []ipvs.Op
	Draining []PlannedDrain // servers that would go to weight 0 and be deleted later
}

// PlannedDrain is a real server a config would drain.
type PlannedDrain struct {
	VirtualServer string
	RealServer    netip.AddrPort
	Service       ipvs.ServiceKey
	Connections   uint32
	Timeout       time.Duration
}

// PlanConfig returns the kernel operations that a director loading next
// would make against actual (a table read), for `director plan`. Health
// lives in the running director, so it assumes the adoption rule: a real
// server in the kernel with weight above 0 stays up, any other starts
// unknown (no traffic until its first check passes). Destinations in
// next's services that next does not name are taken as leaving: they
// drain when they have connections and a drain timeout, else are deleted.
// Services of current (the running config; may be nil) that next drops
// are deleted once their servers have drained. It is pure.
func PlanConfig(next, current *config.Config, actual []ipvs.ServiceState, now time.Time) ConfigPlan {
	kernel := desired.Index(actual)
	byKey := map[ipvs.ServiceKey][]ipvs.DestinationState{}
	for _, s := range actual {
		byKey[s.Key.Normalize()] = s.Destinations
	}
	// The config the kernel reflects: next's services and current's others,
	// each with the destinations the kernel holds (fallbacks aside).
	old := &config.Config{}
	inNext := map[ipvs.ServiceKey]bool{}
	add := func(vs config.VirtualServer) {
		key := desired.ServiceKey(&vs).Normalize()
		vs.RealServers = nil
		for _, d := range byKey[key] {
			if vs.Fallback.IsValid() && desired.Key(key, d.Address) == desired.Key(key, vs.Fallback) {
				continue
			}
			vs.RealServers = append(vs.RealServers, config.RealServer{Address: d.Address, Weight: d.Weight, Forwarding: d.Forwarding.String()})
		}
		old.VirtualServers = append(old.VirtualServers, vs)
	}
	for _, vs := range next.VirtualServers {
		inNext[desired.ServiceKey(&vs).Normalize()] = true
		add(vs)
	}
	retired := map[ipvs.ServiceKey]bool{}
	if current != nil {
		for _, vs := range current.VirtualServers {
			if k := desired.ServiceKey(&vs).Normalize(); !inNext[k] {
				retired[k] = true
				add(vs)
			}
		}
	}

	drains, _ := drain.Next(old, next, nil, nil, kernel, now)
	states := desired.PlannedStates(next, nil, kernel)
	table := drain.With(desired.FromStates(next, func(id config.ServerID) health.State { return states[id] }), drains)
	plan := ConfigPlan{Ops: ipvs.Plan(table, actual, drain.RetiredExcept(retired, table))}
	for k, d := range drains {
		plan.Draining = append(plan.Draining, PlannedDrain{VirtualServer: d.ID.VirtualServer, RealServer: d.ID.RealServer, Service: k.Service,
			Connections: drain.Connections(kernel[k]), Timeout: d.Timeout})
	}
	slices.SortFunc(plan.Draining, func(a, b PlannedDrain) int {
		if c := a.Service.Compare(b.Service); c != 0 {
			return c
		}
		return a.RealServer.Compare(b.RealServer)
	})
	return plan
}
