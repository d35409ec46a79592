package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Options describe one harness run.
type Options struct {
	DirectorBin string // the director binary to measure
	SelfBin     string // this harness's binary, re-run for the child processes
	WorkDir     string // where the generated config goes
	Kind        string // one of Kinds; the floor checker knows http and tcp
	N           int    // real servers (one backend each)
	// Groups, when set, replace Kind, N and Interval: several sets of
	// real servers with their own check type and interval in one director
	// (the floor checker is then not run).
	Groups         []Group
	VirtualServers int
	Interval       time.Duration
	Timeout        time.Duration
	Rise, Fall     int
	RetryInterval  time.Duration // retry_interval of every check; 0: off (detect.go)
	Window         time.Duration // measurement window per checker
	Floor          bool          // also measure the reference checker
	CFloor         bool          // also measure the C event-loop floor (cfloor/cfloor.c, built with cc)
	NoFastChecks   bool          // run the director with fast_checks = false
	// CBackends serves the tcp and http groups from the C event-loop
	// backends (cbackends/cbackends.c, built with cc) instead of Go's:
	// the same answers for a fraction of the CPU, which matters when the
	// backends share the director's cores.
	CBackends bool
	Peers     []string // also measure these peer checkers (peers.go): ldirectord, keepalived
	Storm     int      // backends to kill at once after the window (0: no storm)
	Port      int      // backend port
	// MinUp, when set, is the share of real servers that may be enough up
	// at the start deadline to measure anyway (a kind whose checks time
	// out now and then on a busy machine); 0: all must be up.
	MinUp float64
	// HeapProfile, when set, is where the director's heap profile (live
	// heap after a collection, at the end of its window) is written, for
	// go tool pprof.
	HeapProfile string
	Progress    io.Writer
}

// CheckerStats is one checker's figures over its measurement window.
type CheckerStats struct {
	Checker          string  `json:"checker"`
	WindowSeconds    float64 `json:"window_seconds"`
	PlannedPerSec    float64 `json:"planned_per_second"`
	StartedPerSec    float64 `json:"started_per_second,omitempty"`
	CompletedPerSec  float64 `json:"completed_per_second"`
	BackendPerSec    float64 `json:"backend_seen_per_second"`
	FailedPerSec     float64 `json:"failed_per_second"`
	SkippedPerSec    float64 `json:"skipped_per_second"`
	OnTimeShare      float64 `json:"on_time_share,omitempty"` // started within 100 ms of plan
	LagP50           float64 `json:"lag_p50_le_seconds,omitempty"`
	LagP99           float64 `json:"lag_p99_le_seconds,omitempty"`
	LagMax           float64 `json:"lag_max_le_seconds,omitempty"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUPer1000Checks float64 `json:"cpu_seconds_per_1000_checks"`
	CPUCores         float64 `json:"cpu_cores"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	// SteadyRSSBytes is the director's resident set at the end of its
	// window (VmRSS), LiveHeapBytes its live heap then (HeapAlloc right
	// after a collection, read through /debug/pprof/heap).
	SteadyRSSBytes int64   `json:"steady_rss_bytes,omitempty"`
	LiveHeapBytes  int64   `json:"live_heap_bytes,omitempty"`
	Goroutines     float64 `json:"goroutines,omitempty"`
	// BackendsCPUCores is what the backends used meanwhile: on a small
	// machine they compete with the checker for the same cores.
	BackendsCPUCores float64 `json:"backends_cpu_cores,omitempty"`
	GCPauseP50       float64 `json:"gc_pause_p50_seconds,omitempty"`
	GCPauseMax       float64 `json:"gc_pause_max_seconds,omitempty"`
}

