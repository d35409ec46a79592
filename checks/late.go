package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// A director short of CPU must check less often, never fail healthy
// servers (issue 17). On the goroutine path a check waits in Go's network
// poller for its socket, and its deadline is a runtime timer. When the
// process is starved, the scheduler runs expired timers before it polls
// the network: a deadline that passes while the connect's completion or
// the server's answer waits unread wins, and a healthy server's check ends
// in "timeout".
//
// So after a timeout the prober looks once at the socket itself, without
// waiting, and judges by what it finds, as the fast loop does at its
// deadline (FastRun.expire):
//
//   - a connect that completed: a connect-only tcp check passes; any other
//     check could not send its request in time, which is the director's
//     delay (reasonStarved, inconclusive);
//   - a deadline that passed before the request was written, on a socket
//     that could take it: the same;
//   - answer bytes waiting unread: they are read and judged; what has not
//     arrived by the time of the look is still a timeout.
//
// A lateness bound alone (the timeout observed well after the deadline)
// would be cheaper still but cannot tell a starved check of a healthy
// server from one of a server that never answers: on a machine that stays
// busy every check would be inconclusive and a dead server would never go
// down. The look can: a server that never accepts or never answers leaves
// nothing to find, however late the look, and still fails with "timeout".
// Its cost is one dup and one close per connect (the dialer closes its
// socket when the dial times out, so the look keeps a duplicate), and a
// few syscalls per timeout.

// reasonStarved: the check timed out with the connection made (or the
// socket ready for the request), but the checker ran past the deadline
// before it could send: the server was never given its time. Its metric
// cause is "late: request not sent before the deadline".
const reasonStarved = localPrefix + "late: request not sent before the deadline"

// A TLS handshake (https checks, tcp and dialogue checks with TLS, ldap's
// LDAPS) is bounded by the connection's deadline, not by
// tls.Conn.HandshakeContext's context: that closes the socket the moment
// the context ends, so a starved handshake could not look at what the
// server had sent and ended in "timeout" although the server's flight
// waited unread. With the deadline on the connection the handshake's
// reads and writes go through lookConn: a read at the deadline reads the
// server's flight, or the rest of it, if it waits on the socket (what
// crypto/tls has read of a record but not yet used is a record not yet
// complete, whose rest is on the socket or has not come), and the
// handshake goes on with it — a certificate is still judged — until its
// next flight, which the deadline keeps from being sent: reasonStarved.
// A server that sent nothing, or not all of its flight, by the time of
// the look still fails with "timeout". After the handshake the reads and
// writes of tls.Conn go through the same lookConn, so an answer waiting
// is read, decrypted and judged as on a plain connection.

// handshake runs conf's client handshake on conn, bounded by ctx (see
// above); a failure comes back as a *tlsError.
func handshake(ctx context.Context, conn net.Conn, conf *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(conn, conf)
	defer deadlineConn(ctx, conn)()
	if err := tc.Handshake(); err != nil {
		return nil, &tlsError{err}
	}
	return tc, nil
}

// lateError is a dial or write that failed at the deadline although the
// socket was ready: the director's delay (classify: reasonStarved).
type lateError struct {
	op  string // "connect" or "write"
	err error
}

func (e *lateError) Error() string {
	return e.op + " ready but not done before the deadline: " + e.err.Error()
}
func (e *lateError) Unwrap() error { return e.err }

// lateConnect reports whether err is a connect that completed although
// the dial timed out (dialTCP): the server accepted the connection.
func lateConnect(err error) bool {
	var late *lateError
	return errors.As(err, &late) && late.op == "connect"
}

// dialTCP dials as d does, keeping a duplicate of the socket so that a
// dial that times out can be looked at once: a connect that completed
// comes back as a lateError, anything else as d's error.
func dialTCP(ctx context.Context, d *net.Dialer, address string) (net.Conn, error) {
	look := -1
	d.ControlContext = func(_ context.Context, _, _ string, c syscall.RawConn) error {
		c.Control(func(fd uintptr) {
			if look >= 0 {
				unix.Close(look) // a second address tried: keep only its socket
			}
			// Without a duplicate there is no look: the dial goes on.
			look, _ = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		})
		return nil
	}
	conn, err := d.DialContext(ctx, "tcp", address)
	if look < 0 {
		return conn, err
	}
	defer unix.Close(look)
	if err != nil && classify(ctx, err) == "timeout" && connected(look) {
		return nil, &lateError{op: "connect", err: err}
	}
	return conn, err
}

// connected looks, without waiting, whether the connect on fd completed.
func connected(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if n, err := unix.Poll(fds, 0); err != nil || n == 0 || fds[0].Revents&unix.POLLOUT == 0 {
		return false // still connecting (or failed: POLLERR without POLLOUT)
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	return err == nil && soerr == 0
}

// lookConn is a connection whose reads and writes look once at the socket
// when they fail at the deadline (see above).
type lookConn struct{ net.Conn }

// lookAtDeadline wraps a TCP connection; other connections come back as
// they are.
func lookAtDeadline(conn net.Conn) net.Conn {
	if _, ok := conn.(syscall.Conn); !ok {
		return conn
	}
	return &lookConn{conn}
}

// Read reads as the connection does; when that fails at the deadline
// (which Go checks before it reads), it reads once without waiting what
// has already arrived.
func (c *lookConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 || len(p) == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	var got int
	var rerr error
	if c.look(func(fd int) { got, rerr = unix.Read(fd, p) }) {
		switch {
		case rerr == nil && got > 0:
			return got, nil
		case rerr == nil:
			return 0, io.EOF // the server had closed: all it sent is read
		}
	}
	return 0, err // nothing waiting: a real timeout
}

// Write writes as the connection does; when nothing went out because the
// deadline had passed, and the socket could have taken it, the delay was
// the director's: a lateError. A socket that cannot take it (a server not
// reading) is the server's timeout.
func (c *lookConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 || len(p) == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	writable := false
	c.look(func(fd int) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		k, perr := unix.Poll(fds, 0)
		writable = perr == nil && k > 0 && fds[0].Revents&unix.POLLOUT != 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) == 0
	})
	if writable {
		return 0, &lateError{op: "write", err: err}
	}
	return 0, err
}

// look runs f on the socket without waiting for it; false when the
// connection is closed.
func (c *lookConn) look(f func(fd int)) bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return raw.Control(func(fd uintptr) { f(int(fd)) }) == nil
}
