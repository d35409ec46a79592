package metrics

import (
	"testing"
	"time"
)

// The check duration and schedule lag histograms keep classic buckets
// only: native buckets cannot be exported in the text format /metrics
// writes, and kept in sparse maps per virtual server they held 8.5 MB at
// 200 virtual servers.
func TestHistogramsHaveNoNativeBuckets(t *testing.T) {
	m := New(Build{Version: "test"})
	for i := range 100 {
		d := time.Duration(i+1) * 37 * time.Microsecond
		m.Check("web", "10.0.0.1:80", "http", true, d)
		m.Schedule.Started(d)
	}
	families, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range families {
		switch f.GetName() {
		case "director_check_duration_seconds", "director_check_schedule_lag_seconds":
			for _, mt := range f.GetMetric() {
				h := mt.GetHistogram()
				seen++
				if h.Schema != nil || len(h.GetPositiveSpan()) > 0 || len(h.GetBucket()) == 0 {
					t.Errorf("%s: schema %v, %d native spans, %d classic buckets; want classic buckets only",
						f.GetName(), h.Schema, len(h.GetPositiveSpan()), len(h.GetBucket()))
				}
			}
		}
	}
	if seen != 2 {
		t.Errorf("found %d of the two histograms", seen)
	}
}
