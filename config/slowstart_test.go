package config

import (
	"testing"
	"time"
)

func TestSlowStart(t *testing.T) {
	cfg := mustParse(t, `[director]
slow_start = "30s"

[[virtual_server]]
name = "inherits"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"

[[virtual_server]]
name = "own"
address = "192.0.2.11:80"
slow_start = "1m"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"

[[virtual_server]]
name = "off"
address = "192.0.2.12:80"
slow_start = "0s"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
`)
	if cfg.Director.SlowStart != 30*time.Second {
		t.Errorf("[director] slow_start = %v, want 30s", cfg.Director.SlowStart)
	}
	want := map[string]time.Duration{"inherits": 30 * time.Second, "own": time.Minute, "off": 0}
	for _, vs := range cfg.VirtualServers {
		if vs.SlowStart != want[vs.Name] {
			t.Errorf("%s: slow_start %v, want %v", vs.Name, vs.SlowStart, want[vs.Name])
		}
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	// Unset everywhere: off.
	if vs := mustParse(t, "[[virtual_server]]\nname = \"a\"\naddress = \"192.0.2.10:80\"\n").VirtualServers[0]; vs.SlowStart != 0 {
		t.Errorf("slow_start unset: %v, want 0 (off)", vs.SlowStart)
	}

	sameLines(t, problems(t, `[director]
slow_start = "-1s"

[[virtual_server]]
name = "a"
address = "192.0.2.10:80"
slow_start = "25h"

[[virtual_server]]
name = "b"
address = "192.0.2.11:80"
slow_start = 30
`), []string{
		`director.toml:2: director.slow_start: must not be negative; "0s" turns slow start off`,
		`director.toml:7: virtual_server[a].slow_start: 25h0m0s is longer than the 24h0m0s a slow start may take`,
		`director.toml:12: virtual_server[b].slow_start: a bare number is not a duration; write a string with a unit, such as "30s"`,
	})
}

// A scheduler that ignores weights gets a warning; one inherited from
// [director] does not (the default applies to every virtual server).
func TestSlowStartWeightBlindScheduler(t *testing.T) {
	cfg := mustParse(t, `[director]
slow_start = "30s"

[[virtual_server]]
name = "rr"
address = "192.0.2.10:80"
scheduler = "rr"
slow_start = "10s"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"

[[virtual_server]]
name = "lc-inherits"
address = "192.0.2.11:80"
scheduler = "lc"
  [[virtual_server.real_server]]
  address = "10.0.0.1:80"
`)
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{
		`director.toml:8: virtual_server[rr].slow_start: has no effect with scheduler "rr", which ignores weights (other than 0); use "wrr" for a ramp that matters`,
	})
}
