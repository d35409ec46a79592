// Package systemd speaks the service manager's notify protocol
// (sd_notify(3)): READY=1, RELOADING=1, STOPPING=1 and the watchdog, as
// datagrams on the socket named by $NOTIFY_SOCKET. It is small enough to
// write out rather than depend on a library.
package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to the service manager. A nil *Notifier
// (not started by systemd) accepts every call and does nothing.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET, or nil when it is unset.
// getenv is os.Getenv outside tests. The watchdog interval is taken from
// $WATCHDOG_USEC when $WATCHDOG_PID is unset or names this process.
func FromEnv(getenv func(string) string) *Notifier {
	socket := getenv("NOTIFY_SOCKET")
	if socket == "" {
		return nil
	}
	n := &Notifier{socket: socket}
	if pid := getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
		if usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n
}

// Notify sends one state message ("READY=1", lines joined by "\n").
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	// An address starting with "@" is in the abstract namespace; Go's net
	// package maps it itself.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd notify socket %s: %w", n.socket, err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd notify socket %s: %w", n.socket, err)
	}
	return nil
}

// Ready says start-up, or a reload, is complete.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1\nSTATUS=" + status)
}

// Reloading says a reload begins. Type=notify-reload needs the monotonic
// time with it, to match the message with the reload it asked for.
func (n *Notifier) Reloading() error {
	return n.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
}

// Stopping says shutdown begins.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Watchdog tells the manager the service is alive.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// WatchdogInterval is how often the manager expects Watchdog; 0 when it
// does not.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3
}
