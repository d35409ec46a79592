package ipvs

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

// unhex reads bytes written as hex with spaces and newlines for layout.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func littleEndian(t *testing.T) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the expected bytes are written for a little-endian host")
	}
}

// The expected bytes are laid out by hand from include/uapi/linux/ip_vs.h:
// one nested IPVS_CMD_ATTR_DAEMON (type 3 with NLA_F_NESTED), inside it
// each attribute as length, type, value, padded to 4 bytes. Integers are
// in host order, the port too (the kernel adds the sync thread's number
// to it); the group is in network order.
func TestEncodeStartDaemon(t *testing.T) {
	littleEndian(t)
	for _, tt := range []struct {
		name string
		d    SyncDaemon
		want string
	}{
		{"the three every kernel needs", SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 7}, `
			20000380
			  08000100 02000000
			  09000200 65746830 00000000
			  08000300 07000000`},
		{"every option", SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 255,
			Group: netip.MustParseAddr("239.1.2.3"), Port: 8848, TTL: 2, MaxLen: 1400}, `
			40000380
			  08000100 01000000
			  09000200 65746830 00000000
			  08000300 ff000000
			  06000400 78050000
			  08000500 ef010203
			  06000700 90220000
			  05000800 02000000`},
		{"an IPv6 group", SyncDaemon{State: SyncMaster, Interface: "bond0.12", SyncID: 1,
			Group: netip.MustParseAddr("ff02::1:81")}, `
			38000380
			  08000100 01000000
			  0d000200 626f6e64 302e3132 00000000
			  08000300 01000000
			  14000600 ff020000 00000000 00000000 00010081`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeStartDaemon(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); string(got) != string(want) {
				t.Errorf("encoded\n%x\nwant\n%x", got, want)
			}
		})
	}
}

func TestEncodeStopDaemon(t *testing.T) {
	littleEndian(t)
	got, err := encodeStopDaemon(SyncBackup)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "0c000380 08000100 02000000"); string(got) != string(want) {
		t.Errorf("encoded %x, want %x", got, want)
	}
	if _, err := encodeStopDaemon(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("state 0: %v, want ErrInvalid", err)
	}
}

func TestEncodeRefusesWhatTheKernelWould(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: 3, Interface: "eth0"},
		{State: SyncMaster},
		{State: SyncMaster, Interface: "a-name-too-long0"},
		{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("192.0.2.1")},
		{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("2001:db8::1")},
	} {
		if _, err := encodeStartDaemon(d); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", d, err)
		}
	}
}

// A GET_DAEMON reply as the kernel's ip_vs_genl_fill_daemon writes it:
// state, interface, sync id, maxlen, port, ttl, then the group.
func TestDecodeDaemon(t *testing.T) {
	littleEndian(t)
	reply := unhex(t, `
		40000380
		  08000100 02000000
		  09000200 65746830 00000000
		  08000300 07000000
		  06000400 c4050000
		  06000700 90220000
		  05000800 01000000
		  08000500 e0000051`)
	got, err := decodeDaemon(reply)
	if err != nil {
		t.Fatal(err)
	}
	want := SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 7, MaxLen: 1476,
		Port: 8848, TTL: 1, Group: DefaultSyncGroup}
	if got != want {
		t.Errorf("decoded %+v\nwant %+v", got, want)
	}
	if _, err := decodeDaemon(unhex(t, "08000100 02000000")); err == nil {
		t.Error("a reply without the daemon attribute decoded without error")
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: SyncMaster, Interface: "eth0", SyncID: 9, Group: netip.MustParseAddr("239.0.0.9"), Port: 9000, TTL: 3, MaxLen: 1000},
		{State: SyncBackup, Interface: "e", SyncID: 0, Group: netip.MustParseAddr("ff05::9"), Port: 1},
	} {
		b, err := encodeStartDaemon(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeDaemon(b)
		if err != nil || got != d {
			t.Errorf("round trip of %+v: %+v, %v", d, got, err)
		}
	}
}

func TestSyncDaemonError(t *testing.T) {
	d := SyncDaemon{State: SyncMaster, Interface: "eth9", SyncID: 3}
	for _, tt := range []struct {
		errno    syscall.Errno
		sentinel error
		says     string
	}{
		{syscall.EEXIST, ErrSyncDaemonRunning, "ipvsadm --stop-daemon master"},
		{syscall.ESRCH, ErrSyncDaemonNotRunning, ""},
		{syscall.ENODEV, ErrNoSuchInterface, `interface ("eth9")`},
		{syscall.EADDRNOTAVAIL, ErrInvalid, "needs an IPv4 address"},
		{syscall.EINVAL, ErrInvalid, "another address family"},
		{syscall.EPERM, ErrPermission, "CAP_NET_ADMIN"},
	} {
		err := syncDaemonError(fmt.Errorf("netlink receive: %w", tt.errno), "start", d)
		if !errors.Is(err, tt.sentinel) || !errors.Is(err, tt.errno) {
			t.Errorf("%v: %v does not wrap %v and the errno", tt.errno, err, tt.sentinel)
		}
		if !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), "master sync daemon on eth9") {
			t.Errorf("%v: %q does not say %q and which daemon", tt.errno, err, tt.says)
		}
	}
	if syncDaemonError(nil, "start", d) != nil {
		t.Error("no error became one")
	}
}

func TestMemorySync(t *testing.T) {
	ctx := context.Background()
	m := NewMemorySync()
	m.Interfaces = []string{"eth0"}
	if err := m.StartSyncDaemon(ctx, SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: 2}); err != nil {
		t.Fatal(err)
	}
	if err := m.StartSyncDaemon(ctx, SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := m.StartSyncDaemon(ctx, SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1}); !errors.Is(err, ErrSyncDaemonRunning) {
		t.Errorf("second master: %v", err)
	}
	if err := m.StartSyncDaemon(ctx, SyncDaemon{State: SyncMaster, Interface: "eth1"}); !errors.Is(err, ErrNoSuchInterface) {
		t.Errorf("unknown interface: %v", err)
	}
	ds, _ := m.SyncDaemons(ctx)
	if len(ds) != 2 || ds[0].State != SyncMaster || ds[0].Port != DefaultSyncPort || ds[1].SyncID != 2 {
		t.Errorf("daemons %+v", ds)
	}
	if err := m.StopSyncDaemon(ctx, SyncMaster); err != nil {
		t.Fatal(err)
	}
	if err := m.StopSyncDaemon(ctx, SyncMaster); !errors.Is(err, ErrSyncDaemonNotRunning) {
		t.Errorf("stopping a stopped daemon: %v", err)
	}
}
