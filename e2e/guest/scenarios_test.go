//go:build linux

package guest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The scenarios of issue 3, in order. Each starts from an empty IPVS table
// and healthy backends, runs its own director, and asserts on the kernel
// table as ipvsadm -Ln shows it and on traffic from the client namespace.

// directorConfig is a whole config: the [director] section, short checks,
// and the virtual servers given.
func directorConfig(resync, onShutdown string, virtualServers ...string) string {
	return fmt.Sprintf(`[director]
listen = %q
resync_interval = %q
on_shutdown = %q

%s
%s`, metricsAddr, resync, onShutdown, checkDefaults, strings.Join(virtualServers, "\n"))
}

const httpCheck = `
  [virtual_server.check]
  type = "http"
  path = "/healthz"
  expect_body = "ok"
`

// reals renders [[virtual_server.real_server]] blocks: "address weight" each.
func reals(rs ...string) string {
	var b strings.Builder
	for _, r := range rs {
		addr, weight, _ := strings.Cut(r, " ")
		fmt.Fprintf(&b, "\n  [[virtual_server.real_server]]\n  address = %q\n", addr)
		if weight != "" {
			fmt.Fprintf(&b, "  weight = %s\n", weight)
		}
	}
	return b.String()
}

// webVS is an HTTP virtual service over NAT with an http check.
func webVS(name, vip, sched, extra string, rs ...string) string {
	return fmt.Sprintf("[[virtual_server]]\nname = %q\naddress = %q\nscheduler = %q\n%s%s%s\n",
		name, vip, sched, extra, httpCheck, reals(rs...))
}

// masq renders the expected ipvsadm destination line "addr Masq weight".
func masq(b *backend, weight int) string { return fmt.Sprintf("%s Masq %d", b.addr4(80), weight) }

