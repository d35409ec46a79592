//go:build linux

package guest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/logbuf"
	"github.com/lvsdirector/director/internal/testutil"
)

// Check timing for every scenario: short, so the suite is quick even
// under emulation; assertions allow for TCG's noise with slack.
const (
	interval = time.Second
	timeout  = 900 * time.Millisecond
	rise     = 2
	fall     = 3
	slack    = 10 * time.Second
)

// checkDefaults is the [defaults.check] every scenario's config starts with.
var checkDefaults = fmt.Sprintf(`[defaults.check]
interval = %q
timeout = %q
rise = %d
fall = %d
`, interval, timeout, rise, fall)

const metricsAddr = "127.0.0.1:9410"

var (
	inGuest  = os.Getenv("DIRECTOR_E2E_GUEST") == "1"
	setupErr error

	cl       *client
	backends []*backend // rs1..rs6 at index 0..5

	goodCert, badCert *tls.Certificate
	caPEM             []byte // the CA that signed goodCert
)

// certName is the name the backends' good certificate is for.
const certName = "backend.e2e.test"

func TestMain(m *testing.M) {
	if inGuest {
		setupErr = setup()
		if setupErr != nil {
			fmt.Println("guest setup failed:", setupErr)
		}
	}
	os.Exit(m.Run())
}

// guest skips outside the VM and fails when the guest could not be set up.
func guest(t *testing.T) {
	t.Helper()
	if !inGuest {
		t.Skip("runs only inside the e2e VM (go test ./e2e/ boots it)")
	}
	if setupErr != nil {
		t.Fatalf("guest setup: %v", setupErr)
	}
	if err := cleanSlate(); err != nil {
		t.Fatal(err)
	}
}

func setup() error {
	if _, err := exec.LookPath("ipvsadm"); err != nil {
		return err
	}
	if _, err := os.Stat(os.Getenv("DIRECTOR_BIN")); err != nil {
		return fmt.Errorf("DIRECTOR_BIN: %w", err)
	}
	for name, v := range map[string]string{
		"net.ipv4.ip_forward":                "1",
		"net.ipv6.conf.all.forwarding":       "1",
		"net.ipv6.conf.default.accept_dad":   "0",
		"net.ipv6.conf.all.accept_dad":       "0",
		"net.ipv4.conf.all.rp_filter":        "0",
		"net.ipv4.conf.default.rp_filter":    "0",
		"net.ipv4.conf.all.accept_local":     "1", // DR replies come back with the VIP, a local address, as source
		"net.ipv4.conf.default.accept_local": "1",
		"net.ipv4.ping_group_range":          "0 2147483647", // unprivileged ICMP checks
	} {
		if err := writeSysctl(name, v); err != nil {
			return fmt.Errorf("sysctl %s: %w", name, err)
		}
	}
	if err := rootNS.sh(`ip route add local 10.0.100.0/24 dev lo
ip -6 route add local fd00:100::/64 dev lo`); err != nil {
		return err
	}
	if err := makeCerts(); err != nil {
		return err
	}
	ns, err := newNetns("client")
	if err != nil {
		return err
	}
	if err := link(ns, "cl", "10.0.1.1", "10.0.1.2", "fd00:1::1", "fd00:1::2"); err != nil {
		return err
	}
	cl = &client{ns: ns}
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("rs%d", i)
		ns, err := newNetns(name)
		if err != nil {
			return err
		}
		b := &backend{
			name: name, ns: ns,
			ip4:   netip.MustParseAddr(fmt.Sprintf("10.0.%d.2", 10+i)),
			ip6:   netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", 10+i)),
			host4: netip.MustParseAddr(fmt.Sprintf("10.0.%d.1", 10+i)),
			host6: netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", 10+i)),
		}
		if err := link(ns, name, b.host4.String(), b.ip4.String(), b.host6.String(), b.ip6.String()); err != nil {
			return err
		}
		// What a DR or TUN real server needs: answer ARP only for addresses
		// on the interface asked, take IPIP on tunl0.
		if err := ns.sh(`sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.eth0.keep_addr_on_down=1
ip link set tunl0 up
sysctl -qw net.ipv4.conf.tunl0.rp_filter=0`); err != nil {
			return err
		}
		backends = append(backends, b)
	}
	return nil
}

