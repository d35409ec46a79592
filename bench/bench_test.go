package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// TestHarnessSmoke runs the whole harness small and short, so that it
// cannot rot: real backends, the real director binary, the Go and C floor
// checkers and a failure storm. The C floor needs a C compiler, as -race
// does (.ci/run installs gcc). It checks that what the report claims happened.
func TestHarnessSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries and runs for ~15s")
	}
	rep, out := runHarness(t, Options{Kind: "http", N: 20, VirtualServers: 3,
		Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 1, Fall: 2,
		Window: 2 * time.Second, Floor: true, CFloor: true, Storm: 5, Port: 18080})

	d := rep.Director
	// 20 servers every 200ms is 100 checks/s. The backends must have seen
	// them: allow for a noisy machine, not for checks that did not happen.
	if d.PlannedPerSec != 100 {
		t.Errorf("planned %v/s, want 100", d.PlannedPerSec)
	}
	if d.BackendPerSec < 70 || d.CompletedPerSec < 70 {
		t.Errorf("director: backends saw %.1f/s, director completed %.1f/s; want about 100", d.BackendPerSec, d.CompletedPerSec)
	}
	if d.CPUSeconds <= 0 || d.PeakRSSBytes <= 0 || d.Goroutines <= 0 {
		t.Errorf("director: implausible figures %+v", d)
	}
	// Memory: live heap (read through the token-protected /debug/pprof)
	// below the resident set, which is at most its peak.
	if d.LiveHeapBytes <= 0 || d.LiveHeapBytes >= d.SteadyRSSBytes || d.SteadyRSSBytes > d.PeakRSSBytes {
		t.Errorf("director: memory figures live %d, steady %d, peak %d: want 0 < live < steady <= peak",
			d.LiveHeapBytes, d.SteadyRSSBytes, d.PeakRSSBytes)
	}
	if rep.Floor == nil || rep.Floor.BackendPerSec < 70 {
		t.Errorf("floor: %+v", rep.Floor)
	}
	if rep.CFloor == nil || rep.CFloor.BackendPerSec < 70 || rep.CFloor.FailedPerSec > 0 {
		t.Errorf("C floor: %+v (skipped: %q)", rep.CFloor, rep.CFloorSkipped)
	}
	if rep.Storm == nil || rep.Storm.Detected != 5 {
		t.Fatalf("storm: %+v, want all 5 killed backends detected", rep.Storm)
	}
	if rep.Storm.AllAppliedSeconds <= 0 || rep.Storm.LatencyMax <= 0 {
		t.Errorf("storm: %+v", rep.Storm)
	}
	for _, line := range []string{"director ÷ floor", "director ÷ C floor", "director memory: "} {
		if !strings.Contains(out, line) {
			t.Errorf("report lacks the %s line", line)
		}
	}
}

// TestHarnessMixedCFloor runs the C floor over a mix, one cfloor per
// group on its own address range, and checks that it checked every
// group's servers at their own rates and counted its starts on time.
func TestHarnessMixedCFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries and runs for ~10s")
	}
	groups, err := ParseGroups("http:20:500ms,tcp:30:250ms")
	if err != nil {
		t.Fatal(err)
	}
	rep, out := runHarness(t, Options{Groups: groups, N: 1, Interval: time.Second, VirtualServers: 5, // N and Interval: the groups'
		Timeout: 200 * time.Millisecond, Rise: 1, Fall: 2, Window: 2 * time.Second, CFloor: true, Port: 18280})
	const planned = 20/0.5 + 30/0.25 // 160 checks a second
	c := rep.CFloor
	if c == nil {
		t.Fatalf("no C floor row (skipped: %q)", rep.CFloorSkipped)
	}
	if c.PlannedPerSec != planned {
		t.Errorf("C floor planned %v/s, want %v", c.PlannedPerSec, planned)
	}
	// Every group's backends answered it: a floor that checked one group
	// only, or the wrong addresses, would fail here or in FailedPerSec.
	if c.StartedPerSec < 0.7*planned || c.BackendPerSec < 0.7*planned || c.CompletedPerSec < 0.7*planned {
		t.Errorf("C floor started %.1f/s, backends saw %.1f/s, done %.1f/s: want about %v", c.StartedPerSec, c.BackendPerSec, c.CompletedPerSec, planned)
	}
	if c.FailedPerSec > 0 || c.SkippedPerSec > 0 {
		t.Errorf("C floor failed %.2f/s, skipped %.2f/s: want none", c.FailedPerSec, c.SkippedPerSec)
	}
	if c.OnTimeShare < 0.5 || c.OnTimeShare > 1 {
		t.Errorf("C floor on time %.3f: want most of its starts within 100 ms of plan", c.OnTimeShare)
	}
	if rep.CRatio <= 0 || !strings.Contains(out, "director ÷ C floor") {
		t.Errorf("no director ÷ C floor ratio for the mix:\n%s", out)
	}
}

