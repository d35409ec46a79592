package engine

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/lvsdirector/director/config"
)

// serverSet is the engine's servers by ID: per virtual server name, its
// servers sorted by address, found by binary search. A map keyed by
// config.ServerID (48 bytes: the name's string and an AddrPort) held
// ~100 bytes a server at 20,000 (2 MB); this holds 8
// (TestServerSetSize). A set is built whole for each config (adopt) and
// not changed after.
type serverSet struct {
	byVS map[string][]*server
	n    int
}

// get is the server id names, or nil.
func (t *serverSet) get(id config.ServerID) *server {
	list := t.byVS[id.VirtualServer]
	i, ok := slices.BinarySearchFunc(list, id.RealServer, compareAddress)
	if !ok {
		return nil
	}
	return list[i]
}

func compareAddress(s *server, a netip.AddrPort) int { return s.id.RealServer.Compare(a) }

// len is how many servers the set holds.
func (t *serverSet) len() int { return t.n }

// all is every server with its ID, in no set order (as a map's range).
func (t *serverSet) all() iter.Seq2[config.ServerID, *server] {
	return func(yield func(config.ServerID, *server) bool) {
		for _, list := range t.byVS {
			for _, s := range list {
				if !yield(s.id, s) {
					return
				}
			}
		}
	}
}

// add puts the servers of one virtual server, in any order, in a set
// being built; the set is read only once built.
func (t *serverSet) add(name string, list []*server) {
	if t.byVS == nil {
		t.byVS = map[string][]*server{}
	}
	if prev := t.byVS[name]; prev != nil { // a name twice: only in configs made by hand
		list = append(prev, list...)
	}
	slices.SortFunc(list, func(a, b *server) int { return a.id.RealServer.Compare(b.id.RealServer) })
	t.byVS[name] = list
	t.n += len(list)
}
