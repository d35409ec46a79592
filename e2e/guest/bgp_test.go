//go:build linux

package guest

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lvsdirector/director/internal/logbuf"
	"golang.org/x/sys/unix"
)

// The BGP lab: several active directors behind a router, in namespaces of
// their own (apart from the other scenarios'), on one Ethernet segment:
//
//	router   br0 10.9.0.1, the segment's bridge joining every lan port below (BIRD 2:
//	         ECMP over the directors' routes, L4 hash); cl 10.9.1.1 <-> bclient 10.9.1.2
//	dirA     10.9.0.11, dirB 10.9.0.12: an IPVS table each, the VIP on lo
//	bk1..bk4 10.9.0.21..24: DR real servers, the VIP on lo, replies via the router
//
// The VIP 10.9.9.9 reaches a director only through the router's routes,
// which only the directors' announcements put there.
const (
	labVIP    = "10.9.9.9"
	routerIP  = "10.9.0.1"
	routerASN = 65000
	dirASN    = 65001
)

var labDirs = map[string]string{"dirA": "10.9.0.11", "dirB": "10.9.0.12"}

type bgpLab struct {
	router   *netns
	dirs     map[string]*netns
	backends []*backend
	client   *client
	birdCtl  string
	birdPath string // its config file
	bird     *exec.Cmd
	birdLog  *logbuf.Buffer
}

var (
	labOnce sync.Once
	lab     *bgpLab
	labErr  error
)

// theLab builds the lab once for every BGP scenario, or skips without BIRD.
func theLab(t *testing.T) *bgpLab {
	t.Helper()
	guest(t)
	if _, err := os.Stat("/usr/sbin/bird"); err != nil {
		t.Skip("no /usr/sbin/bird in the guest (the bird2 overlay)")
	}
	labOnce.Do(func() { lab, labErr = buildLab() })
	if labErr != nil {
		t.Fatalf("BGP lab: %v", labErr)
	}
	for _, b := range lab.backends {
		b.healthy.Store(true)
		if err := b.startHTTP(); err != nil {
			t.Fatal(err)
		}
	}
	return lab
}

// wire joins a and b with a veth pair named an (in a) and bn (in b).
func wire(a, b *netns, an, bn string) error {
	tmp := "w" + an + bn
	if len(tmp) > 15 {
		tmp = tmp[:15]
	}
	peer, err := addVeth(tmp)
	if err != nil {
		return err
	}
	if err := rootNS.sh(fmt.Sprintf("ip link set dev %s netns %d\nip link set dev %s netns %d", tmp, a.cmd.Process.Pid, peer, b.cmd.Process.Pid)); err != nil {
		return err
	}
	if err := a.sh(fmt.Sprintf("ip link set dev %s name %s\nip link set %s up", tmp, an, an)); err != nil {
		return err
	}
	return b.sh(fmt.Sprintf("ip link set dev %s name %s\nip link set %s up", peer, bn, bn))
}

const quiet = `sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
ip link set lo up
`