// threeUp starts a director on one wrr service over rs1..rs3 with weights
// 1, 2, 3 and waits until all three are up in the kernel.
func threeUp(t *testing.T, name, vip, extra string) *director {
	t.Helper()
	d := startDirector(t, directorConfig("30s", "keep",
		webVS(name, vip, "wrr", extra, rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2", rs(3).addr4(80)+" 3")))
	waitTable(t, upWithin(), "all three real servers up", dests("TCP "+vip, "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3)))
	return d
}

// 1. Start: the director programs the service with all three backends at
// their weights; clients reach all three, in proportion to the weights.
func Test01Start(t *testing.T) {
	guest(t)
	d := threeUp(t, "web1", "10.0.100.1:80", "")
	d.waitReady()
	counts := served(t, "http://10.0.100.1/", 60, []string{"rs1", "rs2", "rs3"}, "rs1", "rs2", "rs3")
	for i, want := range []int{10, 20, 30} { // wrr over a whole number of rounds
		if got := counts[rs(i+1).name]; got < want-3 || got > want+3 {
			t.Errorf("%s served %d of 60 requests, want about %d (weights 1:2:3)", rs(i+1).name, got, want)
		}
	}
}

// 2. A backend dies: within fall × interval + timeout (+ slack) its weight
// is 0, no new connection reaches it, the others are untouched, and the
// metrics agree.
func Test02BackendDies(t *testing.T) {
	guest(t)
	threeUp(t, "web2", "10.0.100.2:80", "")
	rs(2).stopHTTP()
	waitTable(t, downWithin(), "rs2 quiesced, rs1 and rs3 untouched",
		dests("TCP 10.0.100.2:80", "wrr", masq(rs(1), 1), masq(rs(2), 0), masq(rs(3), 3)))
	served(t, "http://10.0.100.2/", 30, []string{"rs1", "rs3"}, "rs1", "rs3")
	for _, m := range []struct {
		metric, rs string
		want       float64
	}{
		{"director_real_server_up", rs(2).addr4(80), 0},
		{"director_real_server_weight", rs(2).addr4(80), 0},
		{"director_real_server_up", rs(1).addr4(80), 1},
		{"director_real_server_weight", rs(1).addr4(80), 1},
		{"director_real_server_weight", rs(3).addr4(80), 3},
	} {
		got, ok := metric(t, m.metric, map[string]string{"virtual_server": "web2", "real_server": m.rs})
		if !ok || got != m.want {
			t.Errorf("%s{real_server=%q} = %v (found %v), want %v", m.metric, m.rs, got, ok, m.want)
		}
	}
}

// 3. It recovers: within rise × interval + timeout its configured weight
// is back, and it takes connections again.
func Test03BackendRecovers(t *testing.T) {
	guest(t)
	threeUp(t, "web3", "10.0.100.3:80", "")
	rs(2).stopHTTP()
	waitTable(t, downWithin(), "rs2 quiesced", dests("TCP 10.0.100.3:80", "wrr", masq(rs(1), 1), masq(rs(2), 0), masq(rs(3), 3)))
	if err := rs(2).startHTTP(); err != nil {
		t.Fatal(err)
	}
	waitTable(t, upWithin(), "rs2 back at weight 2", dests("TCP 10.0.100.3:80", "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3)))
	served(t, "http://10.0.100.3/", 30, []string{"rs1", "rs2", "rs3"}, "rs1", "rs2", "rs3")
}

// 4. on_failure = "remove": the destination is deleted, then re-added.
func Test04OnFailureRemove(t *testing.T) {
	guest(t)
	threeUp(t, "web4", "10.0.100.4:80", "on_failure = \"remove\"\n")
	rs(2).stopHTTP()
	waitTable(t, downWithin(), "rs2 removed", dests("TCP 10.0.100.4:80", "wrr", masq(rs(1), 1), masq(rs(3), 3)))
	served(t, "http://10.0.100.4/", 30, []string{"rs1", "rs3"}, "rs1", "rs3")
	if err := rs(2).startHTTP(); err != nil {
		t.Fatal(err)
	}
	waitTable(t, upWithin(), "rs2 re-added", dests("TCP 10.0.100.4:80", "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3)))
	served(t, "http://10.0.100.4/", 30, []string{"rs1", "rs2", "rs3"}, "rs1", "rs2", "rs3")
}

// 5. Drift: ipvsadm -C, a manual weight change and a destination added by
// hand are all repaired within resync_interval.
func Test05Drift(t *testing.T) {
	guest(t)
	const resync = 2 * time.Second
	d := startDirector(t, directorConfig(resync.String(), "keep",
		webVS("web5", "10.0.100.5:80", "rr", "", rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2")))
	want := dests("TCP 10.0.100.5:80", "rr", masq(rs(1), 1), masq(rs(2), 2))
	waitTable(t, upWithin(), "programmed", want)

	// The repairs must be the resync's doing: the director's log says so.
	repairs := func(from int, what string, ops ...string) {
		t.Helper()
		changes := grep(d.log.String()[from:], "trigger=resync")
		for _, op := range ops {
			if !strings.Contains(changes, op) {
				t.Errorf("%s: no resync repair %q in the director log; resync changes:\n%s", what, op, changes)
			}
		}
	}

	mark := len(d.log.String())
	if err := rootNS.sh("ipvsadm -C"); err != nil {
		t.Fatal(err)
	}
	waitTable(t, resync+slack, "table restored after ipvsadm -C", want)
	repairs(mark, "after ipvsadm -C", "add service tcp 10.0.100.5:80", "add destination "+rs(1).addr4(80), "add destination "+rs(2).addr4(80))
	served(t, "http://10.0.100.5/", 20, []string{"rs1", "rs2"}, "rs1", "rs2")

	mark = len(d.log.String())
	if err := rootNS.sh(fmt.Sprintf("ipvsadm -e -t 10.0.100.5:80 -r %s -m -w 7\nipvsadm -a -t 10.0.100.5:80 -r %s -m -w 5",
		rs(1).addr4(80), rs(3).addr4(80))); err != nil {
		t.Fatal(err)
	}
	waitTable(t, resync+slack, "manual weight and destination repaired", want)
	repairs(mark, "after ipvsadm -e and -a", "edit destination "+rs(1).addr4(80), "delete destination "+rs(3).addr4(80))
	served(t, "http://10.0.100.5/", 20, []string{"rs1", "rs2"}, "rs1", "rs2")
}

// 6. Hitless restart: stop and start the director under client load; no
// destination disappears or changes weight, no request fails.
func Test06HitlessRestart(t *testing.T) {
	guest(t)
	d := startDirector(t, directorConfig("30s", "keep",
		webVS("web6", "10.0.100.6:80", "wrr", "", rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2", rs(3).addr4(80)+" 3")))
	waitTable(t, upWithin(), "programmed", dests("TCP 10.0.100.6:80", "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3)))
	d.waitReady()
	baseline := mustTable(t).String()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	var errs []string
	var samples, requests atomic.Int64
	var diffs []string
	wg.Go(func() { // the table, sampled continuously
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb, err := ipvsadm()
			samples.Add(1)
			mu.Lock()
			if err != nil {
				diffs = append(diffs, err.Error())
			} else if s := tb.String(); s != baseline {
				diffs = append(diffs, fmt.Sprintf("%s: %s", time.Now().Format("15:04:05.000"), s))
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	for range 2 { // client load
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body, err := cl.get("http://10.0.100.6/")
				requests.Add(1)
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					counts[body]++
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	if err := d.stop(); err != nil {
		t.Errorf("director exit on SIGTERM: %v", err)
	}
	t.Logf("director stopped; %d requests, %d table samples so far", requests.Load(), samples.Load())
	time.Sleep(time.Second) // traffic without any director
	logBefore := len(d.log.String())
	d.start()
	d.waitReady()
	time.Sleep(4 * interval) // the new director's checks run
	close(stop)
	wg.Wait()

	if len(diffs) > 0 {
		t.Errorf("the table changed during the restart (%d of %d samples), baseline %q; first: %s",
			len(diffs), samples.Load(), baseline, diffs[0])
	}
	t.Logf("%d table samples with ipvsadm -Ln, all equal to the baseline %q", samples.Load(), baseline)
	if samples.Load() < 10 {
		t.Errorf("only %d table samples", samples.Load())
	}
	checkServed(t, "load through the restart", int(requests.Load()), counts, errs, []string{"rs1", "rs2", "rs3"}, []string{"rs1", "rs2", "rs3"})
	if changes := grep(d.log.String()[logBefore:], "ipvs table changed"); changes != "" {
		t.Errorf("the restarted director changed the table:\n%s", changes)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// 7. Reload: SIGHUP with an added and a removed real server and a changed
// scheduler is applied; unchanged servers keep their state; a bad config
// on SIGHUP changes nothing.
func Test07Reload(t *testing.T) {
	guest(t)
	const vip = "10.0.100.7:80"
	d := startDirector(t, directorConfig("30s", "keep",
		webVS("web7", vip, "wrr", "", rs(1).addr4(80)+" 10", rs(2).addr4(80)+" 20", rs(3).addr4(80)+" 30")))
	waitTable(t, upWithin(), "programmed", dests("TCP "+vip, "wrr", masq(rs(1), 10), masq(rs(2), 20), masq(rs(3), 30)))
	rs(3).stopHTTP() // rs3 goes down before the reload and must stay down after
	waitTable(t, downWithin(), "rs3 down", dests("TCP "+vip, "wrr", masq(rs(1), 10), masq(rs(2), 20), masq(rs(3), 0)))
	d.waitReady()
	transitions := func(b *backend) (n float64) {
		for _, to := range []string{"up", "down", "unknown"} {
			v, _ := metric(t, "director_state_transitions_total", map[string]string{"virtual_server": "web7", "real_server": b.addr4(80), "to": to})
			n += v
		}
		return n
	}
	before1, before3 := transitions(rs(1)), transitions(rs(3))

	// Watch rs1 through the reload: an unchanged, up server must never
	// lose its weight (a reset to "unknown" would quiesce it).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if tb, err := ipvsadm(); err == nil {
				if w := tb["TCP "+vip].dests[rs(1).addr4(80)]; w.weight != 10 {
					bad.CompareAndSwap(nil, fmt.Sprintf("rs1 at %+v: %s", w, tb))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	good := directorConfig("30s", "keep",
		webVS("web7", vip, "rr", "", rs(1).addr4(80)+" 10", rs(3).addr4(80)+" 30", rs(4).addr4(80)+" 40"))
	d.reload(good)
	want := dests("TCP "+vip, "rr", masq(rs(1), 10), masq(rs(3), 0), masq(rs(4), 40))
	waitTable(t, upWithin(), "reload applied: rr, rs2 gone, rs4 added", want)
	time.Sleep(3 * interval)
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Errorf("rs1 lost its weight during the reload: %s", v)
	}
	if a1, a3 := transitions(rs(1)), transitions(rs(3)); a1 != before1 || a3 != before3 {
		t.Errorf("state transitions across the reload: rs1 %v -> %v, rs3 %v -> %v; unchanged servers must keep their state",
			before1, a1, before3, a3)
	}
	served(t, "http://10.0.100.7/", 20, []string{"rs1", "rs4"}, "rs1", "rs4")

	// A bad config: it would drop rs1 and change the scheduler, but has an
	// unknown key. Nothing may change.
	before := mustTable(t).String()
	d.reload(directorConfig("30s", "keep",
		webVS("web7", vip, "wlc", "bogus_key = 1\n", rs(3).addr4(80)+" 30", rs(4).addr4(80)+" 40")))
	deadline := time.Now().Add(slack)
	for !strings.Contains(d.log.String(), "config reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no \"config reload failed\" in the director log within %v", slack)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * interval)
	if after := mustTable(t).String(); after != before {
		t.Errorf("a refused reload changed the table:\nbefore %s\nafter  %s", before, after)
	}
	if !d.running() {
		t.Fatalf("director exited after a bad reload: %v", d.err)
	}
	if v, ok := metric(t, "director_config_last_reload_successful", nil); !ok || v != 0 {
		t.Errorf("director_config_last_reload_successful = %v (found %v), want 0", v, ok)
	}
	served(t, "http://10.0.100.7/", 20, []string{"rs1", "rs4"}, "rs1", "rs4")
}

// 8. Fallback: with every backend down the sorry server serves; when one
// comes back, the sorry server leaves.
func Test08Fallback(t *testing.T) {
	guest(t)
	const vip = "10.0.100.8:80"
	sorry := rs(6)
	startDirector(t, directorConfig("30s", "keep",
		webVS("web8", vip, "rr", fmt.Sprintf("fallback = %q\n", sorry.addr4(80)), rs(1).addr4(80)+" 5", rs(2).addr4(80)+" 5")))
	waitTable(t, upWithin(), "programmed, no sorry server", dests("TCP "+vip, "rr", masq(rs(1), 5), masq(rs(2), 5)))
	served(t, "http://10.0.100.8/", 10, []string{"rs1", "rs2"}, "rs1", "rs2")

	rs(1).stopHTTP()
	rs(2).stopHTTP()
	waitTable(t, downWithin(), "all down: sorry server in", dests("TCP "+vip, "rr", masq(rs(1), 0), masq(rs(2), 0), masq(sorry, 1)))
	served(t, "http://10.0.100.8/", 10, []string{sorry.name}, sorry.name)

	if err := rs(1).startHTTP(); err != nil {
		t.Fatal(err)
	}
	waitTable(t, upWithin(), "rs1 back: sorry server out", dests("TCP "+vip, "rr", masq(rs(1), 5), masq(rs(2), 0)))
	served(t, "http://10.0.100.8/", 10, []string{"rs1"}, "rs1")
}

// 9. Probers for real: a TCP check sees a closed listener, an ICMP check a
// backend whose interface is down, an HTTPS check a certificate its CA
// did not sign (down) and then one it did (up).
func Test09Probers(t *testing.T) {
	guest(t)
	d := startDirector(t, directorConfig("30s", "keep",
		fmt.Sprintf(`[[virtual_server]]
name = "tcp9"
address = "10.0.100.9:80"
scheduler = "rr"
  [virtual_server.check]
  type = "tcp"
%s
[[virtual_server]]
name = "icmp9"
address = "10.0.100.19:80"
scheduler = "rr"
  [virtual_server.check]
  type = "icmp"
%s
[[virtual_server]]
name = "https9"
address = "10.0.100.29:443"
scheduler = "rr"
  [virtual_server.check]
  type = "https"
  path = "/healthz"
  server_name = %q
  ca_file = "ca.pem"
%s`, reals(rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"),
			reals(rs(3).addr4(80)+" 1", rs(4).addr4(80)+" 1"),
			certName, reals(rs(5).addr4(443)+" 1", rs(6).addr4(443)+" 1"))))
	rs(6).cert.Store(badCert)
	tls := func(b *backend, w int) string { return fmt.Sprintf("%s Masq %d", b.addr4(443), w) }
	waitTable(t, upWithin(), "tcp and icmp up; https: good certificate up, bad one down", func(tb table) error {
		for _, c := range []func(table) error{
			dests("TCP 10.0.100.9:80", "rr", masq(rs(1), 1), masq(rs(2), 1)),
			dests("TCP 10.0.100.19:80", "rr", masq(rs(3), 1), masq(rs(4), 1)),
			dests("TCP 10.0.100.29:443", "rr", tls(rs(5), 1), tls(rs(6), 0)),
		} {
			if err := c(tb); err != nil {
				return err
			}
		}
		return nil
	})
	// rs6's weight 0 is a verdict, not "unknown": its check failed. (The
	// table above also matches while rs6 is still unknown, at weight 0
	// too: wait for the verdict.)
	for deadline := time.Now().Add(downWithin()); ; time.Sleep(100 * time.Millisecond) {
		if v, _ := metric(t, "director_state_transitions_total", map[string]string{"virtual_server": "https9", "real_server": rs(6).addr4(443), "to": "down"}); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("rs6 with a bad certificate: no transition to down in the metrics within %v", downWithin())
			break
		}
	}
	// The log names the reason of the transition, which under a slow
	// guest may be a first check's timeout; the status shows the last
	// check's reason, which must come to name the certificate.
	for deadline := time.Now().Add(downWithin()); !strings.Contains(d.log.String(), "certificate"); time.Sleep(200 * time.Millisecond) {
		if r := lastReason(t, "https9", rs(6).addr4(443)); strings.Contains(r, "certificate") {
			break
		} else if time.Now().After(deadline) {
			t.Errorf("neither the director log nor rs6's last check (%q) mentions the certificate problem", r)
			break
		}
	}

	t.Run("tcp", func(t *testing.T) {
		rs(2).stopHTTP()
		waitTable(t, downWithin(), "listener closed: rs2 down", dests("TCP 10.0.100.9:80", "rr", masq(rs(1), 1), masq(rs(2), 0)))
		served(t, "http://10.0.100.9/", 10, []string{"rs1"}, "rs1")
		if err := rs(2).startHTTP(); err != nil {
			t.Fatal(err)
		}
		waitTable(t, upWithin(), "listener open: rs2 up", dests("TCP 10.0.100.9:80", "rr", masq(rs(1), 1), masq(rs(2), 1)))
		served(t, "http://10.0.100.9/", 10, []string{"rs1", "rs2"}, "rs1", "rs2")
	})
	t.Run("icmp", func(t *testing.T) {
		if err := rs(4).linkDown(); err != nil {
			t.Fatal(err)
		}
		waitTable(t, downWithin(), "interface down: rs4 down", dests("TCP 10.0.100.19:80", "rr", masq(rs(3), 1), masq(rs(4), 0)))
		served(t, "http://10.0.100.19/", 10, []string{"rs3"}, "rs3")
		if err := rs(4).linkUp(); err != nil {
			t.Fatal(err)
		}
		waitTable(t, upWithin(), "interface up: rs4 up", dests("TCP 10.0.100.19:80", "rr", masq(rs(3), 1), masq(rs(4), 1)))
		served(t, "http://10.0.100.19/", 10, []string{"rs3", "rs4"}, "rs3", "rs4")
	})
	t.Run("https", func(t *testing.T) {
		served(t, "https://10.0.100.29/", 10, []string{"rs5"}, "rs5")
		rs(6).cert.Store(goodCert)
		waitTable(t, upWithin(), "good certificate: rs6 up", dests("TCP 10.0.100.29:443", "rr", tls(rs(5), 1), tls(rs(6), 1)))
		served(t, "https://10.0.100.29/", 10, []string{"rs5", "rs6"}, "rs5", "rs6")
	})
}

// 10. Address families and methods: IPv6, UDP, fwmark, DR (with traffic)
// and TUN real servers.
func Test10FamiliesAndMethods(t *testing.T) {
	guest(t)
	// DR and TUN real servers hold the VIP themselves.
	for _, c := range []struct {
		b   *backend
		vip string
	}{{rs(3), "10.0.100.12"}, {rs(4), "10.0.100.12"}, {rs(5), "10.0.100.13"}} {
		if err := c.b.ns.sh("ip addr add " + c.vip + "/32 dev lo"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.b.ns.sh("ip addr del " + c.vip + "/32 dev lo") })
	}
	startDirector(t, directorConfig("30s", "keep",
		webVS("v6", "[fd00:100::10]:80", "rr", "", rs(1).addr6(80)+" 1", rs(2).addr6(80)+" 1"),
		fmt.Sprintf(`[[virtual_server]]
name = "udp"
address = "10.0.100.10:5353"
protocol = "udp"
scheduler = "rr"
  [virtual_server.check]
  type = "tcp"
  port = 80
%s
[[virtual_server]]
name = "fwmark"
fwmark = 10
scheduler = "rr"
%s%s
[[virtual_server]]
name = "dr"
address = "10.0.100.12:80"
scheduler = "rr"
forwarding = "dr"
%s%s
[[virtual_server]]
name = "tun"
address = "10.0.100.13:80"
scheduler = "rr"
forwarding = "tun"
%s%s`, reals(rs(1).addr4(5353)+" 1", rs(2).addr4(5353)+" 1"),
			httpCheck, reals(rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"),
			httpCheck, reals(rs(3).addr4(80)+" 1", rs(4).addr4(80)+" 1"),
			httpCheck, reals(rs(5).addr4(80)+" 1"))))
	waitTable(t, upWithin(), "every service programmed, every real server up", func(tb table) error {
		for _, c := range []func(table) error{
			dests("TCP [fd00:100::10]:80", "rr", rs(1).addr6(80)+" Masq 1", rs(2).addr6(80)+" Masq 1"),
			dests("UDP 10.0.100.10:5353", "rr", rs(1).addr4(5353)+" Masq 1", rs(2).addr4(5353)+" Masq 1"),
			dests("FWM 10", "rr", masq(rs(1), 1), masq(rs(2), 1)),
			dests("TCP 10.0.100.12:80", "rr", rs(3).addr4(80)+" Route 1", rs(4).addr4(80)+" Route 1"),
			dests("TCP 10.0.100.13:80", "rr", rs(5).addr4(80)+" Tunnel 1"),
		} {
			if err := c(tb); err != nil {
				return err
			}
		}
		return nil
	})
	t.Run("ipv6", func(t *testing.T) {
		served(t, "http://[fd00:100::10]/", 10, []string{"rs1", "rs2"}, "rs1", "rs2")
	})
	t.Run("udp", func(t *testing.T) {
		counts := map[string]int{}
		var errs []string
		for range 10 {
			r, err := cl.udp("10.0.100.10:5353")
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			counts[r]++
		}
		checkServed(t, "udp 10.0.100.10:5353", 10, counts, errs, []string{"rs1", "rs2"}, []string{"rs1", "rs2"})
	})
	t.Run("fwmark", func(t *testing.T) {
		// No iptables in the guest to mark packets: a local client marks
		// its own with SO_MARK, and IPVS schedules locally sent packets too.
		counts := map[string]int{}
		var errs []string
		for range 10 {
			body, err := markedGet("http://10.0.100.30/", 10)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			counts[body]++
		}
		checkServed(t, "fwmark 10 (to 10.0.100.30)", 10, counts, errs, []string{"rs1", "rs2"}, []string{"rs1", "rs2"})
	})
	t.Run("dr", func(t *testing.T) {
		served(t, "http://10.0.100.12/", 10, []string{"rs3", "rs4"}, "rs3", "rs4")
	})
	t.Run("tun", func(t *testing.T) {
		served(t, "http://10.0.100.13/", 5, []string{"rs5"}, "rs5")
	})
}

// 11. Shutdown with on_shutdown = "flush" removes exactly the managed
// services and leaves one created by hand with ipvsadm alone.
func Test11ShutdownFlush(t *testing.T) {
	guest(t)
	hand := fmt.Sprintf("ipvsadm -A -t 10.0.100.99:80 -s rr\nipvsadm -a -t 10.0.100.99:80 -r %s -m -w 3", rs(5).addr4(80))
	if err := rootNS.sh(hand); err != nil {
		t.Fatal(err)
	}
	handWant := dests("TCP 10.0.100.99:80", "rr", masq(rs(5), 3))
	d := startDirector(t, directorConfig("30s", "flush",
		webVS("web11", "10.0.100.11:80", "rr", "", rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"),
		webVS("web11b", "10.0.100.21:80", "rr", "", rs(3).addr4(80)+" 1")))
	waitTable(t, upWithin(), "managed services programmed, the hand-made one untouched", func(tb table) error {
		for _, c := range []func(table) error{
			dests("TCP 10.0.100.11:80", "rr", masq(rs(1), 1), masq(rs(2), 1)),
			dests("TCP 10.0.100.21:80", "rr", masq(rs(3), 1)),
			handWant,
		} {
			if err := c(tb); err != nil {
				return err
			}
		}
		return nil
	})
	served(t, "http://10.0.100.11/", 6, []string{"rs1", "rs2"}, "rs1", "rs2")
	served(t, "http://10.0.100.99/", 3, []string{"rs5"}, "rs5")

	if err := d.stop(); err != nil {
		t.Errorf("director exit on SIGTERM: %v", err)
	}
	tb := mustTable(t)
	if len(tb) != 1 {
		t.Errorf("after flush the table is %s; want only the hand-made TCP 10.0.100.99:80", tb)
	}
	if err := handWant(tb); err != nil {
		t.Errorf("the hand-made service changed: %v", err)
	}
	served(t, "http://10.0.100.99/", 3, []string{"rs5"}, "rs5")
	if _, err := cl.get("http://10.0.100.11/"); err == nil {
		t.Errorf("the flushed service still answers")
	}
}

// markedGet fetches url from the director's namespace with every packet
// marked, so the fwmark service takes the connection.
func markedGet(url string, mark int) (string, error) {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark)
		}); err != nil {
			return err
		}
		return serr
	}}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// lastReason is the reason of a real server's last check in the status
// API ("" when it has none).
func lastReason(t *testing.T, vs, rs string) string {
	t.Helper()
	var doc struct {
		VirtualServers []struct {
			Name        string `json:"name"`
			RealServers []struct {
				Address   string `json:"address"`
				LastCheck *struct {
					Reason string `json:"reason"`
				} `json:"last_check"`
			} `json:"real_servers"`
		} `json:"virtual_servers"`
	}
	getStatus(t, &doc)
	for _, v := range doc.VirtualServers {
		for _, r := range v.RealServers {
			if v.Name == vs && r.Address == rs && r.LastCheck != nil {
				return r.LastCheck.Reason
			}
		}
	}
	return ""
}
