package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestDetectionSchedule(t *testing.T) {
	for _, tt := range []struct {
		interval, retry time.Duration
		fall            int
		worst, mean     time.Duration
	}{
		{2 * time.Second, 0, 3, 6 * time.Second, 5 * time.Second},
		{2 * time.Second, 250 * time.Millisecond, 3, 2500 * time.Millisecond, 1500 * time.Millisecond},
		{time.Second, 100 * time.Millisecond, 1, time.Second, 500 * time.Millisecond},
	} {
		o := Options{Interval: tt.interval, RetryInterval: tt.retry, Fall: tt.fall}
		if got := detectionSchedule(o); got != tt.worst {
			t.Errorf("%+v: detectionSchedule = %s, want %s", tt, got, tt.worst)
		}
		if got := expectedDetection(o); got != tt.mean {
			t.Errorf("%+v: expectedDetection = %s, want %s", tt, got, tt.mean)
		}
	}
	o := Options{N: 1, VirtualServers: 1, Interval: time.Second, Timeout: time.Second / 2, Rise: 1, Fall: 3,
		RetryInterval: 200 * time.Millisecond, Groups: []Group{{Kind: "tcp", N: 1, Interval: time.Second}}, WorkDir: t.TempDir()}
	path, err := writeConfig(o, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "retry_interval = \"200ms\"\n") {
		t.Errorf("config lacks retry_interval:\n%s", b)
	}
}
