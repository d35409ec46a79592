package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"

	"github.com/mdlayher/netlink"
)

// The kernel's IPVS sync daemon copies connection entries from a master
// director to its backups over multicast, so that connections survive a
// failover. There is at most one master and one backup daemon per network
// namespace, and both may run at once. cloudflare/ipvs does not speak
// these commands, so this file encodes them over generic netlink itself
// (include/uapi/linux/ip_vs.h).

// SyncState is the role of a sync daemon.
type SyncState uint32

const (
	SyncMaster SyncState = 1 // IP_VS_STATE_MASTER: sends the entries of local connections
	SyncBackup SyncState = 2 // IP_VS_STATE_BACKUP: receives and installs them
)

func (s SyncState) String() string {
	switch s {
	case SyncMaster:
		return "master"
	case SyncBackup:
		return "backup"
	}
	return fmt.Sprintf("sync-state(%d)", uint32(s))
}

// ParseSyncState parses "master" or "backup".
func ParseSyncState(s string) (SyncState, error) {
	switch s {
	case "master":
		return SyncMaster, nil
	case "backup":
		return SyncBackup, nil
	}
	return 0, fmt.Errorf("unknown sync daemon state %q (want master or backup)", s)
}

// Kernel defaults the daemon takes for a zero Group, Port and TTL.
var (
	DefaultSyncGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})
)

const (
	DefaultSyncPort = 8848
	DefaultSyncTTL  = 1
	// maxInterfaceName is IP_VS_IFNAME_MAXLEN without its NUL.
	maxInterfaceName = 15
)

// SyncDaemon is one sync daemon's settings. Zero Group, Port, TTL and
// MaxLen leave the kernel's defaults (224.0.0.81, 8848, 1, and a length
// that fits the interface's MTU); the kernel reports what it uses. Group,
// Port, TTL and MaxLen need Linux 4.3 or later: older kernels ignore them.
type SyncDaemon struct {
	State     SyncState
	Interface string // the multicast interface
	// SyncID tags the messages a master sends; a backup installs only
	// those with its own id (0 on a backup accepts every id).
	SyncID uint8
	Group  netip.Addr // an IPv4 or IPv6 multicast group
	Port   uint16
	TTL    uint8
	MaxLen uint16 // the largest sync message's UDP payload
}

func (d SyncDaemon) String() string {
	s := fmt.Sprintf("%s sync daemon on %s, sync id %d", d.State, d.Interface, d.SyncID)
	if d.Group.IsValid() {
		s += ", group " + d.Group.String()
	}
	if d.Port != 0 {
		s += fmt.Sprintf(", port %d", d.Port)
	}
	if d.TTL != 0 {
		s += fmt.Sprintf(", ttl %d", d.TTL)
	}
	if d.MaxLen != 0 {
		s += fmt.Sprintf(", maxlen %d", d.MaxLen)
	}
	return s
}

// Validate reports settings the kernel would refuse, in words an operator
// can act on.
func (d SyncDaemon) Validate() error {
	switch {
	case d.State != SyncMaster && d.State != SyncBackup:
		return fmt.Errorf("%w: sync daemon state %s: want master or backup", ErrInvalid, d.State)
	case d.Interface == "":
		return fmt.Errorf("%w: the sync daemon needs a multicast interface", ErrInvalid)
	case len(d.Interface) > maxInterfaceName:
		return fmt.Errorf("%w: interface name %q is longer than %d bytes", ErrInvalid, d.Interface, maxInterfaceName)
	case d.Group.IsValid() && !d.Group.Unmap().IsMulticast():
		return fmt.Errorf("%w: sync group %s is not a multicast address", ErrInvalid, d.Group)
	}
	return nil
}

// SyncControl starts, stops and lists the kernel's sync daemons: the
// kernel through netlink (NewSyncNetlink) or an in-memory stand-in
// (NewMemorySync). Implementations are safe for concurrent use.
type SyncControl interface {
	// StartSyncDaemon starts a daemon; one of the same state already
	// running is ErrSyncDaemonRunning.
	StartSyncDaemon(ctx context.Context, d SyncDaemon) error
	// StopSyncDaemon stops the daemon of that state; none running is
	// ErrSyncDaemonNotRunning.
	StopSyncDaemon(ctx context.Context, s SyncState) error
	// SyncDaemons lists the running daemons, master first.
	SyncDaemons(ctx context.Context) ([]SyncDaemon, error)
}

var (
	ErrSyncDaemonRunning    = errors.New("ipvs: a sync daemon of that state is already running")
	ErrSyncDaemonNotRunning = errors.New("ipvs: no sync daemon of that state is running")
	ErrNoSuchInterface      = errors.New("ipvs: no such network interface")
)

// Generic netlink command and attribute numbers (include/uapi/linux/ip_vs.h).
const (
	cmdNewDaemon = 9
	cmdDelDaemon = 10
	cmdGetDaemon = 11

	cmdAttrDaemon = 3

	daemonAttrState       = 1 // u32
	daemonAttrMcastIfn    = 2 // NUL-terminated string
	daemonAttrSyncID      = 3 // u32 (the kernel keeps 8 bits)
	daemonAttrSyncMaxLen  = 4 // u16
	daemonAttrMcastGroup  = 5 // IPv4 address, network order
	daemonAttrMcastGroup6 = 6 // IPv6 address
	daemonAttrMcastPort   = 7 // u16, host order: sync thread n uses port+n
	daemonAttrMcastTTL    = 8 // u8
)

