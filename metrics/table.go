package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Table holds the metrics of the kernel table's upkeep: graceful drain,
// safe reloads and kernel failures. It lives on the same registry as
// Metrics; build it with NewTable.
type Table struct {
	drains           *prometheus.CounterVec
	ipvsErrors       *prometheus.CounterVec
	reconcileFailing prometheus.Gauge
	rollbacks        *prometheus.CounterVec
}

// NewTable registers the table upkeep metrics on m's registry. Calling
// it again for the same m returns metrics that share the same series
// (several engines in one test process may share one Metrics).
func NewTable(m *Metrics) *Table {
	return &Table{
		drains: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_drains_total",
			Help: "Real server drains that ended, by how: connections (they all ended), timeout (drain_timeout passed), gone (deleted behind the director's back) or restored (back in the config).",
		}, []string{"result"})),
		ipvsErrors: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_ipvs_errors_total",
			Help: "Failed kernel IPVS table reads and operations, by cause: permission, not_supported, invalid, unknown_scheduler, timeout, other.",
		}, []string{"cause"})),
		reconcileFailing: register(m.Registry, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_reconcile_failing",
			Help: "1 while the last reconcile of the kernel table failed (the director retries with backoff; /readyz answers 503).",
		})),
		rollbacks: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_config_reload_rollbacks_total",
			Help: "Reloads whose kernel changes failed part-way and were rolled back to the previous config, by result of the rollback (success or error).",
		}, []string{"result"})),
	}
}

// register registers c, or returns the collector already registered under
// the same descriptor.
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error: two different metrics with one name
	}
	return c
}

// DrainEnded counts a finished drain by result.
func (p *Table) DrainEnded(result string) { p.drains.WithLabelValues(result).Inc() }

// IPVSError counts one failed kernel read or operation by cause class.
func (p *Table) IPVSError(cause string) { p.ipvsErrors.WithLabelValues(cause).Inc() }

// ReconcileFailing sets whether the last reconcile failed.
func (p *Table) ReconcileFailing(failing bool) { p.reconcileFailing.Set(b2f(failing)) }

// Rollback counts a reload rolled back, and whether the rollback itself worked.
func (p *Table) Rollback(err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	p.rollbacks.WithLabelValues(result).Inc()
}