// StormStats is how the director handled K backends dying at once.
type StormStats struct {
	Killed            int     `json:"killed"`
	Detected          int     `json:"detected"`
	BoundSeconds      float64 `json:"bound_seconds"` // interval + (fall−1) × step + timeout + 100ms (detect.go)
	LatencyP50        float64 `json:"detection_latency_p50_seconds"`
	LatencyP99        float64 `json:"detection_latency_p99_seconds"`
	LatencyMax        float64 `json:"detection_latency_max_seconds"`
	OverheadP50       float64 `json:"overhead_p50_seconds"` // latency − (interval + (fall−1) × step)
	OverheadP99       float64 `json:"overhead_p99_seconds"`
	OverheadMax       float64 `json:"overhead_max_seconds"`
	AllAppliedSeconds float64 `json:"all_applied_seconds"` // kill → last weight-0 table change
	WithinBound       float64 `json:"within_bound_share"`

	// RetryIntervalSeconds is the checks' retry_interval (0: off);
	// ExpectedMeanSeconds the mean detection time the schedule predicts
	// (expectedDetection), to set beside LatencyMean.
	RetryIntervalSeconds float64 `json:"retry_interval_seconds"`
	ExpectedMeanSeconds  float64 `json:"expected_mean_seconds"`
	LatencyMean          float64 `json:"detection_latency_mean_seconds"`
}

// Report is the outcome of a harness run.
type Report struct {
	Kind           string        `json:"kind"`
	Groups         string        `json:"groups"`
	N              int           `json:"n"`
	VirtualServers int           `json:"virtual_servers"`
	Interval       string        `json:"interval"`
	Timeout        string        `json:"timeout"`
	Director       CheckerStats  `json:"director"`
	Floor          *CheckerStats `json:"floor,omitempty"`
	Ratio          float64       `json:"director_over_floor_cpu,omitempty"`
	CFloor         *CheckerStats `json:"c_floor,omitempty"`
	CRatio         float64       `json:"director_over_c_floor_cpu,omitempty"`
	CFloorSkipped  string        `json:"c_floor_skipped,omitempty"`
	Storm          *StormStats   `json:"storm,omitempty"`
	Peers          []PeerStats   `json:"peers,omitempty"`
}

func (o *Options) logf(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", a...)
	}
}

// Run runs the harness: backends, then the floor checkers (if asked), then
// the director, then the storm (if asked). Everything it starts it stops.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.N < 1 || o.VirtualServers < 1 || o.Interval <= 0 || o.Timeout <= 0 || o.Window <= 0 {
		return nil, fmt.Errorf("bench: N, virtual servers, interval, timeout and window must be positive")
	}
	if len(o.Groups) == 0 {
		if !knownKind(o.Kind) {
			return nil, fmt.Errorf("bench: kind %q: want one of %s", o.Kind, strings.Join(Kinds, ", "))
		}
		if (o.Floor || o.CFloor) && o.Kind != "http" && o.Kind != "tcp" {
			return nil, fmt.Errorf("bench: the floor checkers do http and tcp, not %s", o.Kind)
		}
		o.Groups = []Group{{Kind: o.Kind, N: o.N, Interval: o.Interval}}
	} else {
		if o.Floor {
			return nil, fmt.Errorf("bench: the Go floor checks one kind at one interval: -floor does not go with -mix (-cfloor does)")
		}
		for _, g := range o.Groups {
			if o.CFloor && g.Kind != "http" && g.Kind != "tcp" {
				return nil, fmt.Errorf("bench: the C floor checks http and tcp, not %s: -cfloor with -mix wants only those", g.Kind)
			}
		}
		o.N, o.Kind, o.Interval = 0, "mixed", 0
		for _, g := range o.Groups {
			o.N += g.N
			o.Interval = max(o.Interval, g.Interval)
		}
	}
	o.VirtualServers = min(o.VirtualServers, o.N)
	rep := &Report{Kind: o.Kind, Groups: FormatGroups(o.Groups), N: o.N, VirtualServers: o.VirtualServers,
		Interval: o.Interval.String(), Timeout: o.Timeout.String()}

	backends, err := startBackends(ctx, o)
	if err != nil {
		return nil, err
	}
	defer backends.finish()
	o.logf("%d backends up on 127.1.0.0/16:%d (%s)", o.N, o.Port, FormatGroups(o.Groups))

	if o.Floor {
		fs, err := runFloor(ctx, o, backends)
		if err != nil {
			return nil, err
		}
		rep.Floor = fs
	}
	if o.CFloor {
		if rep.CFloor, rep.CFloorSkipped, err = runCFloor(ctx, o, backends); err != nil {
			return nil, err
		}
		if rep.CFloorSkipped != "" {
			o.logf("C floor: skipped: %s", rep.CFloorSkipped)
		}
	}
	if rep.Peers, err = runPeers(ctx, o, backends); err != nil {
		return nil, err
	}
	ds, storm, err := runDirector(ctx, o, backends)
	if err != nil {
		return nil, err
	}
	rep.Director = *ds
	rep.Storm = storm
	if rep.Floor != nil && rep.Floor.CPUPer1000Checks > 0 {
		rep.Ratio = rep.Director.CPUPer1000Checks / rep.Floor.CPUPer1000Checks
	}
	if rep.CFloor != nil && rep.CFloor.CPUPer1000Checks > 0 {
		rep.CRatio = rep.Director.CPUPer1000Checks / rep.CFloor.CPUPer1000Checks
	}
	rep.fillPeerRatios()
	return rep, nil
}