// TestHarnessMixRefusesTheGoFloor: the Go floor checks one kind at one
// interval; a mix asking for it gets an error, not a silent skip.
func TestHarnessMixRefusesTheGoFloor(t *testing.T) {
	groups, err := ParseGroups("http:2:1s,tcp:2:1s")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Groups: groups, N: 1, Interval: time.Second, VirtualServers: 1,
		Timeout: time.Second, Window: time.Second, Floor: true})
	if err == nil || !strings.Contains(err.Error(), "-floor does not go with -mix") {
		t.Errorf("got %v, want the Go floor refused for a mix", err)
	}
	groups, _ = ParseGroups("http:2:1s,udp:2:1s")
	_, err = Run(context.Background(), Options{Groups: groups, N: 1, Interval: time.Second, VirtualServers: 1,
		Timeout: time.Second, Window: time.Second, CFloor: true})
	if err == nil || !strings.Contains(err.Error(), "not udp") {
		t.Errorf("got %v, want the C floor refused for a udp group", err)
	}
}

// TestHarnessProberKinds runs the harness over every kind the probers
// issue added, small and short, and checks each group's checks happened:
// the backends saw them where there are backends, the director counted
// them everywhere.
func TestHarnessProberKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries and runs for ~10s")
	}
	groups, err := ParseGroups("dialogue:10:500ms,udp:10:500ms,sip:10:500ms,exec:5:500ms,none:5:500ms")
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := runHarness(t, Options{Groups: groups, N: 1, Interval: time.Second, VirtualServers: 5, // N and Interval: the groups'
		Timeout: 300 * time.Millisecond, Rise: 1, Fall: 2, Window: 2 * time.Second, Port: 18081})
	d := rep.Director
	// 40 servers every 500 ms: 80 checks/s, 60 of them reaching a backend.
	if d.PlannedPerSec != 80 {
		t.Errorf("planned %v/s, want 80", d.PlannedPerSec)
	}
	if d.CompletedPerSec < 56 || d.BackendPerSec < 42 || d.FailedPerSec > 1 {
		t.Errorf("director completed %.1f/s (want about 80), backends saw %.1f/s (want about 60), failed %.1f/s",
			d.CompletedPerSec, d.BackendPerSec, d.FailedPerSec)
	}
}

// runHarness builds the director and the harness, runs the harness with
// o and logs its report, which it returns printed too.
func runHarness(t *testing.T, o Options) (*Report, string) {
	t.Helper()
	var progress bytes.Buffer
	buildHarness(t, &o, &progress)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("harness: %v\n%s", err, progress.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	return rep, out.String()
}

// buildHarness builds the director and the harness into a temporary
// directory and points o at them, with its progress to progress.
func buildHarness(t *testing.T, o *Options, progress io.Writer) {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []struct{ out, pkg string }{
		{"director", "../cmd/director"},
		{"director-bench", "../cmd/director-bench"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.pkg, err, out)
		}
	}
	o.DirectorBin, o.SelfBin = filepath.Join(dir, "director"), filepath.Join(dir, "director-bench")
	o.WorkDir, o.Progress = dir, progress
}

