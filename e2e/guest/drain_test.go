//go:build linux

package guest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The graceful drain of issue 5 on the real kernel, with real connections:
// a client holds HTTP/1.1 keep-alive connections through the VIP, the
// real server they are on leaves the config, and the drain is watched in
// ipvsadm -Ln (weight, ActiveConn, InActConn) and in the traffic.
//
// How a drain ends by connections here: IPVS keeps a connection entry,
// counted as InActConn, after the connection closes. A graceful close
// (FIN both ways) leaves it in TIME_WAIT for 2 minutes, a timeout
// `ipvsadm --set` cannot change (it sets established, fin_wait and udp
// only). So the client ends its connections with a reset (SO_LINGER 0):
// the entry goes to CLOSE, which IPVS keeps for 10 s, and the drain ends
// once that has expired. The drain_timeout scenario covers the other end.

// ipvsCloseTimeout is how long IPVS keeps a TCP entry in CLOSE (after a
// reset): fixed in the kernel (ip_vs_proto_tcp.c).
const ipvsCloseTimeout = 10 * time.Second

// drainPoll is how often the director reads connection counts while a
// server drains (engine.Options.DrainPoll's default).
const drainPoll = 2 * time.Second

// heldConn is one client connection through a VIP kept open across
// requests (HTTP/1.1 keep-alive): IPVS keeps it on the real server it
// scheduled it to, whatever the weights do afterwards.
type heldConn struct {
	conn    net.Conn
	br      *bufio.Reader
	host    string
	backend string // the name of the real server it landed on
}

// get makes one request on the held connection and returns the body (the
// backend's name).
func (h *heldConn) get() (string, error) { return h.getWithin(10 * time.Second) }

// getWithin is get with its own time limit.
func (h *heldConn) getWithin(timeout time.Duration) (string, error) {
	h.conn.SetDeadline(time.Now().Add(timeout))
	defer h.conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(h.conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", h.host); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.Close {
		return "", fmt.Errorf("the server closed the kept-alive connection")
	}
	return strings.TrimSpace(string(body)), nil
}

// abort ends the connection with a reset rather than a FIN.
func (h *heldConn) abort() error {
	if tc, ok := h.conn.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			return err
		}
	}
	return h.conn.Close()
}

// holdConns opens n kept-alive connections from the client to vip
// ("ip:port"), makes one request on each, and returns them by the backend
// that answered. They are aborted at the end of the test.
func holdConns(t *testing.T, vip string, n int) map[string][]*heldConn {
	t.Helper()
	out := map[string][]*heldConn{}
	for range n {
		h := holdConn(t, vip)
		out[h.backend] = append(out[h.backend], h)
	}
	var summary []string
	for name, hs := range out {
		summary = append(summary, fmt.Sprintf("%s:%d", name, len(hs)))
	}
	t.Logf("%d connections held open through %s: %s", n, vip, strings.Join(summary, " "))
	return out
}

// holdConn opens one kept-alive connection from the client to vip and
// makes one request on it; it is aborted at the end of the test.
func holdConn(t *testing.T, vip string) *heldConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := cl.ns.dial(ctx, "tcp", vip)
	cancel()
	if err != nil {
		t.Fatalf("dial %s: %v", vip, err)
	}
	h := &heldConn{conn: c, br: bufio.NewReader(c), host: vip}
	t.Cleanup(func() { h.abort() })
	name, err := h.get()
	if err != nil {
		t.Fatalf("first request on a held connection to %s: %v", vip, err)
	}
	h.backend = name
	return h
}

// stillServed makes one request on each held connection and fails unless
// each is answered by the backend it landed on.
func stillServed(t *testing.T, what string, held map[string][]*heldConn) {
	t.Helper()
	n := 0
	for name, hs := range held {
		for _, h := range hs {
			got, err := h.get()
			switch {
			case err != nil:
				t.Errorf("%s: a held connection to %s failed: %v", what, name, err)
			case got != name:
				t.Errorf("%s: a held connection to %s was answered by %s", what, name, got)
			}
			n++
		}
	}
	t.Logf("%s: %d held connections answered, each by its own backend", what, n)
}

// connCount is a destination's connection counters (and weight) as
// ipvsadm -Ln shows them, from one read.
type connCount struct{ active, inactive, weight int }

// ipvsConns reads ipvsadm -Ln and returns the connection counters of
// every destination, keyed "TCP 10.0.100.1:80 10.0.11.2:80".
func ipvsConns() (map[string]connCount, error) {
	out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ipvsadm -Ln: %v: %s", err, out)
	}
	res := map[string]connCount{}
	svc := ""
	for _, line := range strings.Split(string(out), "\n") {
		if m := svcLine.FindStringSubmatch(line); m != nil {
			svc = m[1] + " " + m[2]
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			a, err1 := strconv.Atoi(f[4])
			i, err2 := strconv.Atoi(f[5])
			w, err3 := strconv.Atoi(f[3])
			if svc == "" || err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("ipvsadm: connection counts in %q", line)
			}
			res[svc+" "+f[1]] = connCount{active: a, inactive: i, weight: w}
		}
	}
	return res, nil
}

