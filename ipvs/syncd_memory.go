package ipvs

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// MemorySync is an in-memory SyncControl that answers like the kernel:
// one daemon per state, ErrSyncDaemonRunning and ErrSyncDaemonNotRunning,
// defaults filled in on read. Interfaces, when set, are the interfaces
// that exist (others fail with ErrNoSuchInterface); nil accepts any. Used
// by `director run -dry-run` and by tests.
type MemorySync struct {
	mu         sync.Mutex
	daemons    map[SyncState]SyncDaemon
	Interfaces []string
	// Calls counts start and stop calls, failed ones included.
	Calls int
}

var _ SyncControl = (*MemorySync)(nil)

// NewMemorySync returns a stand-in with no daemon running.
func NewMemorySync() *MemorySync {
	return &MemorySync{daemons: map[SyncState]SyncDaemon{}}
}

func (m *MemorySync) StartSyncDaemon(ctx context.Context, d SyncDaemon) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Calls++
	if err := d.Validate(); err != nil {
		return fmt.Errorf("start %s: %w", d, err)
	}
	if m.Interfaces != nil && !slices.Contains(m.Interfaces, d.Interface) {
		return fmt.Errorf("start %s: %w", d, ErrNoSuchInterface)
	}
	if _, ok := m.daemons[d.State]; ok {
		return fmt.Errorf("start %s: %w", d, ErrSyncDaemonRunning)
	}
	if !d.Group.IsValid() {
		d.Group = DefaultSyncGroup
	}
	if d.Port == 0 {
		d.Port = DefaultSyncPort
	}
	if d.TTL == 0 {
		d.TTL = DefaultSyncTTL
	}
	if d.MaxLen == 0 {
		d.MaxLen = 1472 // what an Ethernet MTU gives
	}
	m.daemons[d.State] = d
	return nil
}

func (m *MemorySync) StopSyncDaemon(ctx context.Context, s SyncState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Calls++
	if _, ok := m.daemons[s]; !ok {
		return fmt.Errorf("stop the %s sync daemon: %w", s, ErrSyncDaemonNotRunning)
	}
	delete(m.daemons, s)
	return nil
}

func (m *MemorySync) SyncDaemons(ctx context.Context) ([]SyncDaemon, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SyncDaemon, 0, len(m.daemons))
	for _, d := range m.daemons {
		out = append(out, d)
	}
	sortDaemons(out)
	return out, nil
}