// startBackends starts one backends child per group, each with its own
// address range: a process may not hold more than its open-files limit of
// listening sockets (20,000 here, and not raisable without privilege). The
// first child is returned; the others hang off it and share its fate.
func startBackends(ctx context.Context, o Options) (*child, error) {
	var first *child
	var cbin string
	if o.CBackends {
		bin, skipped, err := buildC(ctx, o.WorkDir, "cbackends", cbackendsSource)
		if err != nil {
			return nil, err
		}
		if skipped != "" {
			return nil, fmt.Errorf("-cbackends: %s", skipped)
		}
		cbin = bin
	}
	offset := 0
	for _, g := range o.Groups {
		bin, args := o.SelfBin, []string{"backends", "-groups", FormatGroups([]Group{g})}
		if cbin != "" && (g.Kind == "tcp" || g.Kind == "http") {
			bin, args = cbin, []string{"-kind", g.Kind, "-n", strconv.Itoa(g.N)}
		}
		c, err := startChild(ctx, bin, append(args, "-first", strconv.Itoa(offset), "-port", strconv.Itoa(o.Port))...)
		if err != nil {
			if first != nil {
				first.finish()
			}
			return nil, err
		}
		if first == nil {
			first = c
		} else {
			first.more = append(first.more, c)
		}
		offset += g.N
	}
	return first, nil
}

// backendCount is the connections all backends have accepted so far.
func backendCount(b *child) (uint64, error) {
	var total uint64
	for _, c := range append([]*child{b}, b.more...) {
		s, err := c.ask("count")
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("backends answered %q to count", s)
		}
		total += n
	}
	return total, nil
}

// window measures a process over o.Window: CPU, backend-side checks.
type window struct {
	start, end   time.Time
	cpu0, cpu1   time.Duration
	bcpu0, bcpu1 time.Duration // the backends' CPU
	seen0, seen1 uint64
}

// procsCPU is the CPU the processes have used so far, together.
func procsCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		cpu, err := procCPU(pid)
		if err != nil {
			return 0, err
		}
		total += cpu
	}
	return total, nil
}

// backendsCPU is the CPU all backends processes have used so far.
func backendsCPU(b *child) time.Duration {
	var total time.Duration
	for _, c := range append([]*child{b}, b.more...) {
		cpu, _ := procCPU(c.cmd.Process.Pid)
		total += cpu
	}
	return total
}

