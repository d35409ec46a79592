package engine

import (
	"time"
)

// VirtualServerAdmin is a virtual server's quorum and panic guard, for Status.
type VirtualServerAdmin struct {
	Quorum, Hysteresis uint64
	HealthyWeight      uint64 // configured weights of the serving real servers, summed
	QuorumLost         bool
	PanicThreshold     float64   // 0: the panic guard is off
	Panic              bool      // the panic guard keeps the pool as it is
	PanicSince         time.Time // zero when not in panic
}

// RealServerAdmin is what holds a real server out, or keeps it in, for Status.
type RealServerAdmin struct {
	Override        *Override // the override in force; nil: none
	FlapPenalty     float64   // 0 when flap damping is off or has nothing to count
	Suppressed      bool      // flap damping holds it out
	SuppressedUntil time.Time // when the penalty will have decayed below flap_reuse
	HeldByPanic     bool      // the panic guard keeps it in though its checks fail
}

// adminStatusLocked fills in the admin part of st. Callers hold mu.
func (e *Engine) adminStatusLocked(st *Status) {
	p := dampingParams(e.cfg.Director.Damping)
	for i := range st.VirtualServers {
		v := &st.VirtualServers[i]
		vs := findVS(e.cfg, v.Name)
		if vs == nil {
			continue
		}
		v.Quorum, v.Hysteresis, v.PanicThreshold = quorumOf(vs), vs.Hysteresis, vs.PanicThreshold
		if ps := e.adm.panics[vs.Name]; ps != nil {
			v.Panic, v.PanicSince = true, ps.since
		}
		for j := range v.RealServers {
			r := &v.RealServers[j]
			id := serverID{vs.Name, r.Address}
			if o, ok := e.effectiveOverrideLocked(id); ok {
				r.Override = &o
			}
			if d := e.adm.dampers[id]; d != nil {
				r.FlapPenalty = d.Penalty(p, st.Time)
				r.Suppressed = d.Suppressed()
				r.SuppressedUntil = d.ReuseAt(p)
			}
			if ps := e.adm.panics[vs.Name]; ps != nil {
				r.HeldByPanic = ps.held[id]
			}
			if e.viewLocked(id, r.State).serving() {
				v.HealthyWeight += uint64(r.ConfiguredWeight)
			}
		}
		lost, known := e.adm.quorum[vs.Name]
		if !known {
			lost = v.HealthyWeight < v.Quorum
		}
		v.QuorumLost = lost
	}
}
