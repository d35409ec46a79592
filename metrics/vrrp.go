package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// VRRP holds the metrics of the director's part in an active-backup pair
// under keepalived (package vrrp): each VRRP instance's state, the
// director's own health as it tells keepalived, and the sync daemons.
// Get it with NewVRRP, once per Metrics.
type VRRP struct {
	state        *prometheus.GaugeVec
	priority     *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
	lowerMasters *prometheus.CounterVec
	healthy      prometheus.Gauge
	trackValue   prometheus.Gauge
	trackErrors  prometheus.Counter
	fifoUp       prometheus.Gauge
	unknownLines prometheus.Counter
	syncRunning  *prometheus.GaugeVec
	syncErrors   *prometheus.CounterVec
}

// VRRPStates are the values of the state label, one series each.
var VRRPStates = []string{"MASTER", "BACKUP", "FAULT", "STOP", "UNKNOWN"}

// NewVRRP registers the VRRP metrics on m's registry.
func NewVRRP(m *Metrics) *VRRP {
	v := &VRRP{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_vrrp_instance_state",
			Help: "1 for the state keepalived last reported for the VRRP instance (MASTER, BACKUP, FAULT, STOP, UNKNOWN before the first report), 0 for the others.",
		}, []string{"instance", "state"}),
		priority: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_vrrp_instance_priority",
			Help: "The VRRP instance's effective priority as keepalived last reported it.",
		}, []string{"instance"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_vrrp_instance_transitions_total",
			Help: "State changes of the VRRP instance, by the state it went to.",
		}, []string{"instance", "to"}),
		lowerMasters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_vrrp_lower_priority_master_total",
			Help: "Times the instance, as MASTER, heard another MASTER with a lower priority: two masters at once (a split brain healing, or a peer coming back).",
		}, []string{"instance"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_self_healthy",
			Help: "1 while the director counts itself healthy (engine loop turning, kernel table reconciled, pools above min_pool_share), 0 otherwise.",
		}),
		trackValue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_vrrp_track_file_value",
			Help: "The value last written to the VRRP track file: healthy_value while healthy, 0 or -254 while not.",
		}),
		trackErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "director_vrrp_track_file_write_errors_total",
			Help: "Failed writes of the VRRP track file.",
		}),
		fifoUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "director_vrrp_notify_fifo_open",
			Help: "1 while the director has keepalived's notify_fifo open.",
		}),
		unknownLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "director_vrrp_notify_fifo_unknown_lines_total",
			Help: "Lines read from the notify_fifo that are not keepalived VRRP events (ignored).",
		}),
		syncRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_sync_daemon_running",
			Help: "1 while the kernel's IPVS sync daemon of that state (master, backup) runs, as last read back.",
		}, []string{"state"}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_sync_daemon_errors_total",
			Help: "Failed sync daemon commands, by op (start, stop, read).",
		}, []string{"op"}),
	}
	m.Registry.MustRegister(v.state, v.priority, v.transitions, v.lowerMasters, v.healthy, v.trackValue, v.trackErrors,
		v.fifoUp, v.unknownLines, v.syncRunning, v.syncErrors)
	for _, s := range []string{"master", "backup"} {
		v.syncRunning.WithLabelValues(s)
		v.syncErrors.WithLabelValues("start")
		v.syncErrors.WithLabelValues("stop")
		v.syncErrors.WithLabelValues("read")
	}
	return v
}

// Instance sets an instance's state (one-hot) and priority.
func (v *VRRP) Instance(name, state string, priority int) {
	for _, s := range VRRPStates {
		val := 0.0
		if s == state {
			val = 1
		}
		v.state.WithLabelValues(name, s).Set(val)
	}
	v.priority.WithLabelValues(name).Set(float64(priority))
}

// Transition counts a state change.
func (v *VRRP) Transition(name, to string) { v.transitions.WithLabelValues(name, to).Inc() }

// LowerPriorityMaster counts a MASTER_RX_LOWER_PRI event.
func (v *VRRP) LowerPriorityMaster(name string) { v.lowerMasters.WithLabelValues(name).Inc() }

// Healthy sets the director's own health.
func (v *VRRP) Healthy(ok bool) { v.healthy.Set(b2f(ok)) }

// TrackWritten records a track file write.
func (v *VRRP) TrackWritten(value int, err error) {
	if err != nil {
		v.trackErrors.Inc()
		return
	}
	v.trackValue.Set(float64(value))
}

// FIFOOpen sets whether the notify_fifo is open.
func (v *VRRP) FIFOOpen(open bool) { v.fifoUp.Set(b2f(open)) }

// UnknownLine counts an ignored FIFO line.
func (v *VRRP) UnknownLine() { v.unknownLines.Inc() }

// SyncRunning sets which sync daemons run.
func (v *VRRP) SyncRunning(master, backup bool) {
	v.syncRunning.WithLabelValues("master").Set(b2f(master))
	v.syncRunning.WithLabelValues("backup").Set(b2f(backup))
}

// SyncError counts a failed sync daemon command.
func (v *VRRP) SyncError(op string) { v.syncErrors.WithLabelValues(op).Inc() }
