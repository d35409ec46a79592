//go:build linux

package testutil

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// A listener in the namespace is reachable there and not from the host's
// namespace, and the calling thread never leaves the host's namespace.
func TestNetNSIsolates(t *testing.T) {
	ns, err := NewNetNS()
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("needs CAP_SYS_ADMIN: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	self, _ := os.Readlink("/proc/thread-self/ns/net")
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != self {
		t.Fatalf("the caller's thread moved from %s to %s", self, now)
	}
	if err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("dial inside the namespace: %v", err)
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second); err == nil {
		c.Close()
		t.Errorf("%s in the test's namespace is reachable from the host's", l.Addr())
	}
}
