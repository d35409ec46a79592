//go:build linux

package guest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/api"
	"github.com/lvsdirector/director/internal/logbuf"
)

// The active-backup pair of issue 12, on the real kernel: two director
// namespaces, each running the director and keepalived (VRRP only, v3,
// advert_int 0.2s, its keepalived.conf printed by director vrrp-config),
// the client and three DR real servers on one bridge:
//
//	client 10.0.200.2   A 10.0.200.11   B 10.0.200.12   rs 10.0.200.21-23
//	VIP 10.0.200.100: web on :80 (http checks), echo on :9000 (tcp checks)
//
// A has priority 150, B 120, healthy_value 60: healthy A 210 > healthy B
// 180 > A without its bonus 150. Sync daemons both-always (A sends with
// id 1, B with 2). The scenarios run in order on one pair.

const (
	haVIP       = "10.0.200.100"
	haEchoConns = 400
)

type haDirector struct {
	name     string // "a" or "b"
	ip       string
	priority int
	syncID   int
	peerID   int
	ns       *netns
	dir      string
	director *exec.Cmd
	dlog     *logbuf.Buffer
	ka       *exec.Cmd
	klog     *logbuf.Buffer
	kdone    chan struct{}
}

type haRS struct {
	name string
	ip   string
	ns   *netns
	// failFor holds the directors whose checks fail ("a", "b").
	failFor sync.Map
}

type haWorld struct {
	t      *testing.T
	lan    *netns
	client *netns
	a, b   *haDirector
	rss    []*haRS
}