// encodeStartDaemon is the attributes of IPVS_CMD_NEW_DAEMON for d: the
// three every kernel needs, and the optional ones only when set, so an
// old kernel sees nothing it does not know.
func encodeStartDaemon(d SyncDaemon) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(daemonAttrState, uint32(d.State))
		nae.String(daemonAttrMcastIfn, d.Interface)
		nae.Uint32(daemonAttrSyncID, uint32(d.SyncID))
		if d.MaxLen != 0 {
			nae.Uint16(daemonAttrSyncMaxLen, d.MaxLen)
		}
		if g := d.Group.Unmap(); g.Is4() {
			b := g.As4()
			nae.Bytes(daemonAttrMcastGroup, b[:])
		} else if g.Is6() {
			b := g.As16()
			nae.Bytes(daemonAttrMcastGroup6, b[:])
		}
		if d.Port != 0 {
			nae.Uint16(daemonAttrMcastPort, d.Port)
		}
		if d.TTL != 0 {
			nae.Uint8(daemonAttrMcastTTL, d.TTL)
		}
		return nil
	})
	return ae.Encode()
}

// encodeStopDaemon is the attributes of IPVS_CMD_DEL_DAEMON: the state alone.
func encodeStopDaemon(s SyncState) ([]byte, error) {
	if s != SyncMaster && s != SyncBackup {
		return nil, fmt.Errorf("%w: sync daemon state %s: want master or backup", ErrInvalid, s)
	}
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrDaemon, func(nae *netlink.AttributeEncoder) error {
		nae.Uint32(daemonAttrState, uint32(s))
		return nil
	})
	return ae.Encode()
}

// decodeDaemon reads one daemon from the attributes of a GET_DAEMON reply.
func decodeDaemon(b []byte) (SyncDaemon, error) {
	var d SyncDaemon
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return d, err
	}
	found := false
	for ad.Next() {
		if ad.Type() != cmdAttrDaemon {
			continue
		}
		found = true
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case daemonAttrState:
					d.State = SyncState(nad.Uint32())
				case daemonAttrMcastIfn:
					d.Interface = nad.String()
				case daemonAttrSyncID:
					d.SyncID = uint8(nad.Uint32())
				case daemonAttrSyncMaxLen:
					d.MaxLen = nad.Uint16()
				case daemonAttrMcastGroup:
					if a, ok := netip.AddrFromSlice(nad.Bytes()); ok && a.Is4() {
						d.Group = a
					}
				case daemonAttrMcastGroup6:
					if a, ok := netip.AddrFromSlice(nad.Bytes()); ok {
						d.Group = a
					}
				case daemonAttrMcastPort:
					d.Port = nad.Uint16()
				case daemonAttrMcastTTL:
					d.TTL = nad.Uint8()
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return d, err
	}
	if !found {
		return d, errors.New("ipvs: sync daemon reply without a daemon attribute")
	}
	return d, nil
}

// sortDaemons puts the master first.
func sortDaemons(ds []SyncDaemon) {
	slices.SortFunc(ds, func(a, b SyncDaemon) int { return int(a.State) - int(b.State) })
}

// syncDaemonError explains an errno from a sync daemon command.
func syncDaemonError(err error, verb string, d SyncDaemon) error {
	if err == nil {
		return nil
	}
	var sentinel error
	hint := ""
	switch {
	case errors.Is(err, syscall.EEXIST):
		sentinel = ErrSyncDaemonRunning
		hint = fmt.Sprintf("another program (keepalived's lvs_sync_daemon, ipvsadm --start-daemon) may own it: stop it there, or `ipvsadm --stop-daemon %s`", d.State)
	case errors.Is(err, syscall.ESRCH):
		sentinel = ErrSyncDaemonNotRunning
	case errors.Is(err, syscall.ENODEV):
		sentinel = ErrNoSuchInterface
		hint = fmt.Sprintf("check [vrrp.sync] interface (%q) against `ip link` in the director's network namespace", d.Interface)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		sentinel = ErrInvalid
		hint = fmt.Sprintf("interface %q needs an IPv4 address for the sync messages' source", d.Interface)
	case errors.Is(err, syscall.EINVAL):
		sentinel = ErrInvalid
		hint = "the kernel refuses a sync daemon while destinations of another address family than their service exist, or a group that is not multicast"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s %s: %w: run as root or grant CAP_NET_ADMIN: %w", verb, d, ErrPermission, err)
	}
	if sentinel == nil {
		return fmt.Errorf("%s %s: %w", verb, d, err)
	}
	if hint != "" {
		return fmt.Errorf("%s %s: %w (%s): %w", verb, d, sentinel, hint, err)
	}
	return fmt.Errorf("%s %s: %w: %w", verb, d, sentinel, err)
}
