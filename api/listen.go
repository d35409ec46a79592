package api

import (
	"net"
	"net/http"
	"sync"
)

// The listener's connections are capped so that clients cannot take the
// file descriptors the probes need: with the open-file limit at 1024,
// ~1,100 idle connections once made every probe fail with "too many open
// files" and quiesced a healthy pool. Connections beyond the cap wait in
// the kernel's accept queue, where they hold no descriptor of ours.

// DefaultMaxConnections is the listener's cap when max_connections is not
// set and the open-file limit is high: far more than scrapers, status
// pages and operators need at once.
const DefaultMaxConnections = 512

// minConnections keeps the listener usable under a tiny open-file limit.
const minConnections = 8

// ConnectionCap returns the cap on the listener's concurrent connections:
// configured when above 0, else DefaultMaxConnections or a quarter of the
// open-file limit, whichever is lower, so probes keep the rest.
func ConnectionCap(configured int, openFileLimit uint64) int {
	if configured > 0 {
		return configured
	}
	limit := uint64(DefaultMaxConnections)
	if q := openFileLimit / 4; q < limit {
		limit = q
	}
	return max(int(limit), minConnections)
}

// Saturation is told when the listener reaches its cap (a new connection
// has to wait) and when it has room again (a connection is accepted while
// half the cap is free).
type Saturation struct {
	Full   func(max int)
	Relief func()
}

// LimitListener caps ln at max concurrent connections: Accept waits while
// max are open. While the cap is reached, srv (when not nil) stops keeping
// connections alive, which also closes the idle ones at once: an idle
// keep-alive connection must not hold a slot a new client waits for.
func LimitListener(ln net.Listener, max int, srv *http.Server, sat Saturation) net.Listener {
	l := &limitListener{Listener: ln, slots: make(chan struct{}, max), closed: make(chan struct{}), sat: sat}
	if srv != nil {
		full, relief := sat.Full, sat.Relief
		l.sat.Full = func(n int) {
			srv.SetKeepAlivesEnabled(false)
			if full != nil {
				full(n)
			}
		}
		l.sat.Relief = func() {
			srv.SetKeepAlivesEnabled(true)
			if relief != nil {
				relief()
			}
		}
	}
	return l
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // one element per open connection (or Accept in progress)
	closed    chan struct{}
	closeOnce sync.Once
	sat       Saturation

	mu   sync.Mutex
	full bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
		if len(l.slots) <= cap(l.slots)/2 {
			l.setFull(false)
		}
	default:
		l.setFull(true)
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, slots: l.slots}, nil
}

// setFull records a change of saturation and tells of it, once per change.
// Only Accept calls it, never a connection's Close: the Full hook closes
// idle connections, whose Close must not wait for the lock held here.
func (l *limitListener) setFull(full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full == full {
		return
	}
	l.full = full
	if full && l.sat.Full != nil {
		l.sat.Full(cap(l.slots))
	} else if !full && l.sat.Relief != nil {
		l.sat.Relief()
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once  sync.Once
	slots chan struct{}
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}