func TestVRRPPair(t *testing.T) {
	guest(t)
	if _, err := exec.LookPath("keepalived"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no keepalived in the guest")
		}
		t.Skip("no keepalived in the guest (the e2e suite fetches it with apt)")
	}
	w := newHAWorld(t)

	t.Run("1_master_and_backup", func(t *testing.T) {
		w.startDirector(t, w.a)
		w.startDirector(t, w.b)
		w.startKeepalived(t, w.a)
		w.startKeepalived(t, w.b)
		w.waitRole(t, w.a, "MASTER", 60*time.Second)
		w.waitRole(t, w.b, "BACKUP", 10*time.Second)
		// Both directors keep the same table ready.
		for _, d := range []*haDirector{w.a, w.b} {
			waitFor(t, 20*time.Second, d.name+"'s table with every real server up", func() error {
				out, err := d.ns.out("ipvsadm -Ln")
				if err != nil {
					return err
				}
				if n := strings.Count(out, "Route   1"); n != 6 {
					return fmt.Errorf("%d real servers at weight 1 by DR, want 6:\n%s", n, out)
				}
				return nil
			})
		}
		ta, _ := w.a.ns.out("ipvsadm -Ln")
		tb, _ := w.b.ns.out("ipvsadm -Ln")
		if stripCounters(ta) != stripCounters(tb) {
			t.Errorf("the tables differ:\nA:\n%s\nB:\n%s", ta, tb)
		}
		if !w.a.hasVIP(t) || w.b.hasVIP(t) {
			t.Errorf("the VIP is on A: %v, on B: %v; want A only", w.a.hasVIP(t), w.b.hasVIP(t))
		}
		st := w.status(t, w.b)
		if st.VRRP == nil || len(st.VRRP.SyncDaemons) != 2 || !st.VRRP.Health.Healthy || st.VRRP.TrackValue == nil || *st.VRRP.TrackValue != 60 {
			t.Errorf("B's vrrp status: %+v", st.VRRP)
		}
		w.requests(t, "through A", 30)
	})

	t.Run("3_unhealthy_director_hands_over", func(t *testing.T) {
		conns := w.openEcho(t, 100)
		w.waitSynced(t, w.b, 100)
		start := time.Now()
		for _, r := range w.rss {
			r.failFor.Store("a", true)
		}
		w.waitRole(t, w.b, "MASTER", downWithin()+10*time.Second)
		t.Logf("A's pools failed its checks: B MASTER after %.2fs (3 failed checks at 1s, then the track file and VRRP)", time.Since(start).Seconds())
		if st := w.status(t, w.a); st.VRRP == nil || st.VRRP.Health.Healthy || st.VRRP.Health.Cause != "pools_low" {
			t.Errorf("A's health: %+v", st.VRRP)
		}
		if v := readFile(filepath.Join(w.a.dir, "track")); v != "0" {
			t.Errorf("A's track file holds %q, want 0", v)
		}
		w.requests(t, "through B", 30)
		survived := w.echoAll(t, conns)
		t.Logf("connections opened through A, after B took over: %d of %d survived", survived, len(conns))
		if survived != len(conns) {
			t.Errorf("%d of %d connections broke", len(conns)-survived, len(conns))
		}
		closeAll(conns)
	})

	t.Run("5_fail_back_keeps_connections_opened_on_B", func(t *testing.T) {
		conns := w.openEcho(t, 100)
		w.waitSynced(t, w.a, 100) // A's backup daemon (id 2) installs what B's master sends
		start := time.Now()
		for _, r := range w.rss {
			r.failFor.Delete("a")
		}
		w.waitRole(t, w.a, "MASTER", upWithin()+10*time.Second)
		w.waitRole(t, w.b, "BACKUP", 5*time.Second)
		t.Logf("A healthy again: MASTER again after %.2fs", time.Since(start).Seconds())
		survived := w.echoAll(t, conns)
		t.Logf("connections opened through B, after fail-back to A: %d of %d survived", survived, len(conns))
		if survived != len(conns) {
			t.Errorf("%d of %d connections broke on fail-back", len(conns)-survived, len(conns))
		}
		closeAll(conns)
	})

	t.Run("2_4_keepalived_killed_takeover_and_sync", func(t *testing.T) {
		conns := w.openEcho(t, haEchoConns)
		w.waitSynced(t, w.b, haEchoConns)
		out, _ := w.b.ns.out("ipvsadm -Lnc")
		t.Logf("B's connection table before the kill: %d ESTABLISHED entries for the echo service", countEstablished(out))

		probe := startProbe(w, haVIP+":80")
		time.Sleep(time.Second)
		// A dies: its keepalived is killed and its link goes down with
		// it (without that, A keeps the VIP and forwards on).
		killed := time.Now()
		w.killKeepalived(t, w.a)
		if err := w.a.ns.sh("ip link set eth0 down"); err != nil {
			t.Fatal(err)
		}
		master := w.waitRole(t, w.b, "MASTER", 10*time.Second)
		t.Logf("A died (keepalived killed, link down): B reports MASTER after %.2fs", master.Sub(killed).Seconds())
		time.Sleep(2 * time.Second)
		gap, failed, total := probe.stop()
		t.Logf("client requests every 20ms: %d of %d failed, longest gap without an answer %.2fs", failed, total, gap.Seconds())
		if gap > 2*time.Second {
			t.Errorf("the VIP was unreachable for %.2fs, want at most 2s", gap.Seconds())
		}
		survived := w.echoAll(t, conns)
		t.Logf("long-lived connections after the takeover: %d of %d survived", survived, len(conns))
		if survived != len(conns) {
			t.Errorf("%d of %d connections broke", len(conns)-survived, len(conns))
		}
		closeAll(conns)
		// A comes back, as after a reboot: without the VIP keepalived left.
		if err := w.a.ns.sh("ip addr del " + haVIP + "/32 dev eth0\nip link set eth0 up"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("6_split_brain", func(t *testing.T) {
		w.startKeepalived(t, w.a) // A comes back and, healthy, takes the VIP again
		w.waitRole(t, w.a, "MASTER", 30*time.Second)
		// B hears A's adverts within a few intervals; under emulation on a
		// busy host that takes seconds, not the 0.6 s measured when idle.
		w.waitRole(t, w.b, "BACKUP", 15*time.Second)
		// Cut A and B off from each other on the bridge (isolated ports
		// reach every other port but not each other): VRRP and the sync
		// traffic are lost, the client and the real servers still reach
		// both. busybox has no bridge tool: the flag is set through a
		// sysfs mounted from the bridge's namespace.
		brsys := filepath.Join(t.TempDir(), "sys")
		if err := w.lan.sh("mkdir -p " + brsys + "\nmount -t sysfs sysfs " + brsys); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Command("umount", brsys).Run() })
		split := func(on string) {
			t.Helper()
			for _, port := range []string{"ha-da", "ha-db"} {
				if err := os.WriteFile(filepath.Join(brsys, "class/net", port, "brport/isolated"), []byte(on), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		split("1")
		w.waitRole(t, w.b, "MASTER", 10*time.Second)
		if st := w.status(t, w.a); st.VRRP == nil || st.VRRP.Role != "MASTER" {
			t.Fatalf("A during the split: %+v", st.VRRP)
		}
		t.Logf("VRRP dropped between A and B: both MASTER, the VIP on A: %v, on B: %v", w.a.hasVIP(t), w.b.hasVIP(t))
		healed := time.Now()
		split("0")
		w.waitRole(t, w.b, "BACKUP", 10*time.Second)
		t.Logf("healed: B BACKUP again after %.2fs", time.Since(healed).Seconds())
		st := w.status(t, w.a)
		if st.VRRP == nil || st.VRRP.Role != "MASTER" {
			t.Errorf("A after the split: %+v; want MASTER", st.VRRP)
		}
		// keepalived tells A of the second master only when A hears B's
		// advert before B hears A's and steps down; which comes first is
		// a race. When it did tell, the director must have said so.
		switch logged := strings.Contains(w.a.dlog.String(), "another MASTER is on the link"); {
		case st.VRRP != nil && st.VRRP.LowerPriorityMaster != nil && !logged:
			t.Error("A's keepalived reported the second master, and A's director did not log it")
		case st.VRRP != nil && st.VRRP.LowerPriorityMaster == nil:
			t.Logf("B stepped down before A heard its adverts: keepalived reported no second master to A")
		}
		if !w.a.hasVIP(t) || w.b.hasVIP(t) {
			t.Errorf("after the split the VIP is on A: %v, on B: %v; want A only", w.a.hasVIP(t), w.b.hasVIP(t))
		}
		// The client's ARP cache converges on A (A sends gratuitous ARPs
		// again when it hears the lower-priority master).
		waitFor(t, 10*time.Second, "requests served after the split", func() error {
			_, err := (&client{ns: w.client}).get("http://" + haVIP + "/")
			return err
		})
		w.requests(t, "after the split", 30)
	})
}

func newHAWorld(t *testing.T) *haWorld {
	t.Helper()
	w := &haWorld{t: t}
	var err error
	if w.lan, err = newNetns("ha-lan"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.lan.cmd.Process.Kill(); w.lan.cmd.Wait() })
	if out, err := w.lan.out("ip link add br0 type bridge\nip link set br0 up\nip link show br0"); err != nil {
		mods, _ := os.ReadFile("/proc/modules")
		t.Fatalf("no bridge (is the bridge module loaded?): %v\n%s\n/proc/modules:\n%s", err, out, mods)
	}
	join := func(name, ip string) *netns {
		ns, err := newNetns(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.cmd.Process.Kill(); ns.cmd.Wait() })
		if err := haLink(w.lan, ns, "ha-"+name, ip); err != nil {
			t.Fatal(err)
		}
		return ns
	}
	w.client = join("c", "10.0.200.2")
	for i := 1; i <= 3; i++ {
		r := &haRS{name: fmt.Sprintf("hrs%d", i), ip: fmt.Sprintf("10.0.200.%d", 20+i)}
		r.ns = join(r.name, r.ip)
		if err := r.ns.sh(`ip addr add ` + haVIP + `/32 dev lo
sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2`); err != nil {
			t.Fatal(err)
		}
		r.serve(t)
		w.rss = append(w.rss, r)
	}
	w.a = &haDirector{name: "a", ip: "10.0.200.11", priority: 150, syncID: 1, peerID: 2}
	w.b = &haDirector{name: "b", ip: "10.0.200.12", priority: 120, syncID: 2, peerID: 1}
	for _, d := range []*haDirector{w.a, w.b} {
		d.ns = join("d"+d.name, d.ip)
		d.dir = t.TempDir()
	}
	t.Cleanup(func() {
		for _, d := range []*haDirector{w.a, w.b} {
			d.stop(t)
		}
	})
	return w
}

// haLink joins ns to the bridge in lan with a veth pair; ns's end is
// eth0 with ip/24.
func haLink(lan, ns *netns, name, ip string) error {
	peer, err := addVeth(name)
	if err != nil {
		return err
	}
	if err := rootNS.sh(fmt.Sprintf("ip link set dev %s netns %d\nip link set dev %s netns %d", name, lan.cmd.Process.Pid, peer, ns.cmd.Process.Pid)); err != nil {
		return err
	}
	if err := lan.sh(fmt.Sprintf("brctl addif br0 %s\nip link set %s up", name, name)); err != nil {
		return err
	}
	return ns.sh(fmt.Sprintf("ip link set lo up\nip link set dev %s name eth0\nip addr add %s/24 dev eth0\nip link set eth0 up", peer, ip))
}

// out runs a shell command in the namespace and returns its output.
func (n *netns) out(script string) (string, error) {
	cmd := exec.Command("nsenter", "-t", fmt.Sprint(n.cmd.Process.Pid), "-n", "sh", "-ec", script)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return string(b), fmt.Errorf("in %s: %s: %v: %s", n.name, script, err, b)
	}
	return string(b), nil
}

