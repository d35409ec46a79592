package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/api"
	"github.com/lvsdirector/director/internal/testutil"
)

// TestStatusFloodKeepsChecksOnTime is issue 10 item 3 against the real
// binary: 100 clients asking for /api/v1/status at the same moment, every
// second for 10 s, of a director with 10,000 real servers. Every client
// must be answered, checks must keep starting on time, no real server may
// go down, and the director's resident memory may grow by less than
// 50 MB. Rendering the status for each request (as the director once did:
// tens of MB and a second of CPU each) fails all of these.
//
// Punctuality is judged against windows without the flood before and
// after it, with a tolerance for a machine shared with other work (see
// below); when even the window before the flood is bad the test cannot
// judge and skips (fails under CI).
func TestStatusFloodKeepsChecksOnTime(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 loopback backends and a 100-client flood: 35-45 s")
	}
	const (
		virtualServers = 100
		perVS          = 100
		servers        = virtualServers * perVS
		readers        = 100
		interval       = 5 * time.Second
		flood          = 10 * time.Second
		tick           = time.Second
		quietWindow    = 3 * time.Second
		rssBudget      = 50 << 20
	)
	backends := floodBackends(t, virtualServers, perVS)

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[director]\nlisten = %q\nkernel_stats = \"off\"\n\n", testutil.ClosedPort(t))
	fmt.Fprintf(&cfg, "[defaults.check]\ntype = \"tcp\"\ninterval = %q\ntimeout = \"1s\"\nrise = 1\nfall = 2\n\n", interval)
	for v := range virtualServers {
		fmt.Fprintf(&cfg, "[[virtual_server]]\nname = \"pool-%d\"\naddress = \"198.18.0.%d:80\"\n", v, v+1)
		for _, b := range backends[v*perVS : (v+1)*perVS] {
			fmt.Fprintf(&cfg, "  [[virtual_server.real_server]]\n  address = %q\n  weight = 100\n", b)
		}
	}
	d := startDaemon(t, "run", "-dry-run", "-config", testutil.WriteFile(t, t.TempDir(), "director.toml", cfg.String()))
	listen := d.waitStarted()
	pid := d.cmd.Process.Pid

	// Every real server up: each has passed a check.
	for deadline := time.Now().Add(3*interval + 10*time.Second); strings.Count(d.logText(), `msg="real server up"`) < servers; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d real servers came up", strings.Count(d.logText(), `msg="real server up"`), servers)
		}
	}
	// Wait for a calm window: checks started at their planned rate (the
	// start-up burst is over) and on time.
	metricsURL := "http://" + listen + "/metrics"
	planned := float64(servers) / interval.Seconds()
	var quiet0, before schedule
	var calm string
	for deadline := time.Now().Add(30 * time.Second); ; {
		at := time.Now()
		quiet0 = scrapeSchedule(t, metricsURL)
		time.Sleep(quietWindow)
		before = scrapeSchedule(t, metricsURL)
		w := before.minus(quiet0)
		rate := w.started / time.Since(at).Seconds()
		calm = fmt.Sprintf("%.0f checks started a second (%.0f planned), %.0f of %.0f more than 100 ms late or skipped",
			rate, planned, w.late()+w.skipped, w.started)
		if rate > 0.75*planned && rate < 1.25*planned && w.late()+w.skipped <= 0.05*w.started {
			break
		}
		if time.Now().After(deadline) {
			// Other work keeps this machine so busy (go test runs other
			// packages beside this one) that checks do not start at
			// their planned rate even without the flood: lateness,
			// memory and the share of answered reads would measure the
			// machine, not the director. Run it alone to measure.
			t.Skipf("no calm window within 30s (%s); run this test alone: go test -run TestStatusFloodKeepsChecksOnTime ./cmd/director/", calm)
		}
	}
	logMark := len(d.logText())

	// Resident memory before the flood: the highest of a few samples.
	var baseline int64
	for range 10 {
		baseline = max(baseline, vmRSS(t, pid))
		time.Sleep(100 * time.Millisecond)
	}

	// The flood: every second all readers ask at once, each on its own
	// connection. They ask for gzip themselves, so that they read what the
	// director sends without spending this machine's CPU on inflating it.
	ctx, cancel := context.WithTimeout(context.Background(), flood)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: readers, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var ok, busy, failed, bytesRead atomic.Int64
	read := func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/api/v1/status", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				failed.Add(1)
			}
			return
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		bytesRead.Add(n)
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil:
			failed.Add(1)
		case resp.StatusCode == http.StatusOK:
			ok.Add(1)
		case resp.StatusCode == http.StatusServiceUnavailable:
			busy.Add(1)
		default:
			failed.Add(1)
		}
	}
	// Each reader asks on every tick of one clock (start + k × tick),
	// skipping the ticks it is still busy at.
	var wg sync.WaitGroup
	start := time.Now()
	for range readers {
		wg.Go(func() {
			for ctx.Err() == nil {
				read()
				next := start.Add(time.Since(start).Truncate(tick) + tick)
				select {
				case <-time.After(time.Until(next)):
				case <-ctx.Done():
				}
			}
		})
	}
	// Sample memory while the flood runs; far past the budget the flood
	// stops early, so that a failing build does not take the machine down.
	var peak int64
	cpu0 := procCPU(t, pid)
	for ctx.Err() == nil {
		peak = max(peak, vmRSS(t, pid))
		if peak-baseline > 1<<30 {
			t.Errorf("resident memory grew by more than 1 GiB; flood stopped after %s", time.Since(start).Round(time.Millisecond))
			cancel()
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	floodTook := time.Since(start)
	cpu := procCPU(t, pid) - cpu0
	t.Logf("flood %s: %d ok, %d busy (503), %d failed, %.1f MB read; director CPU %s; RSS %.1f MB before, peak %.1f MB (+%.1f MB)",
		floodTook.Round(time.Millisecond), ok.Load(), busy.Load(), failed.Load(), float64(bytesRead.Load())/(1<<20), cpu,
		float64(baseline)/(1<<20), float64(peak)/(1<<20), float64(peak-baseline)/(1<<20))
	time.Sleep(500 * time.Millisecond) // let checks started during the flood be counted
	after := scrapeAfterFlood(t, metricsURL)
	time.Sleep(quietWindow)
	quiet1 := scrapeSchedule(t, metricsURL)

	lag := after.minus(before)
	// The windows before and after the flood say how punctual checks are
	// on this machine without it; the better of the two, as a director
	// still digesting the flood spoils the one after.
	calmBefore, calmAfter := before.minus(quiet0), quiet1.minus(after)
	t.Logf("checks in the %s before the flood: %.0f started, %.0f more than 100 ms late; in the %s after: %.0f started, %.0f late",
		quietWindow, calmBefore.started, calmBefore.late(), quietWindow, calmAfter.started, calmAfter.late())
	t.Logf("checks during the flood: %.0f started, %.0f more than 100 ms late, %.0f skipped, latest start ≤ %gs late",
		lag.started, lag.late(), lag.skipped, lag.maxBound())
	if ok.Load() < readers {
		t.Errorf("only %d successful status reads in the flood; it did not test much", ok.Load())
	}
	if failed.Load() > 0 {
		t.Errorf("%d status reads failed outright", failed.Load())
	}
	if lag.started < servers*floodTook.Seconds()/interval.Seconds()*0.9 {
		t.Errorf("only %.0f checks started during the flood; %d servers every %s should start %.0f",
			lag.started, servers, interval, servers*floodTook.Seconds()/interval.Seconds())
	}
	// On an idle machine no check starts more than 100 ms late (seen here
	// at load 4-6 on 2 cores). This one is shared with other work (go test
	// runs other packages, the e2e VM among them, beside this one): at
	// load 8-10 a burst of the director's own work (a render, a garbage
	// collection) now and then waits its turn for a CPU, and 0-3 % of the
	// checks started 0.25-0.5 s late. So: none skipped, none a second
	// late, and at most lateShare of them more than 100 ms late beyond
	// what the windows without the flood show. Rendering per request
	// failed this by far (18-58 % late, up to 5 s, some skipped).
	const lateShare = 0.05
	quietShare := min(calmBefore.late()/calmBefore.started, calmAfter.late()/calmAfter.started)
	floodShare := lag.late() / lag.started
	if lag.skipped > 0 || lag.maxBound() > 1 || floodShare > 2*quietShare+lateShare {
		t.Errorf("during the flood %.0f checks were skipped and %.2f %% started more than 100 ms late (the latest ≤ %gs); without it %.2f %%",
			lag.skipped, 100*floodShare, lag.maxBound(), 100*quietShare)
	}
	if growth := peak - baseline; growth >= rssBudget {
		t.Errorf("resident memory grew by %.1f MB during the flood, want < %d MB", float64(growth)/(1<<20), rssBudget>>20)
	}
	if downs := strings.Count(d.logText()[logMark:], `msg="real server down"`); downs > 0 {
		t.Errorf("%d real servers went down during the flood", downs)
	}

	// Every server is still up: a page of one real server per virtual
	// server has the pools' counts.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := fetchStatus(ctx, "http://"+listen+"/api/v1/status?limit=1")
	if err != nil {
		t.Fatalf("status after the flood: %v", err)
	}
	var st api.StatusV1
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status after the flood: %v", err)
	}
	up, total := 0, 0
	for _, vs := range st.VirtualServers {
		up += vs.RealServersUp
		total += vs.Pool.Total
		if len(vs.RealServers) != 1 {
			t.Errorf("?limit=1: %s lists %d real servers", vs.Name, len(vs.RealServers))
		}
	}
	if len(st.VirtualServers) != virtualServers || total != servers || up != servers {
		t.Errorf("status after the flood: %d virtual servers, %d of %d real servers up; want %d, all %d up",
			len(st.VirtualServers), up, total, virtualServers, servers)
	}
	d.stop()
}