func TestReconcileFigures(t *testing.T) {
	s, err := RunReconcile(context.Background(), ipvs.NewMemory(), "in-memory", 2000, 20, 300)
	if err != nil {
		t.Fatal(err)
	}
	if s.ProgramOps != 2000+20 {
		t.Errorf("programming 2000 destinations over 20 services took %d operations, want 2020", s.ProgramOps)
	}
	if s.ChangeOps != 300 {
		t.Errorf("300 weight changes took %d operations", s.ChangeOps)
	}
}

func TestBackendAddrsAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := range 70000 {
		a := backendAddr(i, 1)
		b := a.Addr().As4()
		if b[0] != 127 || b[3] == 0 || b[3] == 255 || seen[a.String()] {
			t.Fatalf("backend %d: address %s is reused or not a plain loopback host", i, a)
		}
		seen[a.String()] = true
	}
}

// TestCProgramsIgnoreSIGPIPE: the C backends and the C floor write to
// sockets a peer may have reset (a loaded machine, a check that gave up);
// the write must fail, not end the process with SIGPIPE.
func TestCProgramsIgnoreSIGPIPE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the C programs with cc")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	backends, err := startBackends(ctx, Options{CBackends: true, WorkDir: dir, Port: 18097,
		Groups: []Group{{Kind: "http", N: 1, Interval: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer backends.finish()
	bin, skipped, err := BuildCFloor(ctx, dir)
	if err != nil || skipped != "" {
		t.Fatalf("building the C floor: %v %s", err, skipped)
	}
	floor, err := startChild(ctx, bin, "-kind", "http", "-n", "1", "-port", "18097", "-interval-ms", "1000", "-timeout-ms", "500")
	if err != nil {
		t.Fatal(err)
	}
	defer floor.finish()
	for name, pid := range map[string]int{"backends": backends.cmd.Process.Pid, "cfloor": floor.cmd.Process.Pid} {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		var ignored uint64
		for _, line := range strings.Split(string(status), "\n") {
			if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				ignored, _ = strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			}
		}
		if ignored&(1<<(13-1)) == 0 { // SIGPIPE is 13
			t.Errorf("%s does not ignore SIGPIPE (SigIgn %x)", name, ignored)
		}
	}
}