func buildLab() (*bgpLab, error) {
	l := &bgpLab{dirs: map[string]*netns{}, birdLog: &logbuf.Buffer{}}
	var err error
	if l.router, err = newNetns("router"); err != nil {
		return nil, err
	}
	// The segment is a bridge in the router's namespace, with the
	// router's address on it.
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(l.router.cmd.Process.Pid), "-n", "sh", "-ec",
		quiet+"ip link add br0 type bridge\nip addr add "+routerIP+"/24 dev br0\nip link set br0 up\nreadlink /proc/self/ns/net\nip link show br0").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("creating br0: %v: %s", err, out)
	}
	created := string(out)
	port := 0
	join := func(ns *netns, addr string) error {
		port++
		p := fmt.Sprintf("p%d", port)
		if err := wire(ns, l.router, "lan", p); err != nil {
			return err
		}
		if err := l.router.sh("ip link set " + p + " master br0"); err != nil {
			out, _ := exec.Command("nsenter", "-t", fmt.Sprint(l.router.cmd.Process.Pid), "-n", "ip", "link").CombinedOutput()
			self, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", l.router.cmd.Process.Pid))
			return fmt.Errorf("%w\nbr0 was created as:\n%s\nrouter (%s) holds:\n%s", err, created, self, out)
		}
		return ns.sh(quiet + "ip addr add " + addr + "/24 dev lan")
	}
	cns, err := newNetns("bclient")
	if err != nil {
		return nil, err
	}
	if err := wire(l.router, cns, "cl", "eth0"); err != nil {
		return nil, err
	}
	if err := l.router.sh(`ip addr add 10.9.1.1/24 dev cl
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1`); err != nil {
		return nil, err
	}
	if err := cns.sh(quiet + "ip addr add 10.9.1.2/24 dev eth0\nip route add default via 10.9.1.1"); err != nil {
		return nil, err
	}
	l.client = &client{ns: cns}
	for name, addr := range labDirs {
		ns, err := newNetns(name)
		if err != nil {
			return nil, err
		}
		if err := join(ns, addr); err != nil {
			return nil, err
		}
		if err := ns.sh("ip addr add " + labVIP + "/32 dev lo\nip route add default via " + routerIP + "\nsysctl -qw net.ipv4.vs.sloppy_tcp=1"); err != nil {
			return nil, err
		}
		l.dirs[name] = ns
	}
	for i := 1; i <= 4; i++ {
		ns, err := newNetns(fmt.Sprintf("bk%d", i))
		if err != nil {
			return nil, err
		}
		ip := fmt.Sprintf("10.9.0.%d", 20+i)
		if err := join(ns, ip); err != nil {
			return nil, err
		}
		if err := ns.sh("ip addr add " + labVIP + "/32 dev lo\nip route add default via " + routerIP); err != nil {
			return nil, err
		}
		b := &backend{name: fmt.Sprintf("bk%d", i), ns: ns, ip4: netip.MustParseAddr(ip)}
		b.healthy.Store(true)
		if err := b.startHTTP(); err != nil {
			return nil, err
		}
		l.backends = append(l.backends, b)
	}
	return l, l.startBird()
}

func (l *bgpLab) startBird() error {
	dir, err := os.MkdirTemp("", "bird")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "bird.conf")
	l.birdPath = path
	if err := os.WriteFile(path, []byte(birdConf(false)), 0o644); err != nil {
		return err
	}
	l.birdCtl = filepath.Join(dir, "bird.ctl")
	l.bird = exec.Command("nsenter", "-t", fmt.Sprint(l.router.cmd.Process.Pid), "-n",
		"/usr/sbin/bird", "-f", "-c", path, "-s", l.birdCtl, "-P", filepath.Join(dir, "bird.pid"))
	l.bird.Stdout, l.bird.Stderr = l.birdLog, l.birdLog
	if err := l.bird.Start(); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(l.birdCtl); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bird did not open its control socket:\n%s", l.birdLog)
}

// birdConf is the router's BIRD config: hold time 9s; with bfd, the
// sessions with the directors are watched by BFD (300ms x 5: emulation
// delays packets by up to a second now and then).
func birdConf(bfd bool) string {
	bfdProto, bfdOn := "", ""
	if bfd {
		bfdProto = "protocol bfd {\n  interface \"br0\" { min rx interval 300 ms; min tx interval 300 ms; multiplier 5; };\n}\n"
		bfdOn = "  bfd on;\n"
	}
	return fmt.Sprintf(`log stderr all;
router id %s;
protocol device { scan time 1; }
protocol kernel {
  ipv4 { import none; export all; };
  merge paths on;
}
%stemplate bgp director {
  local %s as %d;
  connect retry time 1;
  hold time 9;
%s  ipv4 { import all; export none; };
}
protocol bgp dirA from director { neighbor %s as %d; }
protocol bgp dirB from director { neighbor %s as %d; }
`, routerIP, bfdProto, routerIP, routerASN, bfdOn, labDirs["dirA"], dirASN, labDirs["dirB"], dirASN)
}

