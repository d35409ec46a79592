//go:build linux

package datapath

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// NamespaceInode is the inode of the namespace of source, 0 when none:
// tests tell a kept namespace from a rebuilt one by it.
func (m *Manager) NamespaceInode(source netip.Addr) uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	sp := m.spaces[source]
	if sp == nil {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(sp.ns), &st); err != nil {
		return 0
	}
	return st.Ino
}
