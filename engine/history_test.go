package engine

import (
	"math"
	"testing"
	"time"
	"unsafe"

	"github.com/lvsdirector/director/checks"
)

// A history record is 24 bytes (56 before "Memory, second pass: records"
// in docs/performance.md): ten per real server, 20,000 servers.
func TestHistoryRecordIs24Bytes(t *testing.T) {
	if n := unsafe.Sizeof(record{}); n != 24 {
		t.Errorf("a history record is %d bytes, want 24", n)
	}
}

// A record gives back the CheckResult it was made of, every field.
func TestHistoryRecordKeepsItsResult(t *testing.T) {
	at := time.Date(2026, 12, 2, 4, 50, 1, 123456789, time.UTC)
	for _, r := range []CheckResult{
		{Time: at, OK: true},
		{Time: at, OK: true, Duration: 1},
		{Time: at, OK: true, Duration: 1234567 * time.Nanosecond, Check: "http"},
		{Time: at, Reason: "timeout", Duration: time.Second},
		{Time: at, Reason: "status 503", Duration: 42 * time.Hour, Check: "second"},
		{Time: at, Reason: "error: exit status 3: disk full on /var"},
		{Time: at, OK: true, Duration: recordMaxTook},
		{Time: at, Reason: "refused", Duration: -recordMaxTook - 1},
		{Time: at, Check: "tcp"}, // failed with no reason: as written
		{Time: time.Unix(0, 0), OK: true},
	} {
		rec := newRecord(r)
		got := rec.result()
		if !got.Time.Equal(r.Time) || got.OK != r.OK || got.Reason != r.Reason || got.Duration != r.Duration || got.Check != r.Check {
			t.Errorf("record of %+v gives %+v", r, got)
		}
	}
}

// A history keeps the last results in order, and its summary names them.
func TestHistoryRingOrderAndSummary(t *testing.T) {
	var h history
	at := time.Unix(1000, 0)
	reasons := []string{"", "timeout", "", "refused", "reset", "", "status 500"}
	for i, reason := range reasons {
		h.add(CheckResult{Time: at.Add(time.Duration(i) * time.Second), OK: reason == "", Reason: reason, Duration: time.Duration(i) * time.Millisecond}, 4)
	}
	got := h.results()
	if len(got) != 4 {
		t.Fatalf("%d results kept, want 4", len(got))
	}
	for i, r := range got {
		j := len(reasons) - 4 + i
		if r.Reason != reasons[j] || r.OK != (reasons[j] == "") || r.Duration != time.Duration(j)*time.Millisecond || !r.Time.Equal(at.Add(time.Duration(j)*time.Second)) {
			t.Errorf("result %d = %+v, want the %dth added", i, r, j)
		}
	}
	if s := h.summary(); s != "refused, reset, ok, status 500" {
		t.Errorf("summary %q", s)
	}
	if h.failures != 1 || h.successes != 0 || !unixTime(h.lastSuccess).Equal(at.Add(5*time.Second)) || !unixTime(h.lastFailure).Equal(at.Add(6*time.Second)) {
		t.Errorf("counts %+v", h)
	}
}

// A history is 56 bytes (its times of last success and failure are Unix
// nanoseconds: 96 bytes with time.Time; its counts and ring position
// int32: 64 with int), and a server 192, the 192 size class (224 before
// "Memory, third pass": its state's time as Unix nanoseconds, 16 bytes
// less; reported 16 bytes, was 24; the history 8 less).
func TestHistoryAndServerSizes(t *testing.T) {
	if n := unsafe.Sizeof(history{}); n != 56 {
		t.Errorf("history is %d bytes, want 56", n)
	}
	if n := unsafe.Sizeof(reported{}); n != 16 {
		t.Errorf("reported is %d bytes, want 16", n)
	}
	if n := unsafe.Sizeof(server{}); n != 192 {
		t.Errorf("server is %d bytes, want 192", n)
	}
}

// A history's counts saturate rather than wrap.
func TestHistoryCountsSaturate(t *testing.T) {
	h := history{failures: math.MaxInt32 - 1, successes: math.MaxInt32 - 1}
	h.add(CheckResult{Time: time.Now()}, 1)
	h.add(CheckResult{Time: time.Now()}, 1)
	if h.failures != math.MaxInt32 {
		t.Errorf("failures %d, want %d", h.failures, math.MaxInt32)
	}
	h = history{successes: math.MaxInt32}
	h.add(CheckResult{OK: true, Time: time.Now()}, 1)
	if h.successes != math.MaxInt32 {
		t.Errorf("successes %d, want %d", h.successes, math.MaxInt32)
	}
}

// A server's only check keeps no history of its own (the server's is
// its), so its record is 56 bytes (144 with a history inline), its
// runner, server and the next check its runner feeds included (they
// replaced a listener, 16 bytes, and its slot in a map of keys; its key
// and spec are its runner's).
func TestServerCheckSize(t *testing.T) {
	if n := unsafe.Sizeof(serverCheck{}); n != 56 {
		t.Errorf("serverCheck is %d bytes, want 56", n)
	}
	e := adoptedEngine(t, memoryConfig(t, 8, 2), false)
	for key := range e.probes {
		e.observe(probeResult{key: key, result: checks.Result{Reason: "refused", Start: time.Now()}})
	}
	for id, s := range e.servers.all() {
		if s.history.len() != 1 {
			t.Errorf("%v: %d results in its history, want 1", id, s.history.len())
		}
		if s.checks[0].history != nil {
			t.Errorf("%v: its only check keeps a history of its own", id)
		}
	}
}
