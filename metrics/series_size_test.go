package metrics

import (
	"testing"
	"time"
	"unsafe"
)

// A real server's series are one struct of 152 bytes, the 160 size class
// (200 before docs/performance.md "Memory, second pass: records", 168
// before "Memory, third pass": its override kind a byte, not a string),
// and its failure counters hold only the reason classes it failed in (a
// counter for every class was 160 bytes more).
func TestServerSeriesSize(t *testing.T) {
	if n := unsafe.Sizeof(serverSeries{}); n != 152 {
		t.Errorf("serverSeries is %d bytes, want 152", n)
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

// The override series show the kind set last, as 1 for it and 0 for the
// other (all 0 for none, or a kind they do not name), whatever came
// before: the kind is kept as a byte (serverSeries.override).
func TestOverrideKindRoundTrip(t *testing.T) {
	m := New(Build{Version: "test"})
	shown := func() map[string]float64 {
		t.Helper()
		mfs, err := m.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "director_real_server_override" {
				continue
			}
			for _, s := range mf.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "kind" {
						out[l.GetValue()] = s.GetGauge().GetValue()
					}
				}
			}
		}
		return out
	}
	for _, c := range []struct {
		kind           string
		drain, disable float64
	}{{"drain", 1, 0}, {"disable", 0, 1}, {"", 0, 0}, {"drain", 1, 0}, {"bogus", 0, 0}} {
		m.policy.Override("web", "10.0.0.1:80", c.kind)
		got := shown()
		if len(got) != 2 || got["drain"] != c.drain || got["disable"] != c.disable {
			t.Errorf("after kind %q: %v, want drain %v, disable %v", c.kind, got, c.drain, c.disable)
		}
	}
}
