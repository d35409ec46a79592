package checks

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// countingServer accepts connections, counts them and closes them.
func countingServer(t *testing.T) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	target := testutil.ServeConns(t, testutil.Listen(t), func(net.Conn) { n.Add(1) })
	return target, &n
}

// A probe whose deadline passed before it started is not run, and says
// nothing about the server.
func TestExpiredDeadlineIsInconclusive(t *testing.T) {
	noLeaks(t)
	target, accepted := countingServer(t)
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	for _, spec := range []Spec{
		{Type: "http", Target: target, Timeout: time.Second},
		{Type: "https", Target: target, Options: HTTPOptions{TLSOptions: TLSOptions{TLSSkipVerify: true}}},
		{Type: "tcp", Target: target, Timeout: time.Second},
		{Type: "icmp", Target: netip.AddrPortFrom(target.Addr(), 0), Timeout: time.Second},
	} {
		res := mustNew(t, spec).Probe(expired)
		if res.OK || !res.Inconclusive || res.Reason != "local: deadline passed before the probe started" {
			t.Errorf("%s: %+v, want inconclusive: deadline passed", spec, res)
		}
		if res.Start.IsZero() {
			t.Errorf("%s: no start time", spec)
		}
	}
	// A deadline that passes during the probe is the server's timeout.
	res := probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: testutil.HangingServer(t), Options: TCPOptions{Expect: "x"}}), 100*time.Millisecond)
	if res.Inconclusive || res.Reason != "timeout" {
		t.Errorf("a probe that ran out of time: %+v, want a conclusive timeout", res)
	}
	time.Sleep(50 * time.Millisecond) // let a stray connection be counted
	if n := accepted.Load(); n != 0 {
		t.Errorf("the server saw %d connections from probes that should not have run", n)
	}
}

// fdChildEnv carries the target to TestFDExhaustionChild, run as a child
// process: the file descriptor limit it lowers and uses up is its own.
const fdChildEnv = "DIRECTOR_TEST_FD_EXHAUSTION_TARGET"

// With the director's file descriptors used up, a probe fails without
// reaching the server, and its result is inconclusive rather than a
// failure of the server.
func TestFDExhaustionIsInconclusive(t *testing.T) {
	target, accepted := countingServer(t)
	// The same probes with descriptors to spare reach the server: the child
	// would fail the same way for any other reason.
	for _, typ := range []string{"http", "tcp"} {
		if res := probeWithin(t, mustNew(t, Spec{Type: typ, Target: target}), 5*time.Second); res.Inconclusive {
			t.Fatalf("%s with descriptors to spare: %+v", typ, res)
		}
	}
	for end := time.Now().Add(5 * time.Second); accepted.Load() < 2 && time.Now().Before(end); {
		time.Sleep(time.Millisecond) // the server counts after accepting
	}
	before := accepted.Load()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFDExhaustionChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+target.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	results := map[string]Result{}
	for _, line := range strings.Split(string(out), "\n") {
		typ, js, ok := strings.Cut(line, " RESULT ")
		if !ok {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatalf("child said %q: %v", line, err)
		}
		results[typ] = r
	}
	for _, typ := range []string{"http", "tcp"} {
		r, ok := results[typ]
		if !ok {
			t.Fatalf("no %s result from the child:\n%s", typ, out)
		}
		if r.OK || !r.Inconclusive || r.Reason != "local: too many open files" {
			t.Errorf("%s with no descriptors left: %+v, want inconclusive: too many open files", typ, r)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load() - before; n != 0 {
		t.Errorf("the server saw %d connections from probes that could not open a socket", n)
	}
}

// TestFDExhaustionChild is TestFDExhaustionIsInconclusive's child: it
// lowers its own open-file limit, uses every descriptor up and prints the
// results of probes that need one.
func TestFDExhaustionChild(t *testing.T) {
	target := os.Getenv(fdChildEnv)
	if target == "" {
		t.Skip("run by TestFDExhaustionIsInconclusive in a process of its own")
	}
	ap := netip.MustParseAddrPort(target)
	probers := map[string]Prober{}
	for _, typ := range []string{"http", "tcp"} {
		probers[typ] = mustNew(t, Spec{Type: typ, Target: ap, Timeout: 2 * time.Second})
	}
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim.Max = old.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if errors.Is(err, syscall.EMFILE) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for typ, p := range probers {
		res := p.Probe(context.Background())
		js, _ := json.Marshal(res)
		// Printed, not logged: the parent reads stdout.
		os.Stdout.WriteString(typ + " RESULT " + string(js) + "\n")
	}
}