// serve runs the real server: HTTP on :80 ("/" answers its name,
// /check/a and /check/b answer "ok" unless that director's checks are
// made to fail) and a line echo on :9000.
func (r *haRS) serve(t *testing.T) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/check/{d}", func(w http.ResponseWriter, req *http.Request) {
		if _, fail := r.failFor.Load(req.PathValue("d")); fail {
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, r.name+"\n") })
	var web, echo net.Listener
	if err := r.ns.do(func() (err error) {
		if web, err = net.Listen("tcp", ":80"); err != nil {
			return err
		}
		echo, err = net.Listen("tcp", ":9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(web)
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { srv.Close(); echo.Close() })
}

func (w *haWorld) directorConfig(d *haDirector) string {
	var rs80, rs9000 strings.Builder
	for _, r := range w.rss {
		fmt.Fprintf(&rs80, "  [[virtual_server.real_server]]\n  address = \"%s:80\"\n", r.ip)
		fmt.Fprintf(&rs9000, "  [[virtual_server.real_server]]\n  address = \"%s:9000\"\n", r.ip)
	}
	return fmt.Sprintf(`[director]
listen = %q
state_file = %q

%s
[[virtual_server]]
name = "web"
address = "%s:80"
scheduler = "rr"
forwarding = "dr"
  [virtual_server.check]
  type = "http"
  path = "/check/%s"
  expect_body = "ok"
%s
[[virtual_server]]
name = "echo"
address = "%s:9000"
scheduler = "rr"
forwarding = "dr"
  [virtual_server.check]
  type = "http"
  port = 80
  path = "/check/%s"
  expect_body = "ok"
%s
[vrrp]
notify_fifo = %q
track_file = %q
healthy_value = 60
unhealthy_after = "2s"
min_pool_share = 0.5
interface = "eth0"
advert_int = "200ms"
unicast_src = %q
peers = [%q]
  [[vrrp.instance]]
  name = "VI_1"
  virtual_router_id = 51
  priority = %d
  [vrrp.sync]
  mode = "both-always"
  sync_id = %d
  peer_sync_id = %d
`, metricsAddr, filepath.Join(d.dir, "state.json"), checkDefaults, haVIP, d.name, rs80.String(), haVIP, d.name, rs9000.String(),
		filepath.Join(d.dir, "keepalived.fifo"), filepath.Join(d.dir, "track"), d.ip, w.peer(d).ip, d.priority, d.syncID, d.peerID)
}

func (w *haWorld) peer(d *haDirector) *haDirector {
	if d == w.a {
		return w.b
	}
	return w.a
}

func (w *haWorld) startDirector(t *testing.T, d *haDirector) {
	t.Helper()
	cfg := filepath.Join(d.dir, "director.toml")
	if err := os.WriteFile(cfg, []byte(w.directorConfig(d)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.dlog = &logbuf.Buffer{}
	d.director = exec.Command("nsenter", "-t", fmt.Sprint(d.ns.cmd.Process.Pid), "-n", os.Getenv("DIRECTOR_BIN"), "run", "-config", cfg, "-log-level", "debug")
	d.director.Stdout, d.director.Stderr = d.dlog, d.dlog
	if err := d.director.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, d.name+"'s director ready", func() error {
		_, err := w.get(d, "/readyz")
		return err
	})
}

func (w *haWorld) startKeepalived(t *testing.T, d *haDirector) {
	t.Helper()
	conf := filepath.Join(d.dir, "keepalived.conf")
	out, err := exec.Command(os.Getenv("DIRECTOR_BIN"), "vrrp-config", "-config", filepath.Join(d.dir, "director.toml")).CombinedOutput()
	if err != nil {
		t.Fatalf("director vrrp-config: %v\n%s", err, out)
	}
	if err := os.WriteFile(conf, out, 0o644); err != nil {
		t.Fatal(err)
	}
	d.klog = &logbuf.Buffer{}
	d.ka = exec.Command("nsenter", "-t", fmt.Sprint(d.ns.cmd.Process.Pid), "-n", "keepalived", "-P", "-n", "-l", "-D",
		"-f", conf, "-p", filepath.Join(d.dir, "keepalived.pid"), "-r", filepath.Join(d.dir, "vrrp.pid"))
	d.ka.Stdout, d.ka.Stderr = d.klog, d.klog
	if err := d.ka.Start(); err != nil {
		t.Fatal(err)
	}
	d.kdone = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.ka, d.kdone)
}

// killKeepalived kills A's keepalived as a crash would: the parent is
// stopped first, so it cannot restart its VRRP child, then both get SIGKILL.
func (w *haWorld) killKeepalived(t *testing.T, d *haDirector) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "vrrp.pid"))
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	parent := d.ka.Process.Pid // nsenter execs keepalived: the same process
	syscall.Kill(parent, syscall.SIGSTOP)
	syscall.Kill(child, syscall.SIGKILL)
	syscall.Kill(parent, syscall.SIGKILL)
	<-d.kdone
}

