package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Policy holds the metrics of the policies: operator overrides, flap
// damping, the panic guard and quorum. It lives on the same registry as
// Metrics; get it with NewPolicy.
type Policy struct {
	servers       *servers // per-server series live with the others (servers.go)
	penalty       *prometheus.GaugeVec
	suppressed    *prometheus.GaugeVec
	panic         *prometheus.GaugeVec
	panics        *prometheus.CounterVec
	quorum        *prometheus.GaugeVec
	healthyWeight *prometheus.GaugeVec
	slowStart     *prometheus.GaugeVec
}

// OverrideKinds are the values of director_real_server_override's kind label.
var OverrideKinds = [...]string{"drain", "disable"}

// NewPolicy returns m's policy metrics (registered with m by New).
func NewPolicy(m *Metrics) *Policy { return m.policy }

func newPolicy(m *Metrics) *Policy {
	a := &Policy{
		servers: m.servers,
		penalty: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_flap_penalty",
			Help: "The real server's flap damping penalty (decays with flap_half_life; absent when flap_damping is off or the penalty is 0).",
		}, rsLabels)),
		suppressed: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_suppressed",
			Help: "1 while flap damping holds the real server out (its penalty went above flap_suppress and has not decayed below flap_reuse).",
		}, rsLabels)),
		panic: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_virtual_server_panic",
			Help: "1 while the panic guard keeps the virtual server's pool as it is because too many of its real servers failed at once.",
		}, []string{"virtual_server"})),
		panics: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_panics_total",
			Help: "Times the panic guard tripped for the virtual server.",
		}, []string{"virtual_server"})),
		quorum: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_virtual_server_quorum_up",
			Help: "1 while the virtual server's healthy weight meets its quorum (with hysteresis); 0 while the fallback, if any, has taken over.",
		}, []string{"virtual_server"})),
		healthyWeight: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_virtual_server_healthy_weight",
			Help: "Sum of the configured weights of the virtual server's real servers that are serving (up, not overridden, not suppressed).",
		}, []string{"virtual_server"})),
		slowStart: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_real_server_slow_start_ratio",
			Help: "The share of its weight (0-1) a real server in slow start is given now; absent when it is not ramping.",
		}, rsLabels)),
	}
	return a
}

// Override sets the override kind of a real server ("" for none).
func (a *Policy) Override(vs, rs, kind string) {
	a.servers.with(vs, rs, func(ss *serverSeries) { ss.hasOverride, ss.override = true, overrideIndex(kind) })
}

// overrideIndex is kind as serverSeries.override holds it.
func overrideIndex(kind string) uint8 {
	for i, k := range OverrideKinds {
		if k == kind {
			return uint8(i + 1)
		}
	}
	return 0
}

// Damping sets a real server's flap penalty and whether it is suppressed;
// a zero penalty removes the series.
func (a *Policy) Damping(vs, rs string, penalty float64, suppressed bool) {
	if penalty == 0 && !suppressed {
		a.penalty.DeleteLabelValues(vs, rs)
		a.suppressed.DeleteLabelValues(vs, rs)
		return
	}
	a.penalty.WithLabelValues(vs, rs).Set(penalty)
	a.suppressed.WithLabelValues(vs, rs).Set(b2f(suppressed))
}

// SlowStart sets the share of its weight a ramping real server has;
// ramping false removes the series.
func (a *Policy) SlowStart(vs, rs string, ratio float64, ramping bool) {
	if !ramping {
		a.slowStart.DeleteLabelValues(vs, rs)
		return
	}
	a.slowStart.WithLabelValues(vs, rs).Set(ratio)
}

// Panic sets whether a virtual server is in panic.
func (a *Policy) Panic(vs string, on bool) { a.panic.WithLabelValues(vs).Set(b2f(on)) }

// PanicTripped counts a panic.
func (a *Policy) PanicTripped(vs string) { a.panics.WithLabelValues(vs).Inc() }

// Quorum sets a virtual server's quorum state and healthy weight.
func (a *Policy) Quorum(vs string, up bool, healthy uint64) {
	a.quorum.WithLabelValues(vs).Set(b2f(up))
	a.healthyWeight.WithLabelValues(vs).Set(float64(healthy))
}

// ForgetVirtualServer drops the series of a virtual server that left the config.
func (a *Policy) ForgetVirtualServer(vs string) {
	l := prometheus.Labels{"virtual_server": vs}
	a.panic.DeletePartialMatch(l)
	a.panics.DeletePartialMatch(l)
	a.quorum.DeletePartialMatch(l)
	a.healthyWeight.DeletePartialMatch(l)
}

func (a *Policy) forgetRealServer(l prometheus.Labels) {
	a.penalty.DeletePartialMatch(l)
	a.suppressed.DeletePartialMatch(l)
	a.slowStart.DeletePartialMatch(l)
}
