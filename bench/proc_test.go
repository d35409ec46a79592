package bench

import "testing"

func TestPeakRSSCoversWhatWasSeen(t *testing.T) {
	for _, c := range []struct {
		name string
		hwm  int64
		seen []int64
		want int64
	}{
		{"kernel's peak above", 50 << 20, []int64{40 << 20}, 50 << 20},
		// The figures of a CI run: VmRSS read before a VmHWM that lagged it.
		{"stale VmHWM", 40640512, []int64{40665088}, 40665088},
		{"several samples", 10, []int64{12, 30, 20}, 30},
		{"none seen", 7, nil, 7},
	} {
		if got := peakRSS(c.hwm, c.seen...); got != c.want {
			t.Errorf("%s: peakRSS(%d, %v) = %d, want %d", c.name, c.hwm, c.seen, got, c.want)
		}
	}
}
