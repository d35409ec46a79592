package engine

import (
	"iter"
	"net/netip"
	"slices"

	"github.com/lvsdirector/director/config"
)

// serverSet is the engine's servers by ID: per virtual server name, its
// servers in config order and their indexes sorted by address, found by
// binary search. A map keyed by config.ServerID (48 bytes: the name's
// string and an AddrPort) held ~100 bytes a server at 20,000 (2 MB);
// this holds 12 (TestServerSetSize). A set is built whole for each
// config (add) and not changed after, but for its cursor.
type serverSet struct {
	byVS map[string]*vsServers
	n    int
	// The cursor is where the last lookup found its server: most lookups
	// go through a virtual server's real servers in config order (a
	// reconcile's views, the snapshot, the quorum's count), so the next
	// is the same server or the one after, found without a search. The
	// engine loop's, as the set is.
	last *vsServers
	at   int
}

// vsServers is one virtual server's servers.
type vsServers struct {
	name   string
	list   []*server // in config order
	sorted []int32   // indexes of list, by address
}

// get is the server id names, or nil.
func (t *serverSet) get(id config.ServerID) *server {
	if l := t.last; l != nil && l.name == id.VirtualServer {
		if t.at < len(l.list) && l.list[t.at].id.RealServer == id.RealServer {
			return l.list[t.at]
		}
		if next := t.at + 1; next < len(l.list) && l.list[next].id.RealServer == id.RealServer {
			t.at = next
			return l.list[next]
		}
	}
	l := t.byVS[id.VirtualServer]
	if l == nil {
		return nil
	}
	k, ok := slices.BinarySearchFunc(l.sorted, id.RealServer, func(i int32, a netip.AddrPort) int {
		return l.list[i].id.RealServer.Compare(a)
	})
	if !ok {
		return nil
	}
	t.last, t.at = l, int(l.sorted[k])
	return l.list[t.at]
}

// len is how many servers the set holds.
func (t *serverSet) len() int { return t.n }

// all is every server with its ID, in no set order (as a map's range).
func (t *serverSet) all() iter.Seq2[config.ServerID, *server] {
	return func(yield func(config.ServerID, *server) bool) {
		for _, l := range t.byVS {
			for _, s := range l.list {
				if !yield(s.id, s) {
					return
				}
			}
		}
	}
}

// add puts the servers of one virtual server, in config order, in a set
// being built.
func (t *serverSet) add(name string, list []*server) {
	if t.byVS == nil {
		t.byVS = map[string]*vsServers{}
	}
	l := t.byVS[name]
	if l == nil {
		l = &vsServers{name: name}
		t.byVS[name] = l
	}
	t.n += len(list)
	if l.list != nil { // a name twice: only in configs made by hand
		list = append(l.list, list...)
	}
	l.list = list
	l.sorted = make([]int32, len(list))
	for i := range l.sorted {
		l.sorted[i] = int32(i)
	}
	slices.SortStableFunc(l.sorted, func(a, b int32) int { return list[a].id.RealServer.Compare(list[b].id.RealServer) })
	t.last = nil
}
