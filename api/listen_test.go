package api

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConnectionCap(t *testing.T) {
	for _, tc := range []struct {
		configured    int
		openFileLimit uint64
		want          int
	}{
		{0, 1 << 20, DefaultMaxConnections}, // systemd's LimitNOFILE: the default
		{0, 1024, 256},                      // a quarter of a low limit
		{0, 256, 64},
		{0, 16, minConnections},
		{100, 1024, 100}, // configured wins
		{5000, 1024, 5000},
	} {
		if got := ConnectionCap(tc.configured, tc.openFileLimit); got != tc.want {
			t.Errorf("ConnectionCap(%d, %d) = %d, want %d", tc.configured, tc.openFileLimit, got, tc.want)
		}
	}
}

// serveLimited serves h through Server and LimitListener with the given
// cap on a loopback port and returns its address.
func serveLimited(t *testing.T, max int, h http.Handler, sat Saturation) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Server(ln.Addr().String(), h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(LimitListener(ln, max, srv, sat))
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// TestLimitListenerCapsConnections: with 20 clients each holding a
// request open, at most the cap are served at once; the others wait and
// are served as slots free up.
func TestLimitListenerCapsConnections(t *testing.T) {
	const max, clients = 4, 20
	var running, peak atomic.Int64
	release := make(chan struct{})
	var fulls atomic.Int64
	addr := serveLimited(t, max, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		io.WriteString(w, "ok")
	}), Saturation{Full: func(int) { fulls.Add(1) }})

	var wg sync.WaitGroup
	var ok atomic.Int64
	for range clients {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < max && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let more in, were the cap not working
	if got := running.Load(); got != max {
		t.Errorf("%d requests served at once, want the cap, %d", got, max)
	}
	close(release)
	wg.Wait()
	if ok.Load() != clients {
		t.Errorf("%d of %d clients answered", ok.Load(), clients)
	}
	if peak.Load() > max {
		t.Errorf("peak %d concurrent connections, over the cap %d", peak.Load(), max)
	}
	if fulls.Load() == 0 {
		t.Error("reaching the cap was not reported")
	}
}

// TestLimitListenerClosesIdleWhenFull: idle keep-alive connections holding
// every slot are closed as soon as a new client has to wait, so the new
// client is served at once rather than after the idle timeout.
func TestLimitListenerClosesIdleWhenFull(t *testing.T) {
	const max = 3
	addr := serveLimited(t, max, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}), Saturation{})

	// Fill every slot with a connection left idle after one request.
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	start := time.Now()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Server's idle timeout is 10 s: well under it means the idle
	// connections were closed to make room.
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("a new client waited %s behind idle keep-alive connections", waited)
	}
}