// TestCBackendsShortAcceptQueue: a C backend that stops accepting (a
// machine short of CPU) queues a few connections, then drops the rest,
// rather than piling up the kernel memory of thousands.
func TestCBackendsShortAcceptQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the C backends with cc")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	backends, err := startBackends(ctx, Options{CBackends: true, WorkDir: t.TempDir(), Port: 18098,
		Groups: []Group{{Kind: "tcp", N: 1, Interval: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer backends.finish()
	p := backends.cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer p.Signal(syscall.SIGCONT)
	connected := 0
	for range 40 {
		c, err := net.DialTimeout("tcp", backendAddr(0, 18098).String(), 150*time.Millisecond)
		if err == nil {
			connected++
			defer c.Close()
		}
	}
	// Linux queues backlog+1 connections.
	if connected > 20 {
		t.Errorf("a stopped backend took %d of 40 connections into its queue, want at most 17", connected)
	}
	if connected == 0 {
		t.Errorf("a stopped backend queued no connection at all")
	}
}

// TestBackendsGoAndCAnswerAlike holds the C backends (cbackends.c) to
// what the Go backends do, on the same addresses and the same child
// protocol: tcp accepts and closes, http answers a request head with 200
// "ok", both count every connection, and "kill K" refuses the first K.
func TestBackendsGoAndCAnswerAlike(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the C backends with cc")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		cbackends bool
	}{{"go", false}, {"c", true}} {
		for i, kind := range []string{"tcp", "http"} {
			t.Run(c.name+"/"+kind, func(t *testing.T) {
				port := 18090 + i
				if c.cbackends {
					port += 2
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var b interface {
					count() uint64
					kill(k int)
				}
				if c.cbackends {
					ch, err := startBackends(ctx, Options{CBackends: true, WorkDir: t.TempDir(), SelfBin: self, Port: port,
						Groups: []Group{{Kind: kind, N: 3, Interval: time.Second}}})
					if err != nil {
						t.Fatal(err)
					}
					defer ch.finish()
					b = childBackends{t, ch}
				} else {
					gb, err := StartBackends([]Group{{Kind: kind, N: 3, Interval: time.Second}}, 0, port)
					if err != nil {
						t.Fatal(err)
					}
					defer gb.Close()
					b = goBackends{gb}
				}
				for j := range 3 {
					if got := askBackend(t, kind, backendAddr(j, port).String()); got != "ok" {
						t.Errorf("backend %d answered %q, want ok", j, got)
					}
				}
				if n := b.count(); n != 3 {
					t.Errorf("count %d after 3 connections, want 3", n)
				}
				b.kill(1)
				if _, err := net.DialTimeout("tcp", backendAddr(0, port).String(), time.Second); err == nil {
					t.Errorf("the killed backend still accepts")
				}
				if got := askBackend(t, kind, backendAddr(1, port).String()); got != "ok" {
					t.Errorf("a backend not killed answered %q, want ok", got)
				}
			})
		}
	}
}

// askBackend checks one backend the way the director does and says "ok"
// or what went wrong.
func askBackend(t *testing.T, kind, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if kind == "tcp" {
		if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			return fmt.Sprintf("read %d bytes, %v; want the backend to close", n, err)
		}
		return "ok"
	}
	// the head in two writes, as a slow client sends it
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	time.Sleep(10 * time.Millisecond)
	io.WriteString(conn, "\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		return fmt.Sprintf("%d %q", resp.StatusCode, body)
	}
	return "ok"
}

type goBackends struct{ b *Backends }

func (g goBackends) count() uint64 { return g.b.Count() }
func (g goBackends) kill(k int)    { g.b.Kill(k) }

type childBackends struct {
	t *testing.T
	c *child
}

func (c childBackends) count() uint64 {
	s, err := c.c.ask("count")
	n, perr := strconv.ParseUint(s, 10, 64)
	if err != nil || perr != nil {
		c.t.Fatalf("count: %q %v", s, err)
	}
	return n
}

func (c childBackends) kill(k int) {
	if s, err := c.c.ask(fmt.Sprintf("kill %d", k)); err != nil || s == "" || strings.HasPrefix(s, "error") {
		c.t.Fatalf("kill: %q %v", s, err)
	}
}

// TestScheduleScrapeIsSmall: the scrapes at the window's edges ask the
// director's /metrics for the schedule's families only, so that serving
// and parsing them does not load the machine at the moment the window's
// punctuality is read; the page of every series is three orders larger.
func TestScheduleScrapeIsSmall(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "test"})
	for i := range 2000 {
		rs := fmt.Sprintf("10.0.%d.%d:80", i/250, i%250)
		m.RealServer("web", rs, "up", 1, 1)
		m.Check("web", rs, "http", true, time.Millisecond)
	}
	m.Schedule.Started(time.Millisecond)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		m.Handler().ServeHTTP(cw, r)
		served.Store(cw.n)
	}))
	defer srv.Close()

	got, err := scrape(t.Context(), srv.URL+"/metrics", scheduleFamilies...)
	if err != nil {
		t.Fatal(err)
	}
	if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, slices.Sorted(slices.Values(scheduleFamilies))) {
		t.Errorf("scraped %v, want %v", names, scheduleFamilies)
	}
	small := served.Load()
	if _, err := scrape(t.Context(), srv.URL+"/metrics"); err != nil {
		t.Fatal(err)
	}
	if all := served.Load(); small*100 > all {
		t.Errorf("schedule scrape %d bytes, whole page %d: want under a hundredth", small, all)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}
