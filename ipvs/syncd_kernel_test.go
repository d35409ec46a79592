//go:build linux

package ipvs_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
)

// syncNetlink returns a ipvs.SyncNetlink in the namespace, with a veth link
// "sync0" there carrying an IPv4 address: the master daemon sends from
// the interface's address, so it needs one.
func syncNetlink(t *testing.T, ns *testutil.NetNS) *ipvs.SyncNetlink {
	t.Helper()
	ip, err1 := exec.LookPath("ip")
	nsenter, err2 := exec.LookPath("nsenter")
	if err1 != nil || err2 != nil {
		t.Skip("no ip or nsenter to make a link for the sync daemon")
	}
	for _, args := range [][]string{
		{"link", "add", "sync0", "type", "veth"},
		{"addr", "add", "10.77.0.1/24", "dev", "sync0"},
		{"link", "set", "sync0", "up"},
	} {
		cmd := exec.Command(nsenter, append([]string{"--net=/proc/self/fd/3", ip}, args...)...)
		cmd.ExtraFiles = []*os.File{ns.File()}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var s *ipvs.SyncNetlink
	if err := ns.Do(func() (err error) { s, err = ipvs.NewSyncNetlink(); return err }); err != nil {
		t.Fatalf("sync netlink: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ipvsadmDaemons runs `ipvsadm -L --daemon` in the namespace, when there.
func ipvsadmDaemons(t *testing.T, ns *testutil.NetNS) (string, bool) {
	t.Helper()
	ipvsadm, err1 := exec.LookPath("ipvsadm")
	nsenter, err2 := exec.LookPath("nsenter")
	if err1 != nil || err2 != nil {
		return "", false
	}
	cmd := exec.Command(nsenter, "--net=/proc/self/fd/3", ipvsadm, "-L", "--daemon")
	cmd.ExtraFiles = []*os.File{ns.File()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -L --daemon: %v\n%s", err, out)
	}
	return string(out), true
}

func TestKernelSyncDaemons(t *testing.T) {
	_, ns := kernelTable(t)
	s := syncNetlink(t, ns)
	ctx := context.Background()

	if ds, err := s.SyncDaemons(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("fresh namespace: %+v, %v", ds, err)
	}
	backup := ipvs.SyncDaemon{State: ipvs.SyncBackup, Interface: "sync0", SyncID: 5}
	if err := s.StartSyncDaemon(ctx, backup); err != nil {
		t.Fatal(err)
	}
	master := ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "sync0", SyncID: 9,
		Group: netip.MustParseAddr("239.1.1.1"), Port: 9000, TTL: 2, MaxLen: 1000}
	if err := s.StartSyncDaemon(ctx, master); err != nil {
		t.Fatal(err)
	}
	ds, err := s.SyncDaemons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The backup reads back with the kernel's defaults: 224.0.0.81:8848,
	// TTL 1, and the MTU's payload (1500 - 28 bytes of headers).
	wantBackup := backup
	wantBackup.Group, wantBackup.Port, wantBackup.TTL, wantBackup.MaxLen = ipvs.DefaultSyncGroup, ipvs.DefaultSyncPort, ipvs.DefaultSyncTTL, 1472
	if len(ds) != 2 || ds[0] != master || ds[1] != wantBackup {
		t.Fatalf("daemons\n%+v\nwant\n%+v\n%+v", ds, master, wantBackup)
	}
	if out, ok := ipvsadmDaemons(t, ns); ok {
		t.Logf("ipvsadm -L --daemon:\n%s", out)
		// ipvsadm is an independent reader of what the kernel holds:
		// the port in particular, whose byte order only the kernel knows.
		for _, want := range []string{"master sync daemon (mcast=sync0, syncid=9, maxlen=1000, group=239.1.1.1, port=9000, ttl=2)",
			"backup sync daemon (mcast=sync0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"} {
			if !strings.Contains(out, want) {
				t.Errorf("ipvsadm does not show %q", want)
			}
		}
	}

	if err := s.StartSyncDaemon(ctx, master); !errors.Is(err, ipvs.ErrSyncDaemonRunning) {
		t.Errorf("a second master: %v, want ipvs.ErrSyncDaemonRunning", err)
	}
	if err := s.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "nosuch0"}); !errors.Is(err, ipvs.ErrNoSuchInterface) {
		t.Errorf("a daemon on a missing interface: %v, want ipvs.ErrNoSuchInterface", err)
	}
	if err := s.StopSyncDaemon(ctx, ipvs.SyncMaster); err != nil {
		t.Fatal(err)
	}
	if err := s.StopSyncDaemon(ctx, ipvs.SyncMaster); !errors.Is(err, ipvs.ErrSyncDaemonNotRunning) {
		t.Errorf("stopping a stopped master: %v, want ipvs.ErrSyncDaemonNotRunning", err)
	}
	if ds, err := s.SyncDaemons(ctx); err != nil || len(ds) != 1 || ds[0].State != ipvs.SyncBackup {
		t.Errorf("after stopping the master: %+v, %v", ds, err)
	}
	if err := s.StopSyncDaemon(ctx, ipvs.SyncBackup); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.SyncDaemons(ctx); err != nil || len(ds) != 0 {
		t.Errorf("after stopping both: %+v, %v", ds, err)
	}
}
