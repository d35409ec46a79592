package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Announce holds the metrics of announcing VIPs: the decisions (written by
// the engine), what each announcer holds (the BGP speaker, the kernel
// route table) and the BGP sessions. It lives on the same registry as
// Metrics; get it with NewAnnounce.
type Announce struct {
	announced  *prometheus.GaugeVec
	decisions  *prometheus.CounterVec
	changed    *prometheus.GaugeVec
	routes     *prometheus.GaugeVec
	updates    *prometheus.CounterVec
	lastUpdate *prometheus.GaugeVec
	peerUp     *prometheus.GaugeVec
	peerDowns  *prometheus.CounterVec
}

// NewAnnounce returns m's announce metrics (registered with m by New).
func NewAnnounce(m *Metrics) *Announce { return m.announce }

func newAnnounce(m *Metrics) *Announce {
	return &Announce{
		announced: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_vip_announced",
			Help: "1 while the director wants the VIP announced (its services healthy, the director healthy), 0 while withdrawn.",
		}, []string{"vip"})),
		decisions: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_vip_announce_changes_total",
			Help: "VIPs announced or withdrawn, by action (announce, withdraw) and cause (healthy, pool_unhealthy, hold_down, director_unhealthy, removed).",
		}, []string{"vip", "action", "cause"})),
		changed: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_vip_last_change_timestamp_seconds",
			Help: "When the VIP was last announced or withdrawn, in seconds since the epoch.",
		}, []string{"vip"})),
		routes: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_announcer_routes",
			Help: "Routes the announcer (bgp, route_table) holds now.",
		}, []string{"announcer"})),
		updates: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_announcer_updates_total",
			Help: "Routes the announcer added or deleted, by op (add, delete) and result (success, error).",
		}, []string{"announcer", "op", "result"})),
		lastUpdate: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_announcer_last_update_timestamp_seconds",
			Help: "When the announcer last added or deleted a route, in seconds since the epoch.",
		}, []string{"announcer"})),
		peerUp: register(m.Registry, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "director_bgp_peer_established",
			Help: "1 while the BGP session with the peer is established.",
		}, []string{"peer"})),
		peerDowns: register(m.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_bgp_peer_session_drops_total",
			Help: "Times an established BGP session with the peer went down.",
		}, []string{"peer"})),
	}
}

// VIP records a VIP announced or withdrawn, with its cause.
func (a *Announce) VIP(vip string, announced bool, cause string, at time.Time) {
	action := "withdraw"
	if announced {
		action = "announce"
	}
	a.announced.WithLabelValues(vip).Set(b2f(announced))
	a.decisions.WithLabelValues(vip, action, cause).Inc()
	a.changed.WithLabelValues(vip).Set(float64(at.UnixNano()) / 1e9)
}

// ForgetVIP drops the series of a VIP no longer in the config.
func (a *Announce) ForgetVIP(vip string) {
	l := prometheus.Labels{"vip": vip}
	a.announced.DeletePartialMatch(l)
	a.changed.DeletePartialMatch(l)
}

// Update records one route added or deleted by an announcer, and how
// many it holds after it.
func (a *Announce) Update(announcer, op string, err error, held int, at time.Time) {
	res := "success"
	if err != nil {
		res = "error"
	}
	a.updates.WithLabelValues(announcer, op, res).Inc()
	a.routes.WithLabelValues(announcer).Set(float64(held))
	if err == nil {
		a.lastUpdate.WithLabelValues(announcer).Set(float64(at.UnixNano()) / 1e9)
	}
}

// Peer records a BGP session's state; dropped is set when an established
// session went down.
func (a *Announce) Peer(peer string, established, dropped bool) {
	a.peerUp.WithLabelValues(peer).Set(b2f(established))
	if dropped {
		a.peerDowns.WithLabelValues(peer).Inc()
	}
}