// reconfigureBird makes BIRD run birdConf(bfd).
func (l *bgpLab) reconfigureBird(t *testing.T, bfd bool) {
	t.Helper()
	if err := os.WriteFile(l.birdPath, []byte(birdConf(bfd)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := l.birdc("configure"); !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		t.Fatalf("birdc configure: %s", out)
	}
}

// birdc asks BIRD.
func (l *bgpLab) birdc(args ...string) string {
	out, err := exec.Command("/usr/sbin/birdc", append([]string{"-s", l.birdCtl}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("birdc %v: %v: %s", args, err, out)
	}
	return string(out)
}

// nextHops is the router's kernel route to the VIP: its next hops,
// sorted ("" when there is no route).
func (l *bgpLab) nextHops(t *testing.T) string {
	t.Helper()
	var hops []string
	err := l.router.do(func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		dst := netlink.NewIPNet(netip.MustParseAddr(labVIP).AsSlice())
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst, Table: 254}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Gw != nil {
				hops = append(hops, r.Gw.String())
			}
			for _, nh := range r.MultiPath {
				hops = append(hops, nh.Gw.String())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sortStrings(hops)
	return strings.Join(hops, ",")
}

// waitHops waits for the router's route to have exactly these next hops
// and returns how long it took.
func (l *bgpLab) waitHops(t *testing.T, within time.Duration, what string, want ...string) time.Duration {
	t.Helper()
	sortStrings(want)
	w := strings.Join(want, ",")
	start := time.Now()
	for {
		got := l.nextHops(t)
		if got == w {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: the router's route to %s goes via %q after %s, want %q\nbird:\n%s", what, labVIP, got, within, w, l.birdc("show", "route", "for", labVIP, "all"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// labDirector is a director running in its own namespace.
type labDirector struct {
	*director
	name  string
	maint string
}

// labMode is how a lab director announces.
type labMode int

const (
	speaker    labMode = iota // BGP to the router
	withBFD                   // BGP with BFD
	routeTable                // route-table mode instead of BGP
)

// labConfig is the config of director name: BGP to the router
// unless routeTable is set, mh over the four DR real servers.
func labConfig(name string, maint string, mode labMode) string {
	speaker := fmt.Sprintf(`[bgp]
asn = %d
router_id = %q
  [[bgp.peer]]
  address = %q
  asn = %d
  hold_time = "9s"
  bfd = %v
  bfd_interval = "300ms"
  bfd_multiplier = 5
`, dirASN, labDirs[name], routerIP, routerASN, mode == withBFD)
	if mode == routeTable {
		speaker = "[route_table]\ntable = 100\n"
	}
	var rss strings.Builder
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&rss, "  [[virtual_server.real_server]]\n  address = \"10.9.0.%d\"\n", 20+i)
	}
	return fmt.Sprintf(`[director]
listen = "127.0.0.1:9410"
maintenance_dir = %q

[announce]
hold_down = "1s"
withdraw_grace = "2s"

%s
[defaults.check]
# Slower than the other scenarios': 400 connections keep the emulated
# machine busy, and a check timing out on one director only would make
# the directors pick differently for that server's flows.
interval = "2s"
timeout = "1500ms"
rise = 2
fall = 5

[[virtual_server]]
name = "web"
address = "%s:80"
scheduler = "mh"
scheduler_flags = ["mh-fallback", "mh-port"]
forwarding = "dr"
announce = true
  [virtual_server.check]
  type = "http"
  path = "/healthz"
%s`, maint, speaker, labVIP, rss.String())
}

// startLabDirector runs director name in its namespace on cfg.
func (l *bgpLab) startLabDirector(t *testing.T, name string, mode labMode) *labDirector {
	t.Helper()
	dir := t.TempDir()
	maint := filepath.Join(dir, "maint")
	if err := os.Mkdir(maint, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "director.toml")
	if err := os.WriteFile(cfg, []byte(labConfig(name, maint, mode)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A fresh table: a previous scenario's director kept its own (on_shutdown = keep).
	if err := l.dirs[name].sh("ipvsadm -C"); err != nil {
		t.Fatal(err)
	}
	d := &director{t: t, cfg: cfg, log: &logbuf.Buffer{}}
	d.cmd = exec.Command("nsenter", "-t", fmt.Sprint(l.dirs[name].cmd.Process.Pid), "-n", os.Getenv("DIRECTOR_BIN"), "run", "-config", cfg, "-log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { d.err = cmd.Wait(); close(done) }(d.cmd, d.done)
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tailLines(d.log.String(), 150))
		}
	})
	return &labDirector{director: d, name: name, maint: maint}
}

// failPool takes every real server of this director out through its
// maintenance directory (the other director's pool stays healthy).
func (d *labDirector) failPool(t *testing.T, fail bool) {
	t.Helper()
	for i := 1; i <= 4; i++ {
		p := filepath.Join(d.maint, fmt.Sprintf("10.9.0.%d", 20+i))
		var err error
		if fail {
			err = os.WriteFile(p, []byte("disable: e2e pool failure on "+d.name+"\n"), 0o644)
		} else {
			err = os.Remove(p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// load sends requests through the VIP from the client, a new connection
// each, until stop is called; it returns the failures and the slowest.
func (l *bgpLab) load() (stop func() (ok, failed int, slowest time.Duration, errs []string)) {
	var halt atomic.Bool
	var okN, failN int
	var worst time.Duration
	var errs []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		hc := l.client.httpClient(5 * time.Second)
		for !halt.Load() {
			start := time.Now()
			resp, err := hc.Get("http://" + labVIP + "/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			took := time.Since(start)
			worst = max(worst, took)
			if err != nil {
				failN++
				if len(errs) < 5 {
					errs = append(errs, err.Error())
				}
			} else {
				okN++
			}
		}
	}()
	return func() (int, int, time.Duration, []string) {
		halt.Store(true)
		<-done
		return okN, failN, worst, errs
	}
}

// Issue 11, proofs 1, 2 and 6: both directors announce the VIP and the
// router's route has both as next hops; one director's pool failing
// withdraws only its route (and it comes back); a reload that does not
// touch the VIP sends the router no update and leaves the route's age.
func Test20BGPAnnounceWithdrawReload(t *testing.T) {
	l := theLab(t)
	a := l.startLabDirector(t, "dirA", speaker)
	b := l.startLabDirector(t, "dirB", speaker)
	took := l.waitHops(t, 60*time.Second, "both directors announce", labDirs["dirA"], labDirs["dirB"])
	t.Logf("both paths in the router's kernel route %s after start", took.Round(time.Millisecond))
	show := l.birdc("show", "route", "for", labVIP, "all")
	if !strings.Contains(show, "via "+labDirs["dirA"]) || !strings.Contains(show, "via "+labDirs["dirB"]) {
		t.Errorf("BIRD's RIB lacks a path:\n%s", show)
	}

	// Flows spread over both directors.
	served := map[string]int{}
	for range 40 {
		if body, err := l.client.get("http://" + labVIP + "/"); err != nil {
			t.Fatalf("through the VIP: %v", err)
		} else {
			served[body]++
		}
	}
	t.Logf("40 requests through the VIP: %v", served)
	oa, ob := destOrder(l.ipvsadmIn(t, "dirA")), destOrder(l.ipvsadmIn(t, "dirB"))
	if strings.Join(oa, ",") != strings.Join(ob, ",") || len(oa) != 4 {
		t.Errorf("the directors hold their destinations in different orders: A %v, B %v", oa, ob)
	}

	// Proof 2: A's pool fails there only.
	failed := time.Now()
	a.failPool(t, true)
	l.waitHops(t, 10*time.Second, "A's pool failed", labDirs["dirB"])
	t.Logf("A's route withdrawn %s after its pool failed (maintenance read every 1s)", time.Since(failed).Round(time.Millisecond))
	if !strings.Contains(a.log.String(), `msg="VIP withdrawn" vip=10.9.9.9 cause=pool_unhealthy`) {
		t.Errorf("A logged no withdraw with its cause")
	}
	if body, err := l.client.get("http://" + labVIP + "/"); err != nil || !strings.HasPrefix(body, "bk") {
		t.Errorf("through B alone: %q %v", body, err)
	}
	a.failPool(t, false)
	l.waitHops(t, 15*time.Second, "A's pool back", labDirs["dirA"], labDirs["dirB"])

	// Proof 6: a reload that does not touch the VIP.
	time.Sleep(2 * time.Second)
	before := l.birdc("show", "route", "for", labVIP, "all")
	updates := importUpdates(l.birdc("show", "protocols", "all", "dirB"))
	cfg, err := os.ReadFile(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.reload(string(cfg) + "\n[[virtual_server]]\nname = \"other\"\naddress = \"10.9.8.8:80\"\n  [[virtual_server.real_server]]\n  address = \"10.9.0.21:80\"\n")
	waitLog(t, b.director, `msg="config reloaded"`)
	time.Sleep(3 * time.Second)
	after := l.birdc("show", "route", "for", labVIP, "all")
	if got := importUpdates(l.birdc("show", "protocols", "all", "dirB")); got != updates || updates == "" {
		t.Errorf("the router's import updates from B went %q -> %q across an unrelated reload; want no update", updates, got)
	}
	if !sameAges(routeAges(before), routeAges(after)) {
		t.Errorf("the route changed across an unrelated reload:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// importUpdates is the "Import updates:" line of `birdc show protocols all`.
func importUpdates(s string) string {
	m := regexp.MustCompile(`Import updates:\s+(.*)`).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// routeAges is the time of every path in a `show route`, by protocol.
func routeAges(s string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range regexp.MustCompile(`\[(dir[AB]) (\d\d:\d\d:\d\d\.\d\d\d)\]`).FindAllStringSubmatch(s, -1) {
		if t, err := time.Parse("15:04:05.000", m[2]); err == nil {
			out[m[1]] = t
		}
	}
	return out
}

// sameAges compares route times allowing BIRD's display jitter (it turns
// its monotonic clock into wall time at each show: a millisecond or two).
func sameAges(a, b map[string]time.Time) bool {
	if len(a) != 2 || len(b) != 2 {
		return false
	}
	for k, t := range a {
		if d := b[k].Sub(t); d > 50*time.Millisecond || d < -50*time.Millisecond {
			return false
		}
	}
	return true
}

func waitLog(t *testing.T, d *director, want string) {
	t.Helper()
	deadline := time.Now().Add(slack)
	for !strings.Contains(d.log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 11, proof 3: SIGTERM one director under client load: its route
// is withdrawn in under a second and no request fails.
func Test21BGPSigtermUnderLoad(t *testing.T) {
	l := theLab(t)
	a := l.startLabDirector(t, "dirA", speaker)
	l.startLabDirector(t, "dirB", speaker)
	l.waitHops(t, 60*time.Second, "both directors announce", labDirs["dirA"], labDirs["dirB"])
	stop := l.load()
	time.Sleep(2 * time.Second)
	sent := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	took := l.waitHops(t, 5*time.Second, "A withdrawn on SIGTERM", labDirs["dirB"])
	<-a.done
	exited := time.Since(sent)
	time.Sleep(2 * time.Second)
	ok, failed, slowest, errs := stop()
	t.Logf("SIGTERM: the router's kernel route lost A %s after the signal; A exited after %s; %d requests, %d failed, slowest %s",
		took.Round(time.Millisecond), exited.Round(time.Millisecond), ok+failed, failed, slowest.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("withdraw took %s, want under 1s", took)
	}
	if failed > 0 || ok == 0 {
		t.Errorf("%d of %d requests failed across the SIGTERM: %v", failed, ok+failed, errs)
	}
}

// Issue 11, proof 7: route-table mode: the VIP is a route in table 100
// while the pool is healthy and goes when it fails.
func Test22RouteTableMode(t *testing.T) {
	l := theLab(t)
	a := l.startLabDirector(t, "dirA", routeTable)
	table100 := func() string {
		var got []string
		err := l.dirs["dirA"].do(func() error {
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return err
			}
			defer h.Close()
			rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
			for _, r := range rs {
				got = append(got, r.Dst.String())
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ",")
	}
	wait := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(slack + 5*time.Second)
		for table100() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: table 100 holds %q, want %q", what, table100(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("announced", labVIP+"/32")
	a.failPool(t, true)
	wait("withdrawn with the pool", "")
	a.failPool(t, false)
	wait("announced again", labVIP+"/32")
	a.stop()
	if got := table100(); got != "" {
		t.Errorf("table 100 holds %q after the director stopped", got)
	}
}

// holdConns opens n connections through the VIP and asks each once.
func (l *bgpLab) holdConns(t *testing.T, n int) []*heldConn {
	t.Helper()
	conns := make([]*heldConn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	sem := make(chan struct{}, 20)
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := l.client.ns.dial(ctx, "tcp", labVIP+":80")
			if err == nil {
				h := &heldConn{conn: c, br: bufio.NewReader(c), host: "vip"}
				if h.backend, err = h.get(); err == nil {
					conns[i] = h
					return
				}
				c.Close()
			}
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d connections could not be opened: %v", len(errs), n, errs[:min(len(errs), 3)])
	}
	t.Cleanup(func() {
		for _, h := range conns {
			h.conn.Close()
		}
	})
	return conns
}

// askAll asks on every connection at once (within timeout each; 0: the
// held connection's own 10s) and returns how many broke,
// how many were answered by another real server than before, and the
// slowest answer.
func askAll(conns []*heldConn, timeout time.Duration) (broken, moved int, slowest time.Duration, errs []string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, h := range conns {
		wg.Go(func() {
			start := time.Now()
			var who string
			var err error
			if timeout == 0 {
				who, err = h.get()
			} else {
				who, err = h.getWithin(timeout)
			}
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, took)
			switch {
			case err != nil:
				broken++
				if len(errs) < 3 {
					errs = append(errs, err.Error())
				}
			case who != h.backend:
				moved++
			}
		})
	}
	wg.Wait()
	return broken, moved, slowest, errs
}

// Issue 11, proofs 4 and 5: 400 long-lived connections spread over both
// directors; A is killed with SIGKILL (its BGP session closes, so the
// router withdraws at once) and the router sends A's flows to B, which
// takes them up mid-connection (sloppy_tcp) and picks the same real
// server for each (mh, same destinations in the same order): none
// breaks. Then, to show what sloppy_tcp does, the same with it off on B.
func Test23BGPFlowsSurviveDirectorDeath(t *testing.T) {
	l := theLab(t)
	a := l.startLabDirector(t, "dirA", speaker)
	l.startLabDirector(t, "dirB", speaker)
	l.waitHops(t, 60*time.Second, "both directors announce", labDirs["dirA"], labDirs["dirB"])
	l.waitAllServing(t, 30*time.Second, "dirA", "dirB")
	conns := l.holdConns(t, 400)
	if broken, moved, _, errs := askAll(conns, 0); broken+moved > 0 {
		t.Fatalf("before anything happened: %d broken, %d moved: %v", broken, moved, errs)
	}
	viaA := l.connsThrough(t, "dirA", conns)
	a.cmd.Process.Signal(syscall.SIGKILL)
	took := l.waitHops(t, 10*time.Second, "A's route withdrawn after SIGKILL", labDirs["dirB"])
	broken, moved, slowest, errs := askAll(conns, 0)
	t.Logf("SIGKILL: the router's kernel route lost A %s after the kill; %d connections (%d through A): %d broken, %d answered by another real server, slowest answer %s",
		took.Round(time.Millisecond), len(conns), viaA, broken, moved, slowest.Round(time.Millisecond))
	if broken+moved > 0 || viaA == 0 {
		t.Errorf("%d broken, %d moved to another real server (want none; %d went through A): %v", broken, moved, viaA, errs)
	}

	// Without sloppy_tcp on B, B resets what it did not see start.
	if err := l.dirs["dirB"].sh("sysctl -qw net.ipv4.vs.sloppy_tcp=0"); err != nil {
		t.Fatal(err)
	}
	defer l.dirs["dirB"].sh("sysctl -qw net.ipv4.vs.sloppy_tcp=1")
	a2 := l.startLabDirector(t, "dirA", speaker)
	l.waitHops(t, 60*time.Second, "A back", labDirs["dirA"], labDirs["dirB"])
	l.waitAllServing(t, 30*time.Second, "dirA", "dirB")
	conns = l.holdConns(t, 100)
	viaA = l.connsThrough(t, "dirA", conns)
	a2.cmd.Process.Signal(syscall.SIGKILL)
	l.waitHops(t, 10*time.Second, "A's route withdrawn after SIGKILL", labDirs["dirB"])
	broken, moved, _, _ = askAll(conns, 0)
	t.Logf("sloppy_tcp=0 on B: %d connections (%d through A): %d broken, %d moved", len(conns), viaA, broken, moved)
	if viaA > 0 && broken == 0 {
		t.Errorf("with sloppy_tcp=0 on B none of the %d connections through A broke; the proof above shows nothing", viaA)
	}
}

// ipvsadmIn is `ipvsadm -Ln` in a director's namespace.
func (l *bgpLab) ipvsadmIn(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(l.dirs[name].cmd.Process.Pid), "-n", "ipvsadm", "-Ln").CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm in %s: %v: %s", name, err, out)
	}
	return string(out)
}

// waitAllServing waits until every named director's kernel table has all
// four real servers at a weight above 0. A director announces the VIP
// with one server up; until the others are up too its Maglev table
// differs from its peer's, and a flow moved between them then lands on
// another real server: the proof needs both tables the same first.
func (l *bgpLab) waitAllServing(t *testing.T, within time.Duration, names ...string) {
	t.Helper()
	for _, name := range names {
		for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
			out := l.ipvsadmIn(t, name)
			tb, err := parseIpvsadm(out)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			serving := 0
			for _, s := range tb {
				for _, d := range s.dests {
					if d.weight > 0 {
						serving++
					}
				}
			}
			if serving == 4 {
				break
			}
			if time.Since(start) > within {
				t.Fatalf("%s: %d of 4 real servers serving after %s:\n%s", name, serving, within, out)
			}
		}
	}
}

// destOrder is the destinations of `ipvsadm -Ln` in the kernel's list
// order, the order the Maglev table is built in.
func destOrder(out string) []string {
	var order []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			order = append(order, f[1])
		}
	}
	return order
}

// connsThrough counts the connections of conns that a director's IPVS
// holds as established (its connection table, by the client's port).
func (l *bgpLab) connsThrough(t *testing.T, name string, conns []*heldConn) int {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(l.dirs[name].cmd.Process.Pid), "-n", "ipvsadm", "-Lnc").CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -Lnc in %s: %v: %s", name, err, out)
	}
	ours := map[string]bool{}
	for _, h := range conns {
		ours[h.conn.LocalAddr().String()] = true
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 6 && f[2] == "ESTABLISHED" && ours[f[3]] {
			n++
		}
	}
	return n
}

// Issue 11, proof 4 (the link): director A's link dies with 100
// connections open; the router withdraws A when the hold timer (9s)
// expires, or when BFD (300ms x 5) says so. Reported: the time to
// withdraw, connections broken, the longest stall of a request.
func Test24BGPLinkDeath(t *testing.T) {
	l := theLab(t)
	for _, tc := range []struct {
		name string
		mode labMode
	}{{"hold timer", speaker}, {"BFD", withBFD}} {
		t.Run(tc.name, func(t *testing.T) {
			l.reconfigureBird(t, tc.mode == withBFD)
			defer l.reconfigureBird(t, false)
			l.startLabDirector(t, "dirA", tc.mode)
			l.startLabDirector(t, "dirB", tc.mode)
			l.waitHops(t, 60*time.Second, "both directors announce", labDirs["dirA"], labDirs["dirB"])
			if tc.mode == withBFD {
				deadline := time.Now().Add(30 * time.Second)
				for !strings.Contains(l.birdc("show", "bfd", "sessions"), "Up") {
					if time.Now().After(deadline) {
						t.Fatalf("no BFD session up:\n%s", l.birdc("show", "bfd", "sessions"))
					}
					time.Sleep(200 * time.Millisecond)
				}
				t.Logf("BIRD's BFD sessions:\n%s", l.birdc("show", "bfd", "sessions"))
			}
			l.waitAllServing(t, 30*time.Second, "dirA", "dirB")
			conns := l.holdConns(t, 100)
			viaA := l.connsThrough(t, "dirA", conns)
			if err := l.dirs["dirA"].sh("ip link set lan down"); err != nil {
				t.Fatal(err)
			}
			defer l.dirs["dirA"].sh("ip link set lan up\nip route replace default via " + routerIP)
			// Ask while the route still points at the dead director:
			// these requests stall until the router moves the flows.
			type result struct {
				broken, moved int
				slowest       time.Duration
				errs          []string
			}
			res := make(chan result, 1)
			go func() {
				b, m, s, e := askAll(conns, 40*time.Second) // TCP backs off while the route points at the dead director
				res <- result{b, m, s, e}
			}()
			took := l.waitHops(t, 20*time.Second, "A withdrawn after its link died", labDirs["dirB"])
			r := <-res
			t.Logf("%s: A's link down: the router withdrew A after %s; %d connections (%d through A): %d broken, %d moved, longest stall %s",
				tc.name, took.Round(time.Millisecond), len(conns), viaA, r.broken, r.moved, r.slowest.Round(time.Millisecond))
			if r.broken+r.moved > 0 {
				t.Errorf("%d connections broke and %d were answered by another real server after the move: %v", r.broken, r.moved, r.errs)
			}
			// BFD detects in 1.5s; emulation adds up to a second or so.
			// The hold timer alone takes 6-9s here.
			if tc.mode == withBFD && took > 5*time.Second {
				t.Errorf("with BFD the router took %s to withdraw A", took)
			}
		})
	}
}
