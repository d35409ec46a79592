package metrics

import (
	"testing"
	"time"
	"unsafe"
)

// A real server's series are one struct of 168 bytes (200 before
// docs/performance.md "Memory, second pass: records"), and its failure
// counters hold only the reason classes it failed in (a counter for every
// class was 160 bytes more).
func TestServerSeriesSize(t *testing.T) {
	if n := unsafe.Sizeof(serverSeries{}); n != 168 {
		t.Errorf("serverSeries is %d bytes, want 168", n)
	}
	m := New(Build{Version: "test"})
	at := time.Unix(1764650000, 0)
	for range 3 {
		m.CheckOutcome("web", "10.0.0.1:80", "http", false, "timeout", at, 1)
	}
	m.CheckOutcome("web", "10.0.0.1:80", "http", false, "status 503", at, 4)
	m.CheckOutcome("web", "10.0.0.1:80", "http", false, "refused", at, 5)
	m.servers.with("web", "10.0.0.1:80", func(ss *serverSeries) {
		want := []failureCount{{uint8(reasonIndex("timeout")), 3}, {uint8(reasonIndex("refused")), 1}, {uint8(reasonIndex("status")), 1}}
		if len(ss.failures) != len(want) {
			t.Fatalf("failures %v, want %v", ss.failures, want)
		}
		for i := range want {
			if ss.failures[i] != want[i] {
				t.Errorf("failures %v, want %v", ss.failures, want)
			}
		}
	})
}
