//go:build linux

package testutil

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// NetNS is a network namespace of a test's own, held open by a file
// descriptor: nothing in it reaches the host's network or IPVS table.
type NetNS struct {
	f *os.File // the namespace's nsfs file
}

// NewNetNS creates a network namespace with its loopback interface up
// (the kernel refuses IPv4 real servers while lo is down). It needs
// CAP_SYS_ADMIN: without it the error wraps os.ErrPermission, which
// callers usually turn into a skip. Close releases the namespace.
func NewNetNS() (*NetNS, error) {
	var ns *NetNS
	err := OnOwnThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare a network namespace: %w", err)
		}
		if err := LoopbackUp(); err != nil {
			return err
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		ns = &NetNS{f: f}
		return nil
	})
	return ns, err
}

// Do runs f on a thread in the namespace. Sockets f opens stay in the
// namespace whichever thread uses them later.
func (n *NetNS) Do(f func() error) error {
	return OnOwnThread(func() error {
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter the test's network namespace: %w", err)
		}
		return f()
	})
}

// File is the namespace's file, for a child process to enter (nsenter
// --net=/proc/self/fd/N with the file in ExtraFiles).
func (n *NetNS) File() *os.File { return n.f }

// Close releases the namespace once nothing else holds it.
func (n *NetNS) Close() error { return n.f.Close() }

// InNetNS runs f on a thread in the network namespace at path, such as
// /proc/PID/ns/net of a process holding one.
func InNetNS(path string, f func() error) error {
	return OnOwnThread(func() error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", path, err)
		}
		return f()
	})
}

// OnOwnThread runs f on an OS thread of its own and waits for it. The
// thread is never given back to the scheduler (it ends with f's
// goroutine), so whatever f changes on it, a namespace or a capability,
// never reaches other goroutines.
func OnOwnThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose
		errc <- f()
	}()
	return <-errc
}

// LoopbackUp sets lo up in the calling thread's network namespace.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}