// cleanSlate gives every scenario the same start: an empty IPVS table and
// healthy backends.
func cleanSlate() error {
	if err := rootNS.sh("ipvsadm -C"); err != nil {
		return err
	}
	for _, b := range backends {
		if err := b.reset(); err != nil {
			return err
		}
	}
	return nil
}

func makeCerts() error {
	ca, err := testutil.NewCA("e2e CA")
	if err != nil {
		return err
	}
	caPEM = ca.PEM
	from, until := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	good, err := ca.Issue(certName, from, until)
	if err != nil {
		return err
	}
	var untrusted *testutil.CA // self-signed: not trusted by the check's CA
	bad, err := untrusted.Issue(certName, from, until)
	goodCert, badCert = &good, &bad
	return err
}

// rs returns backend N (1-based).
func rs(n int) *backend { return backends[n-1] }

// --- the director as a process ---

type director struct {
	t    *testing.T
	cfg  string
	cmd  *exec.Cmd
	log  *logbuf.Buffer
	done chan struct{}
	err  error // exit status, once done is closed
}

// startDirector writes cfg and runs the director on it. At the end of the
// test the director is stopped (its log shown if the test failed).
func startDirector(t *testing.T, cfg string) *director {
	t.Helper()
	path := filepath.Join(t.TempDir(), "director.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	d := &director{t: t, cfg: path, log: &logbuf.Buffer{}}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("director log:\n%s", tailLines(d.log.String(), 300))
		}
	})
	return d
}

