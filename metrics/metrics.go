// Package metrics defines the director's Prometheus metrics on a registry
// of its own. The engine reports into it; nothing here reads state back.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Build identifies the running binary.
type Build struct{ Version, Revision string }

// Metrics is the director's metric set.
type Metrics struct {
	Registry *prometheus.Registry

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
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "director_check_duration_seconds",
			Help:    "Time a health check took, successful or not.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"virtual_server", "real_server", "check"}),
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
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
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
	m.checkDuration.WithLabelValues(vs, rs, check).Observe(d.Seconds())
}

// RealServer sets a real server's health and weights. weight < 0 means
// the destination is not in the table.
func (m *Metrics) RealServer(vs, rs string, up bool, weight int64, configured uint32) {
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(vs, rs).Set(v)
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
	m.checkDuration.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
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