// floodBackends listens on one loopback address per real server,
// 127.1.v.j, all on one port, and closes every connection it accepts:
// what a TCP check needs to pass. The port is the first free one found,
// so that two runs of the test (or other tests on 127.1/16) do not meet.
func floodBackends(t *testing.T, virtualServers, perVS int) []string {
	t.Helper()
	for range 5 {
		lns, err := listenFlood(virtualServers, perVS)
		if err != nil {
			t.Logf("flood backends: %v; trying another port", err)
			continue
		}
		var out []string
		for _, l := range lns {
			t.Cleanup(func() { l.Close() })
			out = append(out, testutil.ServeConns(t, l, func(net.Conn) {}).String())
		}
		return out
	}
	t.Fatal("no port free on all of 127.1.v.j for the flood backends")
	return nil
}

func listenFlood(virtualServers, perVS int) ([]net.Listener, error) {
	first, err := net.Listen("tcp", "127.1.0.1:0")
	if err != nil {
		return nil, err
	}
	port := first.Addr().(*net.TCPAddr).Port
	lns := []net.Listener{first}
	for i := 1; i < virtualServers*perVS; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.1.%d.%d:%d", i/perVS, i%perVS+1, port))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, l)
	}
	return lns, nil
}

// procCPU is the CPU time (user and system) a process has used so far.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which may hold spaces: utime and
	// stime are the 12th and 13th, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// vmRSS is a process's resident memory now, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status has no VmRSS", pid)
	return 0
}