func (d *director) start() {
	d.t.Helper()
	d.cmd = exec.Command(os.Getenv("DIRECTOR_BIN"), "run", "-config", d.cfg, "-log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	fmt.Fprintf(d.log, "--- director start %s\n", time.Now().Format("15:04:05.000"))
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { d.err = cmd.Wait(); close(done) }(d.cmd, d.done)
}

// stop sends SIGTERM and waits for the exit; it returns the exit error.
func (d *director) stop() error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Signal(syscall.SIGQUIT) // a goroutine dump into its log
		select {
		case <-d.done:
		case <-time.After(3 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		d.t.Errorf("director did not stop within 20s of SIGTERM")
	}
	return d.err
}

func (d *director) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// reload replaces the config file and sends SIGHUP.
func (d *director) reload(cfg string) {
	d.t.Helper()
	if err := os.WriteFile(d.cfg, []byte(cfg), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
}

// waitReady waits for /readyz to answer 200.
func (d *director) waitReady() {
	d.t.Helper()
	bound := slack + 5*time.Second
	deadline := time.Now().Add(bound)
	for {
		if !d.running() {
			d.t.Fatalf("director exited: %v", d.err)
		}
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("director not ready after %v (last: %v)", bound, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metric returns the value of a director metric with the given labels.
func metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// --- the kernel table through ipvsadm, an independent client ---

// svcView is a service as ipvsadm -Ln shows it.
type svcView struct {
	sched string
	flags string
	dests map[string]destView // "10.0.11.2:80" or "[fd00:11::2]:80"
}

type destView struct {
	fwd    string // Masq, Route, Tunnel, Local
	weight int
}

// table maps "TCP 10.0.100.1:80" / "UDP ..." / "FWM 10" to the service.
type table map[string]svcView

func (tb table) String() string {
	var keys []string
	for k := range tb {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		s := tb[k]
		fmt.Fprintf(&b, "%s %s%s:", k, s.sched, s.flags)
		var ds []string
		for a, d := range s.dests {
			ds = append(ds, fmt.Sprintf(" %s %s %d", a, d.fwd, d.weight))
		}
		sort.Strings(ds)
		b.WriteString(strings.Join(ds, ","))
		b.WriteString("; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

var svcLine = regexp.MustCompile(`^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)(.*)$`)

func ipvsadm() (table, error) {
	out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ipvsadm -Ln: %v: %s", err, out)
	}
	return parseIpvsadm(string(out))
}

func parseIpvsadm(out string) (table, error) {
	tb := table{}
	var cur *svcView
	for _, line := range strings.Split(out, "\n") {
		if m := svcLine.FindStringSubmatch(line); m != nil {
			key := m[1] + " " + m[2]
			tb[key] = svcView{sched: m[3], flags: strings.Join(strings.Fields(m[4]), " "), dests: map[string]destView{}}
			v := tb[key]
			cur = &v
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			if cur == nil {
				return nil, fmt.Errorf("ipvsadm: destination before service: %q", line)
			}
			w, err := strconv.Atoi(f[3])
			if err != nil {
				return nil, fmt.Errorf("ipvsadm: weight in %q", line)
			}
			cur.dests[f[1]] = destView{fwd: f[2], weight: w}
		}
	}
	return tb, nil
}

func mustTable(t testing.TB) table {
	t.Helper()
	tb, err := ipvsadm()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// waitTable polls ipvsadm until check passes or within elapses, and
// returns how long it took.
func waitTable(t testing.TB, within time.Duration, what string, check func(table) error) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	var tb table
	for {
		var err error
		tb, err = ipvsadm()
		if err == nil {
			if last = check(tb); last == nil {
				took := time.Since(start)
				t.Logf("%s: after %.2fs (bound %v)", what, took.Seconds(), within)
				return took
			}
		} else {
			last = err
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v: %v\nipvsadm: %s", what, within, last, tb)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dests builds the check that a service holds exactly these destinations
// ("addr fwd weight" each), with the scheduler sched ("" = any).
func dests(svc, sched string, want ...string) func(table) error {
	return func(tb table) error {
		s, ok := tb[svc]
		if !ok {
			return fmt.Errorf("no service %s", svc)
		}
		if sched != "" && s.sched != sched {
			return fmt.Errorf("%s: scheduler %s, want %s", svc, s.sched, sched)
		}
		var got []string
		for a, d := range s.dests {
			got = append(got, fmt.Sprintf("%s %s %d", a, d.fwd, d.weight))
		}
		sort.Strings(got)
		want := slices.Clone(want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s: destinations %q, want %q", svc, got, want)
		}
		return nil
	}
}

// --- traffic ---

// served makes n requests through url, a new connection each, and fails
// unless every one succeeds, every answer comes from allowed, and each of
// mustSee answers at least once. It returns the count per backend.
func served(t *testing.T, url string, n int, allowed []string, mustSee ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	var errs []string
	for range n {
		body, err := cl.get(url)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		counts[body]++
	}
	checkServed(t, url, n, counts, errs, allowed, mustSee)
	return counts
}

func checkServed(t *testing.T, what string, n int, counts map[string]int, errs []string, allowed, mustSee []string) {
	t.Helper()
	if len(errs) > 0 {
		t.Errorf("%s: %d of %d requests failed, first: %s", what, len(errs), n, errs[0])
	}
	for name, c := range counts {
		if !slices.Contains(allowed, name) {
			t.Errorf("%s: %d answers from %q, which must get no new connections (allowed %v)", what, c, name, allowed)
		}
	}
	for _, name := range mustSee {
		if counts[name] == 0 {
			t.Errorf("%s: no answer from %s in %d requests (got %v)", what, name, n, counts)
		}
	}
	t.Logf("%s: %d requests, answers %v", what, n, counts)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// downWithin / upWithin are how long the director may take to take a
// server out / put it back, with slack for emulation.
func downWithin() time.Duration { return time.Duration(fall)*interval + timeout + slack }
func upWithin() time.Duration   { return time.Duration(rise)*interval + timeout + slack }