func (d *haDirector) stop(t *testing.T) {
	if d.ka != nil {
		select {
		case <-d.kdone:
		default:
			d.ka.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.kdone:
			case <-time.After(10 * time.Second):
				d.ka.Process.Kill()
				<-d.kdone
			}
		}
	}
	if d.director != nil && d.director.ProcessState == nil {
		d.director.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.director.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			d.director.Process.Kill()
			<-done
		}
	}
	if t.Failed() {
		if d.dlog != nil {
			t.Logf("director %s log:\n%s", d.name, tailLines(d.dlog.String(), 150))
		}
		if d.klog != nil {
			t.Logf("keepalived %s log:\n%s", d.name, tailLines(d.klog.String(), 80))
		}
	}
}

func (d *haDirector) hasVIP(t *testing.T) bool {
	t.Helper()
	out, err := d.ns.out("ip -4 addr show dev eth0")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, haVIP+"/32")
}

// get fetches a path of the director's API inside its namespace.
func (w *haWorld) get(d *haDirector, path string) ([]byte, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.ns.dial, DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + metricsAddr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: %s", path, resp.Status)
	}
	return body, err
}

func (w *haWorld) status(t *testing.T, d *haDirector) api.StatusV1 {
	t.Helper()
	body, err := w.get(d, "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st api.StatusV1
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitRole waits until d's director reports role, and returns when it
// first saw it.
func (w *haWorld) waitRole(t *testing.T, d *haDirector, role string, within time.Duration) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, within, d.name+" "+role, func() error {
		body, err := w.get(d, "/api/v1/status")
		if err != nil {
			return err
		}
		var st api.StatusV1
		if err := json.Unmarshal(body, &st); err != nil {
			return err
		}
		if st.VRRP == nil || st.VRRP.Role != role {
			return fmt.Errorf("role %+v", st.VRRP)
		}
		at = time.Now()
		return nil
	})
	return at
}

