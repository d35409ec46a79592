package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// cfloorSource is the C event-loop floor (cfloor/cfloor.c): one thread,
// epoll, non-blocking sockets, many checks per wake-up. It is built with
// the system's C compiler when a run asks for it.
//
//go:embed cfloor/cfloor.c
var cfloorSource []byte

// cbackendsSource is the tcp and http backends as one C event loop
// (cbackends/cbackends.c), for capacity runs where the Go backends'
// goroutine per connection takes CPU the director under test needs.
//
//go:embed cbackends/cbackends.c
var cbackendsSource []byte

// BuildCFloor compiles the C floor into dir and returns the binary's
// path, or a reason it cannot run here (no C compiler) with a nil error.
func BuildCFloor(ctx context.Context, dir string) (bin, skipped string, err error) {
	return buildC(ctx, dir, "cfloor", cfloorSource)
}

// buildC compiles one C source file with the system's compiler (CC, else
// cc) into dir/name.
func buildC(ctx context.Context, dir, name string, source []byte) (bin, skipped string, err error) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return "", fmt.Sprintf("no C compiler (%s) on PATH: apt-get install gcc", cc), nil
	}
	src := filepath.Join(dir, name+".c")
	bin = filepath.Join(dir, name)
	if err := os.WriteFile(src, source, 0o644); err != nil {
		return "", "", err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cc, "-O2", "-Wall", "-o", bin, src).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("building %s (%s -O2): %v\n%s", name, cc, err, out)
	}
	return bin, "", nil
}

// runCFloor measures the C floor over a window on the same backends, as
// runFloor does the Go one: one cfloor per group (each with its kind,
// interval and address range, as startBackends lays them out), their CPU
// summed, their on-time share counted as the director's is.
func runCFloor(ctx context.Context, o Options, backends *child) (*CheckerStats, string, error) {
	bin, skipped, err := BuildCFloor(ctx, o.WorkDir)
	if err != nil || skipped != "" {
		return nil, skipped, err
	}
	var floors []*child
	defer func() {
		for _, f := range floors {
			f.finish()
		}
	}()
	offset := 0
	for _, g := range o.Groups {
		f, err := startChild(ctx, bin, "-kind", g.Kind, "-n", strconv.Itoa(g.N), "-first", strconv.Itoa(offset),
			"-port", strconv.Itoa(o.Port), "-interval-ms", strconv.FormatInt(g.Interval.Milliseconds(), 10),
			"-timeout-ms", strconv.FormatInt(max(1, o.Timeout.Milliseconds()), 10))
		if err != nil {
			return nil, "", fmt.Errorf("C floor: %w", err)
		}
		floors = append(floors, f)
		offset += g.N
	}
	o.logf("C floor: warming up for one interval, then measuring for %s", o.Window)
	time.Sleep(o.Interval + 500*time.Millisecond) // every target has had its first run
	before, err := cfloorCounts(floors)
	if err != nil {
		return nil, "", err
	}
	pids := make([]int, len(floors))
	for i, f := range floors {
		pids[i] = f.cmd.Process.Pid
	}
	w, err := measure(ctx, o, pids, backends, nil)
	if err != nil {
		return nil, "", err
	}
	after, err := cfloorCounts(floors)
	if err != nil {
		return nil, "", err
	}
	var rss int64
	for _, pid := range pids {
		peak, _ := procPeakRSS(pid)
		rss += peak
	}
	for _, f := range floors {
		if _, err := f.finish(); err != nil {
			return nil, "", fmt.Errorf("C floor: %w", err)
		}
	}
	floors = nil
	s := &CheckerStats{Checker: "C floor", PeakRSSBytes: rss}
	d := after.minus(before)
	w.fill(s, o, float64(d.OK+d.Failed))
	secs := max(w.end.Sub(w.start).Seconds(), 1e-9)
	s.StartedPerSec = float64(d.Started) / secs
	s.SkippedPerSec = float64(d.Skipped) / secs
	s.FailedPerSec = float64(d.Failed) / secs
	if total := d.Started + d.Skipped; total > 0 {
		s.OnTimeShare = float64(d.OnTime) / float64(total)
	}
	return s, "", nil
}

// cfloorStats is what cfloor has counted since it started.
type cfloorStats struct {
	OK, Failed, Started, OnTime, Skipped uint64
}

func (a cfloorStats) minus(b cfloorStats) cfloorStats {
	return cfloorStats{a.OK - b.OK, a.Failed - b.Failed, a.Started - b.Started, a.OnTime - b.OnTime, a.Skipped - b.Skipped}
}

// cfloorCounts asks every cfloor for its counts and sums them.
func cfloorCounts(floors []*child) (cfloorStats, error) {
	var sum cfloorStats
	for _, f := range floors {
		line, err := f.ask("count")
		if err != nil {
			return sum, fmt.Errorf("C floor: count: %w", err)
		}
		var c cfloorStats
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return sum, fmt.Errorf("C floor: count answered %q: %w", line, err)
		}
		sum.OK += c.OK
		sum.Failed += c.Failed
		sum.Started += c.Started
		sum.OnTime += c.OnTime
		sum.Skipped += c.Skipped
	}
	return sum, nil
}

// measureFloor starts a floor checker (a child that prints "ready", checks
// until its stdin closes and then prints its FloorStats as JSON), lets it
// warm up for an interval and measures it over a window.
func measureFloor(ctx context.Context, o Options, backends *child, name, bin string, args ...string) (*CheckerStats, error) {
	f, err := startChild(ctx, bin, args...)
	if err != nil {
		return nil, err
	}
	o.logf("%s: warming up for one interval, then measuring for %s", name, o.Window)
	time.Sleep(o.Interval + 500*time.Millisecond) // every target has had its first, jittered run
	w, err := measure(ctx, o, []int{f.cmd.Process.Pid}, backends, nil)
	if err != nil {
		f.finish()
		return nil, err
	}
	rss, _ := procPeakRSS(f.cmd.Process.Pid)
	out, err := f.finish()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var fs FloorStats
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		return nil, fmt.Errorf("%s output %q: %w", name, out, err)
	}
	s := &CheckerStats{Checker: name, PeakRSSBytes: rss}
	// A floor keeps no counts per window; the backends' count is its
	// completed checks (each connection accepted is one check).
	w.fill(s, o, float64(w.seen1-w.seen0))
	s.FailedPerSec = float64(fs.Failed) / max(w.end.Sub(w.start).Seconds(), 1) // whole run; it should be 0
	return s, nil
}
