package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsdirector/director/health"
)

// servers holds every per-real-server series as plain numbers and turns
// them into metrics only when scraped.
//
// Why not metric vectors: a vector child keeps its own label pairs and
// bookkeeping, about half a kilobyte per series; a real server has some
// twenty series, and at 20,000 real servers the vectors were half the
// director's live heap (docs/performance.md). Here a server costs one small
// struct, and the label pairs exist only during a scrape.
type servers struct {
	mu sync.Mutex
	m  map[serverKey]*serverSeries

	up, weight, configured, state, checks, failures, lastSuccess, lastFailure,
	consecutive, flaps, transitions, override *prometheus.Desc
}

type serverKey struct{ vs, rs string }

// serverSeries is one real server's figures. A series is exported once it
// has been set, as a vector child would be: the has* flags say which.
type serverSeries struct {
	check string // check type, the "check" label

	hasState   bool
	state      string
	weight     int64
	configured uint32

	checksOK, checksFailed uint64
	failures               []uint64 // by reasonIndex; nil until the first failure

	lastSuccess, lastFailure float64 // Unix seconds; 0: never
	hasConsecutive           bool
	consecutive              int

	hasFlaps    bool
	flaps       uint64
	transitions map[string]uint64 // by state entered; nil until the first

	hasOverride bool
	override    string // "" for none
}

func newServers() *servers {
	rs := []string{"virtual_server", "real_server"}
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), rs...), extra...), nil)
	}
	return &servers{
		m:           map[serverKey]*serverSeries{},
		up:          d("director_real_server_up", "1 when the real server is up after rise/fall, 0 when down or not yet known."),
		weight:      d("director_real_server_weight", "Weight the director programs for the real server now (absent from the kernel: -1)."),
		configured:  d("director_real_server_configured_weight", "Weight the config gives the real server when it is up."),
		state:       d("director_real_server_state", "The real server's health state, one-hot: 1 for the current state, 0 for the others.", "state"),
		checks:      d("director_checks_total", "Health checks completed, by result (success or failure).", "check", "result"),
		failures:    d("director_check_failures_total", "Failed health checks by reason class (timeout, refused, unreachable, reset, dns, status, body, expect, tls, icmp, canceled, error).", "check", "reason"),
		lastSuccess: d("director_check_last_success_timestamp_seconds", "Unix time of the real server's last successful check (absent until one succeeds)."),
		lastFailure: d("director_check_last_failure_timestamp_seconds", "Unix time of the real server's last failed check (absent until one fails)."),
		consecutive: d("director_real_server_consecutive_failures", "Failed checks in a row since the last success."),
		flaps:       d("director_real_server_flaps_total", "Changes between up and down (either way) after the first verdict."),
		transitions: d("director_state_transitions_total", "Health state changes of a real server, by the state entered.", "to"),
		override:    d("director_real_server_override", "1 while an operator override (kind drain or disable, from the API or maintenance_dir) holds the real server out, else 0.", "kind"),
	}
}

// with runs f on the series of one real server, creating it if needed.
func (s *servers) with(vs, rs string, f func(*serverSeries)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := serverKey{vs, rs}
	ss := s.m[k]
	if ss == nil {
		ss = &serverSeries{}
		s.m[k] = ss
	}
	f(ss)
}

func (s *servers) forget(vs, rs string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, serverKey{vs, rs})
}

// setCheck names the server's check type. A different type starts the
// check counters over: under a new label they are new series.
func (ss *serverSeries) setCheck(check string) {
	if ss.check != check {
		ss.check = check
		ss.checksOK, ss.checksFailed = 0, 0
		ss.failures = nil
	}
}

// countFailure counts a failure of the given reason class.
func (ss *serverSeries) countFailure(class string) {
	if ss.failures == nil {
		ss.failures = make([]uint64, len(reasonClasses)+1)
	}
	ss.failures[reasonIndex(class)]++
}

func reasonIndex(class string) int {
	for i, c := range reasonClasses {
		if c.class == class {
			return i
		}
	}
	return len(reasonClasses) // "error"
}

func reasonLabel(i int) string {
	if i < len(reasonClasses) {
		return reasonClasses[i].class
	}
	return "error"
}

func (s *servers) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.up, s.weight, s.configured, s.state, s.checks, s.failures,
		s.lastSuccess, s.lastFailure, s.consecutive, s.flaps, s.transitions, s.override} {
		ch <- d
	}
}

func (s *servers) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for k, ss := range s.m {
		if ss.hasState {
			gauge(s.up, b2f(ss.state == health.Up.String()), k.vs, k.rs)
			gauge(s.weight, float64(ss.weight), k.vs, k.rs)
			gauge(s.configured, float64(ss.configured), k.vs, k.rs)
			for _, st := range health.States {
				gauge(s.state, b2f(st.String() == ss.state), k.vs, k.rs, st.String())
			}
		}
		if ss.checksOK > 0 {
			counter(s.checks, float64(ss.checksOK), k.vs, k.rs, ss.check, "success")
		}
		if ss.checksFailed > 0 {
			counter(s.checks, float64(ss.checksFailed), k.vs, k.rs, ss.check, "failure")
		}
		for i, n := range ss.failures {
			if n > 0 {
				counter(s.failures, float64(n), k.vs, k.rs, ss.check, reasonLabel(i))
			}
		}
		if ss.lastSuccess > 0 {
			gauge(s.lastSuccess, ss.lastSuccess, k.vs, k.rs)
		}
		if ss.lastFailure > 0 {
			gauge(s.lastFailure, ss.lastFailure, k.vs, k.rs)
		}
		if ss.hasConsecutive {
			gauge(s.consecutive, float64(ss.consecutive), k.vs, k.rs)
		}
		if ss.hasFlaps {
			counter(s.flaps, float64(ss.flaps), k.vs, k.rs)
		}
		for to, n := range ss.transitions {
			counter(s.transitions, float64(n), k.vs, k.rs, to)
		}
		if ss.hasOverride {
			for _, kind := range OverrideKinds {
				gauge(s.override, b2f(kind == ss.override), k.vs, k.rs, kind)
			}
		}
	}
}
