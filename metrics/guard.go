package metrics

import "github.com/prometheus/client_golang/prometheus"

// Guard holds the metrics of the director's defences against hostile or
// broken input (docs/security.md). It lives on the same registry as
// Metrics; build it with NewGuard.
type Guard struct {
	listenerCap  prometheus.Gauge
	listenerFull prometheus.Counter
	apiRefused   *prometheus.CounterVec
	notifyKilled *prometheus.CounterVec
}

// NewGuard registers the guard metrics on m's registry; calling it again
// for the same m returns metrics sharing the same series.
func NewGuard(m *Metrics) *Guard {
	return &Guard{
		listenerCap: register(m.Registry, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_http_max_connections",
			Help: "The cap on the HTTP listener's concurrent connections (max_connections, or derived from the open-file limit at start).",
		})),
		listenerFull: register(m.Registry, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "director_http_listener_full_total",
			Help: "Times the HTTP listener reached its connection cap: new connections waited, and idle keep-alive connections were closed.",
		})),
		apiRefused: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_api_refused_total",
			Help: "Write API requests refused for their token, by cause: no bearer token, wrong bearer token, write API off. The log shows one a minute per cause.",
		}, []string{"cause"})),
		notifyKilled: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_notify_command_killed_processes_total",
			Help: "Processes of notify_command process groups killed, by when: timeout (notify_timeout passed), shutdown, or exited (left running by a command that ended).",
		}, []string{"when"})),
	}
}

// ListenerCap sets the listener's connection cap.
func (g *Guard) ListenerCap(n int) { g.listenerCap.Set(float64(n)) }

// APIRefused counts a write request refused for its token.
func (g *Guard) APIRefused(cause string) { g.apiRefused.WithLabelValues(cause).Inc() }

// NotifyKilled counts processes killed in a notify_command's group.
func (g *Guard) NotifyKilled(when string, processes int) {
	g.notifyKilled.WithLabelValues(when).Add(float64(processes))
}

// ListenerFull counts one time the listener reached its cap.
func (g *Guard) ListenerFull() { g.listenerFull.Inc() }
