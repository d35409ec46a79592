package checks

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/leaktest"
)

// slack is how much later than its timeout a probe may return before a
// test calls it stuck. Generous: the machines running tests are noisy.
const slack = 2 * time.Second

// probeWithin runs p with timeout on the context and fails the test if it
// does not return within timeout+slack.
func probeWithin(t *testing.T, p Prober, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	res := p.Probe(ctx)
	if el := time.Since(start); el > timeout+slack {
		t.Errorf("Probe took %v with a timeout of %v", el, timeout)
	}
	if res.Start.IsZero() || res.Duration <= 0 {
		t.Errorf("Result without Start/Duration: %+v", res)
	}
	if res.OK != (res.Reason == "") {
		t.Errorf("Result OK=%v with reason %q", res.OK, res.Reason)
	}
	return res
}

func mustNew(t *testing.T, spec Spec) Prober {
	t.Helper()
	p, err := New(spec)
	if err != nil {
		t.Fatalf("New(%s): %v", spec, err)
	}
	if testLoop != nil {
		return testLoop.FastProber(p) // fast_test.go: the prober tests on the fast path
	}
	return p
}

func wantOK(t *testing.T, res Result) {
	t.Helper()
	if !res.OK {
		t.Fatalf("probe failed: %q, want OK", res.Reason)
	}
}

func wantReason(t *testing.T, res Result, want string) {
	t.Helper()
	if res.OK || res.Reason != want {
		t.Fatalf("probe: OK=%v reason %q, want failure %q", res.OK, res.Reason, want)
	}
}

func wantReasonPrefix(t *testing.T, res Result, prefix string) {
	t.Helper()
	if res.OK || !strings.HasPrefix(res.Reason, prefix) {
		t.Fatalf("probe: OK=%v reason %q, want failure starting %q", res.OK, res.Reason, prefix)
	}
}

// checkNoLeak fails the test unless the goroutines started between the
// call and the call of the function it returns have ended: call it around
// a probe while its server starts no goroutines of its own.
func checkNoLeak(t *testing.T) func() { t.Helper(); return leaktest.Around(t) }

// noLeaks fails the test unless every goroutine started during it has
// ended once the test and its cleanups are done. Call it first.
func noLeaks(t *testing.T) { t.Helper(); leaktest.Check(t) }

// ipv6Loopback reports whether ::1 can be used.
func ipv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}