// requests makes n requests to the web VIP from the client, each on a
// new connection; all must succeed.
func (w *haWorld) requests(t *testing.T, what string, n int) {
	t.Helper()
	c := &client{ns: w.client}
	counts := map[string]int{}
	var errs []string
	for range n {
		body, err := c.get("http://" + haVIP + "/")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		counts[body]++
	}
	all := []string{"hrs1", "hrs2", "hrs3"}
	checkServed(t, what, n, counts, errs, all, all)
}

// openEcho opens n connections to the echo VIP from the client, each
// proven with one line.
func (w *haWorld) openEcho(t *testing.T, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := w.client.dial(ctx, "tcp", haVIP+":9000")
		cancel()
		if err != nil {
			closeAll(conns)
			t.Fatalf("connection %d: %v", i, err)
		}
		if err := echoLine(c, fmt.Sprintf("hello %d", i), 5*time.Second); err != nil {
			closeAll(conns)
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// echoAll sends one more line on every connection at once and counts the
// ones that echo it within 30s (a moved VIP costs TCP retransmissions).
func (w *haWorld) echoAll(t *testing.T, conns []net.Conn) int {
	t.Helper()
	var ok atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i, c := range conns {
		wg.Go(func() {
			if err := echoLine(c, fmt.Sprintf("again %d", i), 30*time.Second); err != nil {
				firstErr.CompareAndSwap(nil, fmt.Sprintf("connection %d: %v", i, err))
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		t.Logf("first broken connection: %s", e)
	}
	return int(ok.Load())
}

func echoLine(c net.Conn, line string, within time.Duration) error {
	c.SetDeadline(time.Now().Add(within))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != line {
		return fmt.Errorf("echoed %q, want %q", got, line)
	}
	return nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// waitSynced waits until d's connection table holds n ESTABLISHED entries
// for the echo service: the peer's master daemon has sent them.
func (w *haWorld) waitSynced(t *testing.T, d *haDirector, n int) {
	t.Helper()
	start := time.Now()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d echo connections synced to %s", n, d.name), func() error {
		out, err := d.ns.out("ipvsadm -Lnc")
		if err != nil {
			return err
		}
		if got := countEstablished(out); got < n {
			return fmt.Errorf("%d ESTABLISHED entries", got)
		}
		return nil
	})
	t.Logf("%d connections synced to %s within %.1fs", n, d.name, time.Since(start).Seconds())
}

func countEstablished(ipvsadmLnc string) int {
	n := 0
	for _, line := range strings.Split(ipvsadmLnc, "\n") {
		if strings.Contains(line, "ESTABLISHED") && strings.Contains(line, haVIP+":9000") {
			n++
		}
	}
	return n
}

// stripCounters drops ipvsadm -Ln's connection counters.
func stripCounters(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == "->" {
			f = f[:4]
		}
		out = append(out, strings.Join(f, " "))
	}
	return strings.Join(out, "\n")
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// probe makes a request to addr every 20ms from the client, each on a new
// connection with a short timeout, and measures the longest time without
// a successful answer.
type probe struct {
	stopc  chan struct{}
	done   chan struct{}
	gap    time.Duration
	failed int
	total  int
}

func startProbe(w *haWorld, addr string) *probe {
	p := &probe{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		hc := (&client{ns: w.client}).httpClient(300 * time.Millisecond)
		lastOK := time.Now()
		for {
			select {
			case <-p.stopc:
				p.gap = max(p.gap, time.Since(lastOK))
				return
			case <-time.After(20 * time.Millisecond):
			}
			p.total++
			resp, err := hc.Get("http://" + addr + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					now := time.Now()
					p.gap = max(p.gap, now.Sub(lastOK))
					lastOK = now
					continue
				}
			}
			p.failed++
		}
	}()
	return p
}

func (p *probe) stop() (time.Duration, int, int) {
	close(p.stopc)
	<-p.done
	return p.gap, p.failed, p.total
}