func measure(ctx context.Context, o Options, pids []int, backends *child, between func()) (*window, error) {
	w := &window{}
	var err error
	if w.seen0, err = backendCount(backends); err != nil {
		return nil, err
	}
	if w.cpu0, err = procsCPU(pids); err != nil {
		return nil, err
	}
	w.bcpu0 = backendsCPU(backends)
	w.start = time.Now()
	select {
	case <-time.After(o.Window):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if w.cpu1, err = procsCPU(pids); err != nil {
		return nil, err
	}
	w.bcpu1 = backendsCPU(backends)
	w.end = time.Now()
	if w.seen1, err = backendCount(backends); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *window) fill(s *CheckerStats, o Options, completed float64) {
	secs := w.end.Sub(w.start).Seconds()
	s.WindowSeconds = secs
	for _, g := range o.Groups {
		s.PlannedPerSec += float64(g.N) / g.Interval.Seconds()
	}
	s.BackendPerSec = float64(w.seen1-w.seen0) / secs
	s.CompletedPerSec = completed / secs
	s.CPUSeconds = (w.cpu1 - w.cpu0).Seconds()
	s.CPUCores = s.CPUSeconds / secs
	s.BackendsCPUCores = (w.bcpu1 - w.bcpu0).Seconds() / secs
	if completed > 0 {
		s.CPUPer1000Checks = s.CPUSeconds / completed * 1000
	}
}

func runFloor(ctx context.Context, o Options, backends *child) (*CheckerStats, error) {
	return measureFloor(ctx, o, backends, "floor", o.SelfBin, "floor", "-kind", o.Kind, "-n", strconv.Itoa(o.N),
		"-port", strconv.Itoa(o.Port), "-interval", o.Interval.String(), "-timeout", o.Timeout.String())
}

// vsAddress is the i-th benchmark virtual service, in 198.18.0.0/15
// (the range set aside for benchmarking).
func vsAddress(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}), 80)
}

// benchToken is the director's api_token_file content in a run: the
// harness reads its heap through /debug/pprof with it.
const benchToken = "director-bench-token"

func writeConfig(o Options, listen string) (string, error) {
	tokenFile := filepath.Join(o.WorkDir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(benchToken+"\n"), 0o600); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\nlisten = %q\nresync_interval = \"30s\"\non_failure = \"quiesce\"\nfast_checks = %v\napi_token_file = %q\n\n",
		listen, !o.NoFastChecks, tokenFile)
	fmt.Fprintf(&b, "[defaults.check]\ninterval = %q\ntimeout = %q\nrise = %d\nfall = %d\n%s\n",
		o.Interval.String(), o.Timeout.String(), o.Rise, o.Fall, retryLine(o))
	// Each group's real servers are spread over its share of the virtual
	// servers; a virtual server's check is its group's.
	first := 0
	for gi, g := range o.Groups {
		nvs := max(1, o.VirtualServers*g.N/o.N)
		for v := range nvs {
			fmt.Fprintf(&b, "[[virtual_server]]\nname = \"bench-%d-%d\"\naddress = %q\nscheduler = \"wrr\"\n",
				gi, v, vsAddress(gi<<12|v).String())
			switch g.Kind {
			case "icmp", "icmp-raw":
				fmt.Fprintf(&b, "  [virtual_server.check]\n  type = \"icmp\"\n  privileged = %v\n  interval = %q\n",
					g.Kind == "icmp-raw", g.Interval.String())
			default:
				opts := kindOptions[g.Kind]
				if protocolKind(g.Kind) {
					var err error
					if opts, err = protocolOptions(g.Kind, o.WorkDir); err != nil {
						return "", err
					}
				}
				fmt.Fprintf(&b, "  [virtual_server.check]\n  type = %q\n  interval = %q\n%s", g.Kind, g.Interval.String(), opts)
			}
			for i := v; i < g.N; i += nvs {
				fmt.Fprintf(&b, "  [[virtual_server.real_server]]\n  address = %q\n  weight = 100\n", backendAddr(first+i, o.Port).String())
			}
			b.WriteString("\n")
		}
		first += g.N
	}
	path := filepath.Join(o.WorkDir, "bench-director.toml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// kindOptions are the check options of each kind, as the backends
// answer (StartBackends); exec runs /bin/true, the least a program can
// do, so that what is measured is the director's side of a run.
var kindOptions = map[string]string{
	"dialogue": "  steps = [{ send = 'PING\\r\\n', expect = '^\\+PONG' }]\n",
	"udp":      "  send = \"ping\"\n  expect = \"^pong\"\n",
	"exec":     "  command = [\"/bin/true\"]\n",
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// logEvent is one line of the director's JSON log, reduced to what the
// storm measurement reads.
type logEvent struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	RealServer string    `json:"real_server"`
	Op         string    `json:"op"`
}

// eventLog collects the director's log events as they arrive.
type eventLog struct {
	mu     sync.Mutex
	events []logEvent
}

func (l *eventLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e logEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
		}
	}
}