// schedule is the check scheduler's counters in one scrape: the schedule
// lag histogram's buckets (upper bound -> cumulative count), and the runs
// started and skipped.
type schedule struct {
	buckets          map[float64]float64
	started, skipped float64
}

func (s schedule) minus(o schedule) schedule {
	d := schedule{buckets: map[float64]float64{}, started: s.started - o.started, skipped: s.skipped - o.skipped}
	for le, n := range s.buckets {
		d.buckets[le] = n - o.buckets[le]
	}
	return d
}

// late is how many runs started more than 100 ms after their plan.
func (s schedule) late() float64 { return s.buckets[math.Inf(1)] - s.buckets[0.1] }

// maxBound is the smallest bucket bound that holds every run.
func (s schedule) maxBound() float64 {
	best := math.Inf(1)
	for le, n := range s.buckets {
		if n == s.buckets[math.Inf(1)] && le < best {
			best = le
		}
	}
	return best
}

// scrapeAfterFlood is scrapeSchedule for a director that may still be
// digesting a flood: it is asked again for up to a minute.
func scrapeAfterFlood(t *testing.T, url string) schedule {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		s, err := readSchedule(url)
		if err == nil {
			return s
		}
		t.Logf("after the flood: %v", err)
		if time.Now().After(deadline) {
			t.Fatalf("/metrics unreadable for a minute after the flood")
		}
	}
}

// scrapeSchedule reads the scheduler's series from /metrics.
func scrapeSchedule(t *testing.T, url string) schedule {
	t.Helper()
	s, err := readSchedule(url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readSchedule reads the scheduler's series from /metrics, line by line:
// at 10,000 servers the whole scrape is megabytes of per-server series.
func readSchedule(url string) (schedule, error) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return schedule{}, err
	}
	defer resp.Body.Close()
	s := schedule{buckets: map[float64]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch {
		case name == "director_checks_started_total":
			s.started = v
		case name == "director_checks_skipped_total":
			s.skipped = v
		case strings.HasPrefix(name, `director_check_schedule_lag_seconds_bucket{le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(name, `director_check_schedule_lag_seconds_bucket{le="`), `"}`), 64)
			if err != nil {
				return schedule{}, fmt.Errorf("%s: %s: %v", url, line, err)
			}
			s.buckets[le] = v
		}
	}
	if err := sc.Err(); err != nil {
		return schedule{}, fmt.Errorf("%s: %w", url, err)
	}
	if len(s.buckets) == 0 || s.started == 0 {
		return schedule{}, fmt.Errorf("%s has no check schedule series", url)
	}
	return s, nil
}
