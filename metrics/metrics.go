// Package metrics defines the director's Prometheus metrics on a registry
// of its own. The engine reports into it; nothing here reads state back.
package metrics

import (
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/lvsdirector/director/health"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Build identifies the running binary.
type Build struct{ Version, Revision string }

// Metrics is the director's metric set.
type Metrics struct {
	Registry *prometheus.Registry
	// Schedule is the check scheduler's punctuality.
	Schedule *Schedule

	up               *prometheus.GaugeVec
	weight           *prometheus.GaugeVec
	configuredWeight *prometheus.GaugeVec
	checks           *prometheus.CounterVec
	checkDuration    *prometheus.HistogramVec
	transitions      *prometheus.CounterVec
	ipvsOps          *prometheus.CounterVec
	reconciles       *prometheus.CounterVec
	reconcileSeconds prometheus.Histogram
	reloads          *prometheus.CounterVec
	reloadOK         prometheus.Gauge
	reloadTimestamp  prometheus.Gauge

	state         *prometheus.GaugeVec
	failures      *prometheus.CounterVec
	lastSuccess   *prometheus.GaugeVec
	lastFailure   *prometheus.GaugeVec
	consecutive   *prometheus.GaugeVec
	flaps         *prometheus.CounterVec
	drift         *prometheus.CounterVec
	configHash    prometheus.Gauge
	notifications *prometheus.CounterVec

	admin *Admin // admin.go
}

var rsLabels = []string{"virtual_server", "real_server"}

// New registers every metric, with the Go and process collectors, on a new registry.
func New(b Build) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_up",
			Help: "1 when the real server is up after rise/fall, 0 when down or not yet known.",
		}, rsLabels),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_weight",
			Help: "Weight the director programs for the real server now (absent from the kernel: -1).",
		}, rsLabels),
		configuredWeight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_configured_weight",
			Help: "Weight the config gives the real server when it is up.",
		}, rsLabels),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_checks_total",
			Help: "Health checks completed, by result (success or failure).",
		}, []string{"virtual_server", "real_server", "check", "result"}),
		// Classic buckets from half a millisecond (a loopback TCP connect)
		// to 10s (the longest sensible timeout), plus native-histogram
		// settings for servers that ingest them: ~10% resolution, at most
		// 100 buckets per series, reset at most hourly to keep that bound.
		// Per virtual server, not per real server: at 10,000 real servers a
		// histogram each was 150,000 series and a third of a scrape (see
		// docs/performance.md); per-server latency is in the status API.
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "director_check_duration_seconds",
			Help:                            "Time a health check took, successful or not.",
			Buckets:                         []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"virtual_server", "check"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_state_transitions_total",
			Help: "Health state changes of a real server, by the state entered.",
		}, []string{"virtual_server", "real_server", "to"}),
		ipvsOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_ipvs_operations_total",
			Help: "Kernel IPVS table operations, by kind and result (success or error).",
		}, []string{"op", "result"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_reconcile_runs_total",
			Help: "Reconcile runs (read the kernel table, plan, apply), by trigger and result.",
		}, []string{"trigger", "result"}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "director_reconcile_duration_seconds",
			Help:    "Time a reconcile run took.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_config_reloads_total",
			Help: "Configuration reloads, by result (success or failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_config_last_reload_successful",
			Help: "1 when the last configuration load or reload succeeded.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load or reload.",
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_state",
			Help: "The real server's health state, one-hot: 1 for the current state, 0 for the others.",
		}, []string{"virtual_server", "real_server", "state"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_check_failures_total",
			Help: "Failed health checks by reason class (timeout, refused, unreachable, reset, dns, status, body, expect, tls, icmp, canceled, error).",
		}, []string{"virtual_server", "real_server", "check", "reason"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_check_last_success_timestamp_seconds",
			Help: "Unix time of the real server's last successful check (absent until one succeeds).",
		}, rsLabels),
		lastFailure: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_check_last_failure_timestamp_seconds",
			Help: "Unix time of the real server's last failed check (absent until one fails).",
		}, rsLabels),
		consecutive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_consecutive_failures",
			Help: "Failed checks in a row since the last success.",
		}, rsLabels),
		flaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_real_server_flaps_total",
			Help: "Changes between up and down (either way) after the first verdict.",
		}, rsLabels),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_reconcile_drift_repaired_total",
			Help: "Kernel table operations a periodic resync needed because the table had drifted from the desired state, by kind.",
		}, []string{"op"}),
		configHash: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_config_hash",
			Help: "First 48 bits of the SHA-256 of the running config file, as a number, so directors running different configs stand out.",
		}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_notifications_total",
			Help: "Transition notifications, by sink (command or webhook) and result (success, failure, dropped).",
		}, []string{"sink", "result"}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "director_build_info",
		Help:        "Always 1; labels name the running build.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.Registry.MustRegister(
		m.up, m.weight, m.configuredWeight, m.checks, m.checkDuration, m.transitions,
		m.ipvsOps, m.reconciles, m.reconcileSeconds, m.reloads, m.reloadOK, m.reloadTimestamp,
		m.state, m.failures, m.lastSuccess, m.lastFailure, m.consecutive, m.flaps, m.drift,
		m.configHash, m.notifications,
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.Schedule = newSchedule(m.Registry)
	m.admin = newAdmin(m)
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.Registry,
		promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, Timeout: 10 * time.Second}))
}