func (l *eventLog) since(t time.Time) []logEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logEvent
	for _, e := range l.events {
		if !e.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

func runDirector(ctx context.Context, o Options, backends *child) (*CheckerStats, *StormStats, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := writeConfig(o, listen)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, o.DirectorBin, "run", "-dry-run", "-config", cfg, "-log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting the director: %w", err)
	}
	var log eventLog
	logDone := make(chan struct{})
	go func() { log.read(stderr); close(logDone) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-logDone
		cmd.Wait()
	}()
	metricsURL := "http://" + listen + "/metrics"

	// Wait until every real server is up: the director has checked them
	// all. Read from its log, not its /metrics: at 20,000 servers a scrape
	// is tens of megabytes, and scraping in a loop would be what we measure.
	o.logf("director: waiting until all %d real servers are up", o.N)
	deadline := time.Now().Add(2*o.Interval*time.Duration(o.Rise+1) + 30*time.Second)
	for {
		up := map[string]bool{}
		for _, e := range log.since(time.Time{}) {
			if e.Msg == "real server up" {
				up[e.RealServer] = true
			}
		}
		if len(up) >= o.N {
			break
		}
		if time.Now().After(deadline) && o.MinUp > 0 && float64(len(up)) >= o.MinUp*float64(o.N) {
			o.logf("director: %d of %d real servers up at the deadline; measuring anyway (min up %.0f%%)", len(up), o.N, 100*o.MinUp)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("director: only %d of %d real servers came up", len(up), o.N)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(o.Interval) // steady state
	o.logf("director: measuring for %s", o.Window)

	// A scrape samples the counters as it starts: time the span between
	// two scrapes from their starts. The completed checks are counted per
	// real server (two series each: ~10 MB to serve and parse at 40,000),
	// so they are scraped outside the window; the schedule's few families
	// (started, skipped, lag) just before and after it, so that the
	// window's punctuality is not that of a machine busy serving and
	// parsing a scrape. A director that ignores name[] serves it all.
	scraped0 := time.Now()
	before, err := scrape(ctx, metricsURL, perServerFamilies...)
	if err != nil {
		return nil, nil, fmt.Errorf("director: /metrics before the window: %w", err)
	}
	sched0 := time.Now()
	schedBefore, err := scrape(ctx, metricsURL, scheduleFamilies...)
	if err != nil {
		return nil, nil, fmt.Errorf("director: /metrics before the window: %w", err)
	}
	w, err := measure(ctx, o, []int{cmd.Process.Pid}, backends, nil)
	if err != nil {
		return nil, nil, err
	}
	sched1 := time.Now()
	schedAfter, err := scrape(ctx, metricsURL, scheduleFamilies...)
	if err != nil {
		return nil, nil, fmt.Errorf("director: /metrics after the window: %w", err)
	}
	steadyRSS, _ := procRSS(cmd.Process.Pid)
	liveHeap, err := directorHeap(ctx, "http://"+listen, o.HeapProfile)
	if err != nil {
		return nil, nil, fmt.Errorf("director: live heap after the window: %w", err)
	}
	scraped1 := time.Now()
	after, err := scrape(ctx, metricsURL, perServerFamilies...)
	if err != nil {
		return nil, nil, fmt.Errorf("director: /metrics after the window: %w", err)
	}
	// Counter rates over the span between two scrapes, which brackets
	// the CPU window; CPU per check is CPU over the window divided by the
	// checks that rate makes in the window.
	span := scraped1.Sub(scraped0).Seconds()
	rate := func(name string) float64 { return (sumOf(after[name]) - sumOf(before[name])) / span }
	secs := sched1.Sub(sched0).Seconds()
	schedRate := func(name string) float64 { return (sumOf(schedAfter[name]) - sumOf(schedBefore[name])) / secs }
	s := &CheckerStats{Checker: "director"}
	w.fill(s, o, rate("director_checks_total")*w.end.Sub(w.start).Seconds())
	s.StartedPerSec = schedRate("director_checks_started_total")
	s.SkippedPerSec = schedRate("director_checks_skipped_total")
	s.FailedPerSec = (sumWhere(after["director_checks_total"], "result", "failure") -
		sumWhere(before["director_checks_total"], "result", "failure")) / span
	lag := histogramDelta(schedBefore["director_check_schedule_lag_seconds"], schedAfter["director_check_schedule_lag_seconds"])
	s.LagP50, s.LagP99, s.LagMax = lag.quantile(0.5), lag.quantile(0.99), lag.quantile(1)
	if total := lag.count + s.SkippedPerSec*secs; total > 0 {
		s.OnTimeShare = lag.atMost(0.1) / total
	}
	s.Goroutines = sumOf(after["go_goroutines"])
	s.GCPauseP50 = summaryQuantile(after["go_gc_duration_seconds"], 0.5)
	s.GCPauseMax = summaryQuantile(after["go_gc_duration_seconds"], 1)
	hwm, _ := procPeakRSS(cmd.Process.Pid)
	s.PeakRSSBytes = peakRSS(hwm, steadyRSS)
	s.SteadyRSSBytes, s.LiveHeapBytes = steadyRSS, liveHeap

	if o.Storm <= 0 {
		return s, nil, nil
	}
	storm, err := runStorm(ctx, o, backends, &log)
	return s, storm, err
}

func runStorm(ctx context.Context, o Options, backends *child, log *eventLog) (*StormStats, error) {
	k := min(o.Storm, o.N)
	o.logf("storm: killing %d backends at once", k)
	reply, err := backends.ask("kill " + strconv.Itoa(k))
	if err != nil {
		return nil, err
	}
	nanos, err := strconv.ParseInt(reply, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("storm: backends answered %q", reply)
	}
	killedAt := time.Unix(0, nanos)
	fallTime := detectionSchedule(o)
	bound := fallTime + o.Timeout + 100*time.Millisecond
	deadline := time.Now().Add(bound + 30*time.Second)
	var downs, applied []logEvent
	for time.Now().Before(deadline) && ctx.Err() == nil {
		downs, applied = downs[:0], applied[:0]
		seen := map[string]bool{}
		for _, e := range log.since(killedAt) {
			switch {
			case e.Msg == "real server down" && !seen[e.RealServer]:
				seen[e.RealServer] = true
				downs = append(downs, e)
			case strings.Contains(e.Msg, "ipvs table changed") && strings.HasSuffix(e.Op, "-> 0"):
				applied = append(applied, e)
			}
		}
		if len(downs) >= k && len(applied) >= k {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := &StormStats{Killed: k, Detected: len(downs), BoundSeconds: bound.Seconds(),
		RetryIntervalSeconds: o.RetryInterval.Seconds(), ExpectedMeanSeconds: expectedDetection(o).Seconds()}
	lat := make([]float64, 0, len(downs))
	within := 0
	for _, e := range downs {
		d := e.Time.Sub(killedAt)
		lat = append(lat, d.Seconds())
		if d <= bound {
			within++
		}
	}
	sort.Float64s(lat)
	if len(lat) > 0 {
		st.LatencyP50, st.LatencyP99, st.LatencyMax = pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1]
		st.LatencyMean = mean(lat)
		f := fallTime.Seconds()
		st.OverheadP50, st.OverheadP99, st.OverheadMax = st.LatencyP50-f, st.LatencyP99-f, st.LatencyMax-f
		st.WithinBound = float64(within) / float64(k)
	}
	for _, e := range applied {
		st.AllAppliedSeconds = max(st.AllAppliedSeconds, e.Time.Sub(killedAt).Seconds())
	}
	return st, nil
}

func pct(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// The families the harness reads from the director's /metrics: those it
// scrapes around the window, and those of the schedule, scraped at its
// edges.
var (
	perServerFamilies = []string{"director_checks_total", "go_goroutines", "go_gc_duration_seconds"}
	scheduleFamilies  = []string{"director_checks_started_total", "director_checks_skipped_total", "director_check_schedule_lag_seconds"}
)

// scrape reads the families named (all when none) from a /metrics.
func scrape(ctx context.Context, url string, families ...string) (map[string]*dto.MetricFamily, error) {
	if len(families) > 0 {
		q := make(neturl.Values)
		q["name[]"] = families
		url += "?" + q.Encode()
	}
	// At 40,000 real servers /metrics is ~135 MB of text (~22 series a
	// server); served and parsed on a machine the run has loaded, 30 s
	// was seen to run out.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// errNoProfiles: the director serves no /debug/pprof (an older build).
var errNoProfiles = errors.New("director: no /debug/pprof")

// directorHeap reads the director's live heap: HeapAlloc right after the
// collection that /debug/pprof/heap?gc=1 makes. With profile set, it
// also writes the heap profile there.
func directorHeap(ctx context.Context, base, profile string) (int64, error) {
	get := func(query string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/heap?"+query, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+benchToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode == http.StatusNotFound {
			return nil, errNoProfiles
		}
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("director: GET /debug/pprof/heap: %s: %.200s", resp.Status, b)
		}
		return b, err
	}
	text, err := get("gc=1&debug=1")
	if errors.Is(err, errNoProfiles) {
		return 0, nil // a director from before /debug/pprof: no live heap figure
	}
	if err != nil {
		return 0, err
	}
	_, after, ok := strings.Cut(string(text), "\n# HeapAlloc = ")
	if !ok {
		return 0, fmt.Errorf("director: /debug/pprof/heap has no HeapAlloc line")
	}
	n, _, _ := strings.Cut(after, "\n")
	live, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("director: /debug/pprof/heap: HeapAlloc %q: %w", n, err)
	}
	if profile != "" {
		b, err := get("")
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(profile, b, 0o644); err != nil {
			return 0, err
		}
	}
	return live, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func sumOf(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	var s float64
	for _, m := range f.Metric {
		s += value(m)
	}
	return s
}

func sumWhere(f *dto.MetricFamily, label, want string) float64 {
	if f == nil {
		return 0
	}
	var s float64
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == want {
				s += value(m)
			}
		}
	}
	return s
}

