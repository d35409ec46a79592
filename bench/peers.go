package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Peer mode: the checkers the director replaces, ldirectord and
// keepalived, run as real processes against the same backends with
// equivalent checks, each in its own window of the same run. What each
// peer did is counted on the backends' side (every accepted connection is
// one check), and what it cost is read from /proc: the peer's process and
// every process under it (keepalived's checker child; ldirectord's
// ipvsadm children, reaped or not).

// PeerStats is one peer checker's figures over its window.
type PeerStats struct {
	CheckerStats
	Version string `json:"version,omitempty"`
	// Processes is how many processes were measured at the window's end
	// (keepalived: its parent and its checker child).
	Processes int `json:"processes,omitempty"`
	// SettleSeconds is how long the peer's start-up churn (ipvsadm calls,
	// first rounds) was waited out before the window.
	SettleSeconds float64 `json:"settle_seconds,omitempty"`
	// Note says what differs from the director's settings, if anything.
	Note string `json:"note,omitempty"`
	// Skipped says why the peer was not measured.
	Skipped string `json:"skipped,omitempty"`
	// DirectorRatio is the director's CPU per check over the peer's.
	DirectorRatio float64 `json:"director_over_peer_cpu,omitempty"`
	// FloorRatio is the floor checker's CPU per check over the peer's.
	FloorRatio float64 `json:"floor_over_peer_cpu,omitempty"`
}