// Check records one check result for one real server.
func (m *Metrics) Check(vs, rs, check string, ok bool, d time.Duration) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.checks.WithLabelValues(vs, rs, check, result).Inc()
	m.checkDuration.WithLabelValues(vs, check).Observe(d.Seconds())
}

// RealServer sets a real server's health state (health.State.String())
// and weights. weight < 0 means the destination is not in the table.
func (m *Metrics) RealServer(vs, rs, state string, weight int64, configured uint32) {
	m.up.WithLabelValues(vs, rs).Set(b2f(state == health.Up.String()))
	for _, st := range health.States {
		m.state.WithLabelValues(vs, rs, st.String()).Set(b2f(st.String() == state))
	}
	m.weight.WithLabelValues(vs, rs).Set(float64(weight))
	m.configuredWeight.WithLabelValues(vs, rs).Set(float64(configured))
}

// Transition counts a state change.
func (m *Metrics) Transition(vs, rs, to string) {
	m.transitions.WithLabelValues(vs, rs, to).Inc()
}

// ForgetRealServer drops every series of a real server that left the config,
// so cardinality follows the config.
func (m *Metrics) ForgetRealServer(vs, rs string) {
	l := prometheus.Labels{"virtual_server": vs, "real_server": rs}
	m.up.DeletePartialMatch(l)
	m.weight.DeletePartialMatch(l)
	m.configuredWeight.DeletePartialMatch(l)
	m.checks.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
	m.failures.DeletePartialMatch(l)
	m.lastSuccess.DeletePartialMatch(l)
	m.lastFailure.DeletePartialMatch(l)
	m.consecutive.DeletePartialMatch(l)
	m.flaps.DeletePartialMatch(l)
	m.admin.forgetRealServer(l)
}

// IPVSOp counts one kernel operation.
func (m *Metrics) IPVSOp(op string, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.ipvsOps.WithLabelValues(op, result).Inc()
}

// Reconcile records one reconcile run.
func (m *Metrics) Reconcile(trigger string, err error, d time.Duration) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.reconciles.WithLabelValues(trigger, result).Inc()
	m.reconcileSeconds.Observe(d.Seconds())
}

// Reload records a configuration load or reload.
func (m *Metrics) Reload(ok bool, at time.Time) {
	if !ok {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.reloadOK.Set(1)
	m.reloadTimestamp.Set(float64(at.Unix()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// CheckOutcome records what a check result means beyond success/failure:
// the failure reason class, the time of the last success or failure and
// the failures in a row.
func (m *Metrics) CheckOutcome(vs, rs, check string, ok bool, reason string, at time.Time, consecutiveFailures int) {
	if ok {
		m.lastSuccess.WithLabelValues(vs, rs).Set(float64(at.UnixMilli()) / 1e3)
	} else {
		m.failures.WithLabelValues(vs, rs, check, ReasonClass(reason)).Inc()
		m.lastFailure.WithLabelValues(vs, rs).Set(float64(at.UnixMilli()) / 1e3)
	}
	m.consecutive.WithLabelValues(vs, rs).Set(float64(consecutiveFailures))
}

// reasonClasses are the failure reason classes, each with the prefix of
// checks.Result.Reason that selects it. The reason itself can carry
// details (a status code, a TLS cause) that would make the label unbounded.
var reasonClasses = []struct{ prefix, class string }{
	{"timeout", "timeout"}, {"refused", "refused"}, {"unreachable", "unreachable"},
	{"reset", "reset"}, {"dns", "dns"}, {"canceled", "canceled"}, {"status", "status"},
	{"body", "body"}, {"expect", "expect"}, {"tls", "tls"}, {"icmp", "icmp"},
}

// ReasonClass maps a check failure reason to a bounded label value:
// "status 503" is "status", "tls: certificate expired" is "tls", and
// anything unrecognised is "error".
func ReasonClass(reason string) string {
	for _, c := range reasonClasses {
		if strings.HasPrefix(reason, c.prefix) {
			return c.class
		}
	}
	return "error"
}

// Flap counts a change between up and down.
func (m *Metrics) Flap(vs, rs string) { m.flaps.WithLabelValues(vs, rs).Inc() }

// DriftRepaired counts an operation a periodic resync applied.
func (m *Metrics) DriftRepaired(op string) { m.drift.WithLabelValues(op).Inc() }

// ConfigHash sets the running config's hash from its SHA-256 in hex.
func (m *Metrics) ConfigHash(sha256Hex string) { m.configHash.Set(HashValue(sha256Hex)) }

// HashValue is the number director_config_hash shows for a SHA-256 in hex:
// its first 48 bits, which a float64 holds exactly.
func HashValue(sha256Hex string) float64 {
	if len(sha256Hex) < 12 {
		return 0
	}
	raw, err := hex.DecodeString(sha256Hex[:12])
	if err != nil {
		return 0
	}
	var b [8]byte
	copy(b[2:], raw)
	return float64(binary.BigEndian.Uint64(b[:]))
}

// Notification counts one notification by sink and result.
func (m *Metrics) Notification(sink, result string) {
	m.notifications.WithLabelValues(sink, result).Inc()
}