func summaryQuantile(f *dto.MetricFamily, q float64) float64 {
	if f == nil || len(f.Metric) == 0 || f.Metric[0].Summary == nil {
		return 0
	}
	for _, qq := range f.Metric[0].Summary.Quantile {
		if qq.GetQuantile() == q {
			return qq.GetValue()
		}
	}
	return 0
}

// hist is the difference of two scrapes of a histogram.
type hist struct {
	bounds []float64 // upper bounds, ascending; +Inf last
	cum    []float64 // cumulative counts
	count  float64
}

func histogramDelta(before, after *dto.MetricFamily) hist {
	get := func(f *dto.MetricFamily) *dto.Histogram {
		if f == nil || len(f.Metric) == 0 {
			return nil
		}
		return f.Metric[0].Histogram
	}
	a, b := get(after), get(before)
	var h hist
	if a == nil {
		return h
	}
	for i, bk := range a.Bucket {
		c := float64(bk.GetCumulativeCount())
		if b != nil && i < len(b.Bucket) {
			c -= float64(b.Bucket[i].GetCumulativeCount())
		}
		h.bounds = append(h.bounds, bk.GetUpperBound())
		h.cum = append(h.cum, c)
	}
	h.count = float64(a.GetSampleCount())
	if b != nil {
		h.count -= float64(b.GetSampleCount())
	}
	h.bounds = append(h.bounds, math.Inf(1))
	h.cum = append(h.cum, h.count)
	return h
}

// quantile is the upper bound of the bucket holding the q-quantile: the
// true value is at most this.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 {
		return 0
	}
	for i, c := range h.cum {
		if c >= q*h.count {
			return h.bounds[i]
		}
	}
	return math.Inf(1)
}

// atMost is how many observations were at most v (v must be a bucket bound).
func (h hist) atMost(v float64) float64 {
	for i, b := range h.bounds {
		if b == v {
			return h.cum[i]
		}
	}
	return 0
}