// destConns returns one destination's counters; ok is false when the
// kernel does not have it.
func destConns(t *testing.T, svc, addr string) (connCount, bool) {
	t.Helper()
	m, err := ipvsConns()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := m[svc+" "+addr]
	return c, ok
}

// waitConns polls ipvsadm until the destination's counters pass check.
func waitConns(t *testing.T, within time.Duration, what, svc, addr string, check func(connCount) bool) connCount {
	t.Helper()
	start := time.Now()
	for {
		c, ok := destConns(t, svc, addr)
		if ok && check(c) {
			t.Logf("%s: ActiveConn %d, InActConn %d after %.2fs (bound %v)", what, c.active, c.inactive, time.Since(start).Seconds(), within)
			return c
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v: %s in %s is at ActiveConn %d InActConn %d (present %v)\nipvsadm: %s",
				what, within, addr, svc, c.active, c.inactive, ok, mustTable(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// 13. Graceful drain with real connections: a real server with
// established connections leaves the config (SIGHUP). It goes to weight 0
// with its ActiveConn still counted, its connections keep carrying
// requests, new connections go elsewhere, and it stays while the kernel
// counts any connection of it, inactive ones included. Once the client has
// ended them and IPVS has let their entries go, it is deleted.
func Test13DrainWithConnections(t *testing.T) {
	guest(t)
	const vip = "10.0.100.50:80"
	const svc = "TCP " + vip
	cfg := func(rs ...string) string {
		// A drain_timeout far above the scenario's length: only the
		// connections can end this drain.
		return directorConfig("30s", "keep", webVS("web13", vip, "rr", "drain_timeout = \"5m\"\n", rs...))
	}
	d := startDirector(t, cfg(rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"))
	waitTable(t, upWithin(), "rs1 and rs2 up", dests(svc, "rr", masq(rs(1), 1), masq(rs(2), 1)))
	d.waitReady()

	// No short connections to rs2 before the drain: each would linger as
	// InActConn in TIME_WAIT for 2 minutes.
	held := holdConns(t, vip, 6)
	if len(held["rs1"]) == 0 || len(held["rs2"]) == 0 {
		t.Fatalf("rr over two servers did not spread 6 connections over both: %v", held)
	}
	onRS2 := len(held["rs2"])
	waitConns(t, slack, "rs2 counts the held connections as active", svc, rs(2).addr4(80),
		func(c connCount) bool { return c.active == onRS2 })

	reloaded := time.Now()
	d.reload(cfg(rs(1).addr4(80) + " 1"))
	waitTable(t, slack, "rs2 left the config: kept at weight 0", dests(svc, "rr", masq(rs(1), 1), masq(rs(2), 0)))
	if c, ok := destConns(t, svc, rs(2).addr4(80)); !ok || c.active != onRS2 {
		t.Errorf("draining rs2: ActiveConn %d (present %v), want the %d held connections", c.active, ok, onRS2)
	}
	if v, ok := metric(t, "director_real_server_state", map[string]string{"virtual_server": "web13", "real_server": rs(2).addr4(80), "state": "draining"}); !ok || v != 1 {
		t.Errorf("director_real_server_state{state=draining} for rs2 = %v (found %v), want 1", v, ok)
	}
	if !strings.Contains(d.log.String(), "real server draining") {
		t.Errorf("no \"real server draining\" line in the director log")
	}

	// New connections reach rs1 only; the held ones keep going, over
	// several of the director's connection-count polls.
	served(t, "http://10.0.100.50/", 20, []string{"rs1"}, "rs1")
	for i := range 3 {
		stillServed(t, fmt.Sprintf("draining, round %d", i+1), held)
		time.Sleep(drainPoll)
	}
	waitTable(t, 0, "rs2 still draining while its connections are open", dests(svc, "rr", masq(rs(1), 1), masq(rs(2), 0)))

	// The client ends its connections to rs2 with a reset: IPVS moves
	// them to CLOSE (inactive) and keeps the entries 10 s.
	for _, h := range held["rs2"] {
		if err := h.abort(); err != nil {
			t.Fatal(err)
		}
	}
	aborted := time.Now()
	delete(held, "rs2")
	waitConns(t, slack, "rs2's connections closed: no longer active, still counted as inactive", svc, rs(2).addr4(80),
		func(c connCount) bool { return c.active == 0 && c.inactive > 0 })
	// Across more than one poll, with only inactive entries left, the
	// drain goes on: an inactive connection still holds it.
	time.Sleep(drainPoll + time.Second)
	if since := time.Since(aborted); since < ipvsCloseTimeout-time.Second {
		c, ok := destConns(t, svc, rs(2).addr4(80))
		if !ok {
			t.Errorf("rs2 was deleted %.1fs after its connections were reset, while IPVS still held their entries (CLOSE lasts %v)",
				since.Seconds(), ipvsCloseTimeout)
		} else {
			t.Logf("%.1fs after the resets rs2 is still draining: ActiveConn %d, InActConn %d", since.Seconds(), c.active, c.inactive)
		}
	}
	took := waitTable(t, ipvsCloseTimeout+drainPoll+slack, "rs2 deleted once IPVS counts no connection for it",
		dests(svc, "rr", masq(rs(1), 1)))
	if gone := time.Since(aborted); gone < ipvsCloseTimeout-time.Second {
		t.Errorf("rs2 deleted %.1fs after the resets, before IPVS let their entries go (%v)", gone.Seconds(), ipvsCloseTimeout)
	}
	t.Logf("drain: %.1fs from the reload to the delete, %.1fs from the resets (%.1fs waiting)",
		time.Since(reloaded).Seconds(), time.Since(aborted).Seconds(), took.Seconds())
	if v, ok := metric(t, "director_drains_total", map[string]string{"result": "connections"}); !ok || v != 1 {
		t.Errorf("director_drains_total{result=connections} = %v (found %v), want 1", v, ok)
	}
	if !strings.Contains(d.log.String(), "real server drained; deleting it") {
		t.Errorf("no \"real server drained; deleting it\" line in the director log")
	}

	// rs1's held connections were never disturbed.
	stillServed(t, "after the drain", held)
	served(t, "http://10.0.100.50/", 10, []string{"rs1"}, "rs1")
}

// 14. drain_timeout: a draining server whose connections stay open is
// deleted once its virtual server's drain_timeout has passed, not before;
// until then its held connections carry requests.
func Test14DrainTimeout(t *testing.T) {
	guest(t)
	const vip = "10.0.100.51:80"
	const svc = "TCP " + vip
	const drainTimeout = 6 * time.Second
	cfg := func(rs ...string) string {
		return directorConfig("30s", "keep", webVS("web14", vip, "rr", fmt.Sprintf("drain_timeout = %q\n", drainTimeout), rs...))
	}
	d := startDirector(t, cfg(rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"))
	waitTable(t, upWithin(), "rs1 and rs2 up", dests(svc, "rr", masq(rs(1), 1), masq(rs(2), 1)))
	d.waitReady()
	held := holdConns(t, vip, 4)
	if len(held["rs2"]) == 0 {
		t.Fatalf("no held connection landed on rs2: %v", held)
	}
	onRS2 := len(held["rs2"])
	waitConns(t, slack, "rs2 counts the held connections as active", svc, rs(2).addr4(80),
		func(c connCount) bool { return c.active == onRS2 })

	reloaded := time.Now()
	d.reload(cfg(rs(1).addr4(80) + " 1"))
	waitTable(t, slack, "rs2 left the config: kept at weight 0", dests(svc, "rr", masq(rs(1), 1), masq(rs(2), 0)))
	stillServed(t, "draining", held)
	served(t, "http://10.0.100.51/", 10, []string{"rs1"}, "rs1")

	// The held connections stay open: only the timeout ends this drain.
	waitTable(t, drainTimeout+drainPoll+slack, "rs2 deleted at drain_timeout with its connections open", dests(svc, "rr", masq(rs(1), 1)))
	if after := time.Since(reloaded); after < drainTimeout {
		t.Errorf("rs2 deleted %.1fs after the reload, before its drain_timeout (%v)", after.Seconds(), drainTimeout)
	} else {
		t.Logf("rs2 deleted %.1fs after the reload (drain_timeout %v)", after.Seconds(), drainTimeout)
	}
	if v, ok := metric(t, "director_drains_total", map[string]string{"result": "timeout"}); !ok || v != 1 {
		t.Errorf("director_drains_total{result=timeout} = %v (found %v), want 1", v, ok)
	}
	if v, ok := metric(t, "director_drains_total", map[string]string{"result": "connections"}); ok && v != 0 {
		t.Errorf("director_drains_total{result=connections} = %v, want 0: the connections never ended", v)
	}
	if line := grep(d.log.String(), "drain timed out"); !strings.Contains(line, rs(2).addr4(80)) || !strings.Contains(line, "connections="+strconv.Itoa(onRS2)) {
		t.Errorf("no \"drain timed out\" line for rs2 with connections=%d in the director log: %q", onRS2, line)
	}
	delete(held, "rs2") // cut off by the delete (expire_nodest_conn decides how)
	stillServed(t, "rs1 after rs2's drain timed out", held)
	served(t, "http://10.0.100.51/", 10, []string{"rs1"}, "rs1")
}
