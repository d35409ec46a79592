package engine

import (
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
)

// Quorum (keepalived's quorum and hysteresis): a virtual server has
// quorum while the healthy weight (the configured weights of its serving
// real servers, summed) is at least quorum. It loses quorum when the
// healthy weight drops below quorum - hysteresis and regains it at
// quorum + hysteresis; in between it stays as it was. Without quorum, a
// virtual server with a fallback sends new connections to the fallback
// only (buildTable). quorum = 1, the default, is the plain rule: the
// fallback serves while no real server with a weight does.

// quorumOf is vs's quorum; a config built in code may leave it 0, which
// means the default, 1.
func quorumOf(vs *config.VirtualServer) uint64 { return max(vs.Quorum, 1) }

// quorumLost is the quorum state after prev (known: there was one) with
// this healthy weight. It is pure.
func quorumLost(prev, known bool, healthy, quorum, hysteresis uint64) bool {
	switch {
	case !known:
		return healthy < quorum
	case prev:
		return healthy < quorum+hysteresis
	}
	return healthy+hysteresis < quorum
}

// quorumInputLocked evaluates quorum against the state kept from the last
// evaluation; with record, it keeps the result and logs and counts
// changes. Callers hold mu.
func (e *Engine) quorumInputLocked(record bool) func(vs *config.VirtualServer, healthy uint64) bool {
	return func(vs *config.VirtualServer, healthy uint64) bool {
		prev, known := e.adm.quorum[vs.Name]
		lost := quorumLost(prev, known, healthy, quorumOf(vs), vs.Hysteresis)
		if !record {
			return lost
		}
		e.adm.metrics.Quorum(vs.Name, !lost, healthy)
		if e.anyUnknownLocked(vs) {
			// Servers without a verdict yet (at start): nothing to report,
			// and no state to keep hysteresis from.
			delete(e.adm.quorum, vs.Name)
			return lost
		}
		e.adm.quorum[vs.Name] = lost
		if known && lost != prev {
			args := []any{"virtual_server", vs.Name, "healthy_weight", healthy, "quorum", quorumOf(vs), "hysteresis", vs.Hysteresis}
			switch {
			case lost && vs.Fallback.IsValid():
				e.log.Warn("quorum lost: the fallback takes new connections; the remaining real servers get weight 0", append(args, "fallback", vs.Fallback.String())...)
			case lost:
				e.log.Warn("quorum lost (no fallback configured: the table is unchanged)", args...)
			default:
				e.log.Info("quorum regained: the real servers take new connections again", args...)
			}
		}
		return lost
	}
}

// anyUnknownLocked reports whether a real server of vs has no verdict yet.
// Callers hold mu.
func (e *Engine) anyUnknownLocked(vs *config.VirtualServer) bool {
	for _, rs := range vs.RealServers {
		if s := e.servers[serverID{vs.Name, rs.Address}]; s == nil || s.machine.State() == health.Unknown {
			return true
		}
	}
	return false
}