// ParsePeers reads a comma-separated list of peer names ("" is none).
func ParsePeers(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p != "ldirectord" && p != "keepalived" {
			return nil, fmt.Errorf("unknown peer %q: want ldirectord or keepalived", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// runPeers measures every peer in o.Peers in turn, each in its own window.
// A peer that cannot run here is reported as skipped, with the reason.
func runPeers(ctx context.Context, o Options, backends *child) ([]PeerStats, error) {
	var out []PeerStats
	for _, name := range o.Peers {
		ps, err := runPeer(ctx, o, backends, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if ps.Skipped != "" {
			o.logf("%s: skipped: %s", name, ps.Skipped)
		}
		out = append(out, *ps)
	}
	return out, nil
}

// fillPeerRatios sets each measured peer's ratios once the director (and
// the floor) have been measured.
func (r *Report) fillPeerRatios() {
	for i := range r.Peers {
		p := &r.Peers[i]
		if p.Skipped != "" || p.CPUPer1000Checks <= 0 {
			continue
		}
		p.DirectorRatio = r.Director.CPUPer1000Checks / p.CPUPer1000Checks
		if r.Floor != nil {
			p.FloorRatio = r.Floor.CPUPer1000Checks / p.CPUPer1000Checks
		}
	}
}

// peerSpec is how to run one peer.
type peerSpec struct {
	name    string
	bin     string
	config  string   // file content
	args    []string // after the binary; "CONF" is replaced by the config's path
	version []string // arguments that print the version
	note    string
}

// lookPeer finds a peer's binary on PATH or in the sbin directories (which
// a non-root PATH often lacks).
func lookPeer(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", name)
}

// specFor builds the spec of a named peer, or says why it cannot run here.
func specFor(o Options, name string) (*peerSpec, string) {
	if len(o.Groups) > 1 {
		return nil, "peer mode runs with one check kind and interval (not with -groups)"
	}
	bin, err := lookPeer(name)
	switch name {
	case "ldirectord":
		if err != nil {
			return nil, "ldirectord is not installed (apt-get install --no-install-recommends ldirectord)"
		}
		cfg, note, err := LdirectordConfig(o)
		if err != nil {
			return nil, err.Error()
		}
		return &peerSpec{name: name, bin: bin, config: cfg, args: []string{"CONF", "start"},
			version: []string{"--version"}, note: note}, ""
	case "keepalived":
		if err != nil {
			return nil, "keepalived is not installed (apt-get install --no-install-recommends keepalived)"
		}
		if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
			return nil, "this kernel has no IPVS, and keepalived's checker refuses to run without it " +
				"(\"IPVS: Can't initialize ipvs\"); measure it inside the e2e VM: " +
				"DIRECTOR_PEER_BENCH=1 go test ./e2e/ -run TestPeerBench -v -timeout 30m"
		}
		cfg, note, err := KeepalivedConfig(o)
		if err != nil {
			return nil, err.Error()
		}
		// -n: stay in the foreground; -l: log to the console; -D: detailed
		// log; -C: only the checker subsystem (no VRRP).
		return &peerSpec{name: name, bin: bin, config: cfg, args: []string{"-n", "-l", "-D", "-C", "-f", "CONF"},
			version: []string{"-v"}, note: note}, ""
	}
	return nil, "unknown peer"
}

// wholeSeconds rounds d up to whole seconds, at least one: ldirectord takes
// its interval and timeouts in whole seconds.
func wholeSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// LdirectordConfig is the ldirectord.cf equivalent to the director's bench
// config for o: the same virtual services and real servers, quiescent on
// failure, checks of the same kind every interval. It also returns a note
// on what could not be made equal.
func LdirectordConfig(o Options) (cfg, note string, err error) {
	if o.Interval%time.Second != 0 {
		return "", "", fmt.Errorf("ldirectord takes whole seconds: interval %s cannot be matched", o.Interval)
	}
	var notes []string
	timeout := wholeSeconds(o.Timeout)
	if time.Duration(timeout)*time.Second != o.Timeout {
		notes = append(notes, fmt.Sprintf("timeout %ds (ldirectord takes whole seconds; director %s)", timeout, o.Timeout))
	}
	notes = append(notes, "fork=no: one serial round of checks, then checkinterval of sleep",
		fmt.Sprintf("rise is 1 in ldirectord (director rise %d)", o.Rise))
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by director-bench: %d %s real servers over %d virtual services.\n", o.N, o.Kind, o.VirtualServers)
	fmt.Fprintf(&b, "checkinterval=%d\nchecktimeout=%d\nnegotiatetimeout=%d\nfailurecount=%d\n",
		int(o.Interval/time.Second), timeout, timeout, o.Fall)
	b.WriteString("fork=no\nquiescent=yes\nsupervised=yes\nautoreload=no\n\n")
	for v := range o.VirtualServers {
		fmt.Fprintf(&b, "virtual=%s\n", vsAddress(v))
		for i := v; i < o.N; i += o.VirtualServers {
			fmt.Fprintf(&b, "\treal=%s masq 100\n", backendAddr(i, o.Port))
		}
		b.WriteString("\tprotocol=tcp\n\tscheduler=wrr\n")
		if o.Kind == "http" {
			b.WriteString("\tservice=http\n\tchecktype=negotiate\n\trequest=\"/\"\n")
		} else {
			b.WriteString("\tservice=none\n\tchecktype=connect\n")
		}
		b.WriteString("\n")
	}
	return b.String(), strings.Join(notes, "; "), nil
}

// KeepalivedConfig is the keepalived.conf (checker part) equivalent to the
// director's bench config for o, and a note on what differs.
func KeepalivedConfig(o Options) (cfg, note string, err error) {
	secs := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by director-bench: %d %s real servers over %d virtual services.\n", o.N, o.Kind, o.VirtualServers)
	b.WriteString("global_defs {\n    router_id director-bench\n}\n\n")
	for v := range o.VirtualServers {
		a := vsAddress(v)
		fmt.Fprintf(&b, "virtual_server %s %d {\n    delay_loop %s\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n",
			a.Addr(), a.Port(), secs(o.Interval))
		for i := v; i < o.N; i += o.VirtualServers {
			r := backendAddr(i, o.Port)
			fmt.Fprintf(&b, "    real_server %s %d {\n        weight 100\n        inhibit_on_failure\n", r.Addr(), r.Port())
			if o.Kind == "http" {
				b.WriteString("        HTTP_GET {\n            url {\n                path /\n                status_code 200\n            }\n")
			} else {
				b.WriteString("        TCP_CHECK {\n")
			}
			// keepalived declares a server down after retry+1 failures in
			// a row: retry = fall - 1.
			fmt.Fprintf(&b, "            connect_timeout %s\n            retry %d\n            delay_before_retry %s\n        }\n    }\n",
				secs(o.Timeout), max(0, o.Fall-1), secs(o.Interval))
		}
		b.WriteString("}\n\n")
	}
	return b.String(), "rise is 1 in keepalived (director rise " + strconv.Itoa(o.Rise) + ")", nil
}

// outputLog follows a peer's output: when it last said something, and its
// last lines for error messages.
type outputLog struct {
	mu    sync.Mutex
	lines int
	last  time.Time
	tail  []string
}

func (l *outputLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines++
		l.last = time.Now()
		l.tail = append(l.tail, sc.Text())
		if len(l.tail) > 40 {
			l.tail = l.tail[len(l.tail)-20:]
		}
		l.mu.Unlock()
	}
}

func (l *outputLog) state() (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines, l.last
}

func (l *outputLog) lastLines(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tail
	if len(t) > n {
		t = t[len(t)-n:]
	}
	return strings.Join(t, "\n")
}

// procStat is what the harness reads of /proc/PID/stat.
type procStat struct {
	ppid                        int
	utime, stime, cutime, cstme int64 // clock ticks
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var st procStat
	var errs [5]error
	st.ppid, errs[0] = strconv.Atoi(f[1])
	st.utime, errs[1] = strconv.ParseInt(f[11], 10, 64)
	st.stime, errs[2] = strconv.ParseInt(f[12], 10, 64)
	st.cutime, errs[3] = strconv.ParseInt(f[13], 10, 64)
	st.cstme, errs[4] = strconv.ParseInt(f[14], 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// treeCPU is the CPU time used so far by pid and every live process under
// it, each with its reaped children (so an ipvsadm that ran and was
// waited for is counted too), and how many processes that was.
func treeCPU(pid int) (time.Duration, int, error) {
	root, err := readProcStat(pid)
	if err != nil {
		return 0, 0, err
	}
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if st, err := readProcStat(p); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	ticks := root.utime + root.stime + root.cutime + root.cstme
	n := 1
	queue := append([]int(nil), children[pid]...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		st, err := readProcStat(p)
		if err != nil {
			continue // it ended meanwhile; its parent's cutime has it
		}
		ticks += st.utime + st.stime + st.cutime + st.cstme
		n++
		queue = append(queue, children[p]...)
	}
	return time.Duration(ticks) * time.Second / clockTicks, n, nil
}

// reapedCPU is the CPU time of pid's children that have ended and been
// waited for: it grows while ldirectord runs ipvsadm.
func reapedCPU(pid int) int64 {
	st, err := readProcStat(pid)
	if err != nil {
		return -1
	}
	return st.cutime + st.cstme
}

func peerVersion(ctx context.Context, s *peerSpec) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, s.bin, s.version...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// runPeer runs one peer: writes its config, starts it in the foreground in
// its own process group, waits out its start-up churn, measures it over
// o.Window, and stops it (and everything it started).
func runPeer(ctx context.Context, o Options, backends *child, name string) (*PeerStats, error) {
	ps := &PeerStats{CheckerStats: CheckerStats{Checker: name}}
	spec, why := specFor(o, name)
	if spec == nil {
		ps.Skipped = why
		return ps, nil
	}
	ps.Version = peerVersion(ctx, spec)
	ps.Note = spec.note
	conf := filepath.Join(o.WorkDir, name+".conf")
	if err := os.WriteFile(conf, []byte(spec.config), 0o644); err != nil {
		return nil, err
	}
	args := make([]string, len(spec.args))
	for i, a := range spec.args {
		if a == "CONF" {
			a = conf
		}
		args[i] = a
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(spec.bin, args...)
	cmd.Dir = o.WorkDir
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("starting %s: %w", spec.bin, err)
	}
	pw.Close()
	pid := cmd.Process.Pid
	var out outputLog
	outDone := make(chan struct{})
	go func() { out.read(pr); close(outDone) }()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		// TERM the group (keepalived removes its services), then KILL
		// what is left; ldirectord's stop runs ipvsadm per real server,
		// which is not worth waiting for here.
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
		select {
		case <-outDone:
		case <-time.After(5 * time.Second):
		}
		pr.Close()
	}()
	o.logf("%s (%s): started as pid %d: %s %s", name, ps.Version, pid, spec.bin, strings.Join(args, " "))

	settled, err := settlePeer(ctx, o, backends, pid, &out, exited)
	if err != nil {
		if ctx.Err() == nil {
			select {
			case <-exited:
				err = fmt.Errorf("%w (%v)", err, waitErr)
			default:
			}
		}
		return nil, fmt.Errorf("%w; its last output:\n%s", err, out.lastLines(20))
	}
	ps.SettleSeconds = settled.Seconds()
	o.logf("%s: start-up churn over after %.1fs; measuring for %s", name, ps.SettleSeconds, o.Window)

	w := &window{}
	if w.seen0, err = backendCount(backends); err != nil {
		return nil, err
	}
	if w.cpu0, _, err = treeCPU(pid); err != nil {
		return nil, err
	}
	w.start = time.Now()
	select {
	case <-time.After(o.Window):
	case <-exited:
		return nil, fmt.Errorf("exited during its window (%v); its last output:\n%s", waitErr, out.lastLines(20))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if w.cpu1, ps.Processes, err = treeCPU(pid); err != nil {
		return nil, err
	}
	w.end = time.Now()
	if w.seen1, err = backendCount(backends); err != nil {
		return nil, err
	}
	ps.PeakRSSBytes = treeRSS(pid)
	// The backends' count is the peer's completed checks.
	w.fill(&ps.CheckerStats, o, float64(w.seen1-w.seen0))
	return ps, nil
}

// settlePeer waits until the peer's start-up churn is over: it has been
// silent, and has run no child process, for max(3s, 2 intervals), and at
// least N checks (a full round) reached the backends in that quiet.
func settlePeer(ctx context.Context, o Options, backends *child, pid int, out *outputLog, exited <-chan struct{}) (time.Duration, error) {
	start := time.Now()
	quiet := max(3*time.Second, 2*o.Interval)
	deadline := start.Add(3*time.Minute + time.Duration(o.N)*100*time.Millisecond)
	lines, reaped := -1, int64(-2)
	var mark uint64
	quietSince := start
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-exited:
			return 0, errors.New("exited while starting")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		n, _ := out.state()
		r := reapedCPU(pid)
		seen, err := backendCount(backends)
		if err != nil {
			return 0, err
		}
		if n != lines || r != reaped {
			lines, reaped, mark, quietSince = n, r, seen, time.Now()
			continue
		}
		if time.Since(quietSince) >= quiet && seen-mark >= uint64(o.N) {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("start-up churn not over after %s (%d checks seen in the last %s of quiet)",
				time.Since(start).Round(time.Second), seen-mark, time.Since(quietSince).Round(time.Second))
		}
	}
}

// treeRSS is the sum of the peak RSS of pid and the processes under it.
func treeRSS(pid int) int64 {
	total, _ := procPeakRSS(pid)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if st, err := readProcStat(p); err == nil && st.ppid == pid {
			rss, _ := procPeakRSS(p)
			total += rss
		}
	}
	return total
}

// printPeers writes the peers' lines under the report's table.
func (r *Report) printPeers(w io.Writer) {
	for _, p := range r.Peers {
		if p.Skipped != "" {
			fmt.Fprintf(w, "\n%s: skipped: %s\n", p.Checker, p.Skipped)
			continue
		}
		fmt.Fprintf(w, "\n%s (%s): checked %.0f/s of %.0f/s wanted (%.0f%%), %.3f CPU s per 1,000 checks, %d processes measured, start-up churn %.0fs\n",
			p.Checker, p.Version, p.BackendPerSec, p.PlannedPerSec, 100*p.BackendPerSec/p.PlannedPerSec,
			p.CPUPer1000Checks, p.Processes, p.SettleSeconds)
		if p.Note != "" {
			fmt.Fprintf(w, "  differs: %s\n", p.Note)
		}
		fmt.Fprintf(w, "  director ÷ %s, CPU per check: %.2f×", p.Checker, p.DirectorRatio)
		if p.FloorRatio > 0 {
			fmt.Fprintf(w, "; floor ÷ %s: %.2f×", p.Checker, p.FloorRatio)
		}
		fmt.Fprintln(w)
	}
}
