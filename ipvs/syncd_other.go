//go:build !linux

package ipvs

import "context"

// SyncNetlink controls the kernel's sync daemons; it exists only on Linux.
type SyncNetlink struct{}

var _ SyncControl = (*SyncNetlink)(nil)

// NewSyncNetlink fails with ErrNotSupported: IPVS exists only on Linux.
func NewSyncNetlink() (*SyncNetlink, error) { return nil, errNoIPVS }

func (*SyncNetlink) Close() error                                      { return nil }
func (*SyncNetlink) StartSyncDaemon(context.Context, SyncDaemon) error { return errNoIPVS }
func (*SyncNetlink) StopSyncDaemon(context.Context, SyncState) error   { return errNoIPVS }
func (*SyncNetlink) SyncDaemons(context.Context) ([]SyncDaemon, error) { return nil, errNoIPVS }
