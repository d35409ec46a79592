//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// genlVersion is IPVS_GENL_VERSION.
const genlVersion = 1

// syncCallTimeout bounds a sync daemon command when ctx has no deadline:
// starting a daemon spawns kernel threads, which is quick.
const syncCallTimeout = 5 * time.Second

// SyncNetlink controls the kernel's sync daemons over generic netlink, in
// the network namespace the constructing thread was in.
type SyncNetlink struct {
	mu     sync.Mutex
	c      *genetlink.Conn // nil once closed
	family uint16
}

var _ SyncControl = (*SyncNetlink)(nil)

// NewSyncNetlink connects to the kernel's IPVS family.
func NewSyncNetlink() (*SyncNetlink, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, openError("connect to generic netlink", err)
	}
	f, err := c.GetFamily("IPVS")
	if err != nil {
		c.Close()
		return nil, openError("find the IPVS netlink family", err)
	}
	return &SyncNetlink{c: c, family: f.ID}, nil
}

// Close closes the socket; the daemons keep running.
func (n *SyncNetlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		return nil
	}
	err := n.c.Close()
	n.c = nil
	return err
}

// execute runs one command with n.mu held, bounded by ctx.
func (n *SyncNetlink) execute(ctx context.Context, cmd uint8, data []byte, flags netlink.HeaderFlags) ([]genetlink.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		return nil, fmt.Errorf("ipvs: %w", net.ErrClosed)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(syncCallTimeout)
	}
	if err := n.c.SetDeadline(dl); err != nil {
		return nil, err
	}
	msgs, err := n.c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: genlVersion},
		Data:   data,
	}, n.family, flags)
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		err = ctx.Err()
	}
	return msgs, err
}

// StartSyncDaemon starts d.
func (n *SyncNetlink) StartSyncDaemon(ctx context.Context, d SyncDaemon) error {
	data, err := encodeStartDaemon(d)
	if err != nil {
		return fmt.Errorf("start %s: %w", d, err)
	}
	_, err = n.execute(ctx, cmdNewDaemon, data, netlink.Request|netlink.Acknowledge)
	return syncDaemonError(err, "start", d)
}

// StopSyncDaemon stops the daemon of state s.
func (n *SyncNetlink) StopSyncDaemon(ctx context.Context, s SyncState) error {
	data, err := encodeStopDaemon(s)
	if err != nil {
		return fmt.Errorf("stop the %s sync daemon: %w", s, err)
	}
	_, err = n.execute(ctx, cmdDelDaemon, data, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return fmt.Errorf("stop the %s sync daemon: %w", s, syncDaemonError(err, "stop", SyncDaemon{State: s}))
	}
	return nil
}

// SyncDaemons lists the running daemons as the kernel reports them (with
// its defaults filled in), master first.
func (n *SyncNetlink) SyncDaemons(ctx context.Context) ([]SyncDaemon, error) {
	msgs, err := n.execute(ctx, cmdGetDaemon, nil, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("list sync daemons: %w", kernelError(err, opList))
	}
	out := make([]SyncDaemon, 0, len(msgs))
	for _, m := range msgs {
		d, err := decodeDaemon(m.Data)
		if err != nil {
			return nil, fmt.Errorf("list sync daemons: %w", err)
		}
		out = append(out, d)
	}
	sortDaemons(out)
	return out, nil
}
