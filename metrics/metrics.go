// Package metrics defines the director's Prometheus metrics on a registry
// of its own. The engine reports into it; nothing here reads state back.
package metrics

import (
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsdirector/director/health"
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

	servers          *servers             // every per-real-server series (servers.go)
	serversReg       *prometheus.Registry // holds the streamed collectors, for Gather
	kernel           *IPVSCollector       // streamed too, when set
	checkDuration    *prometheus.HistogramVec
	ipvsOps          *prometheus.CounterVec
	reconciles       *prometheus.CounterVec
	reconcileSeconds prometheus.Histogram
	reloads          *prometheus.CounterVec
	reloadOK         prometheus.Gauge
	reloadTimestamp  prometheus.Gauge

	drift         *prometheus.CounterVec
	inconclusive  *prometheus.CounterVec
	configHash    prometheus.Gauge
	notifications *prometheus.CounterVec

	policy   *Policy   // policy.go
	announce *Announce // announce.go
}

var rsLabels = []string{"virtual_server", "real_server"}

// New registers every metric, with the Go and process collectors, on a new registry.
func New(b Build) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		servers:  newServers(),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "director_check_duration_seconds",
			Help:    "Time a health check took, successful or not.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			// No native buckets: Handler writes the text format, which
			// cannot carry them, and at 200 virtual servers their
			// sparse bucket maps held 8.5 MB (docs/performance.md,
			// "Memory per real server").
		}, []string{"virtual_server", "check"}),
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
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_reconcile_drift_repaired_total",
			Help: "Kernel table operations a periodic resync needed because the table had drifted from the desired state, by kind.",
		}, []string{"op"}),
		inconclusive: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "director_checks_inconclusive_total",
			Help: "Health checks that could not be made because of the director's own state (out of file descriptors, buffers or memory, or started after their deadline), by cause; they count toward no server's health.",
		}, []string{"cause"}),
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
		m.checkDuration,
		m.ipvsOps, m.reconciles, m.reconcileSeconds, m.reloads, m.reloadOK, m.reloadTimestamp,
		m.drift, m.inconclusive,
		m.configHash, m.notifications,
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.serversReg = prometheus.NewRegistry()
	m.serversReg.MustRegister(m.servers)
	m.Schedule = newSchedule(m.Registry)
	m.policy = newPolicy(m)
	m.announce = newAnnounce(m)
	return m
}

// SetKernelStats adds the kernel's IPVS statistics. Like the per-server
// series they are written straight into a scrape's response, not gathered:
// nine series per real server are most of a scrape at thousands of them.
func (m *Metrics) SetKernelStats(c *IPVSCollector) {
	m.kernel = c
	m.serversReg.MustRegister(c)
}

// Gather returns every metric: the registry's and the per-server series.
// Metrics is a prometheus.Gatherer for whoever reads metrics in process.
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) {
	return prometheus.Gatherers{m.Registry, m.serversReg}.Gather()
}

// Handler serves every metric in the Prometheus text format. The
// registry's metrics are gathered and encoded as usual; the per-server
// series are then written straight from their store (servers.writeText),
// never all held in memory at once. Gzip when the scraper asks for it.
//
// name[] parameters (?name[]=director_checks_started_total&name[]=...)
// keep only the families named: at 40,000 real servers the whole page is
// ~135 MB, one family of the engine a few hundred bytes, for a dashboard,
// a curl, or a benchmark that must not load the machine it measures.
func (m *Metrics) Handler() http.Handler {
	var mu sync.Mutex // one scrape at a time: a second one would double the work, not the information
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := wantFamilies(r.URL.Query()["name[]"])
		mu.Lock()
		defer mu.Unlock()
		families, err := m.Registry.Gather()
		if err != nil && len(families) == 0 {
			http.Error(w, "gathering metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		format := expfmt.NewFormat(expfmt.TypeTextPlain)
		w.Header().Set("Content-Type", string(format))
		var out io.Writer = w
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		enc := expfmt.NewEncoder(out, format)
		for _, f := range families {
			if !want(f.GetName()) {
				continue
			}
			if err := enc.Encode(f); err != nil {
				return // the client went away; nothing to tell it
			}
		}
		if m.servers.writeText(out, want) != nil {
			return
		}
		if m.kernel != nil {
			m.kernel.writeText(out, want)
		}
	})
	return promhttp.InstrumentMetricHandler(m.Registry, h)
}

// wantFamilies says which families a scrape asked for: all without names.
func wantFamilies(names []string) func(string) bool {
	if len(names) == 0 {
		return func(string) bool { return true }
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(name string) bool { return set[name] }
}

// Check records one check result for one real server.
func (m *Metrics) Check(vs, rs, check string, ok bool, d time.Duration) {
	m.servers.with(vs, rs, func(ss *serverSeries) { ss.count(check, ok) })
	m.checkDuration.WithLabelValues(vs, check).Observe(d.Seconds())
}

// count counts one result of check.
func (ss *serverSeries) count(check string, ok bool) {
	ss.setCheck(check)
	if ok {
		ss.checksOK++
	} else {
		ss.checksFailed++
	}
}

// RealServerSeries is the series of one real server (created if needed,
// as RealServer creates them), to record its results through: see Series.
func (m *Metrics) RealServerSeries(vs, rs string) *Series {
	m.servers.mu.Lock()
	defer m.servers.mu.Unlock()
	return (*Series)(m.servers.get(vs, rs))
}

// Result records one check result of the real server whose series h is,
// of virtual server vs: what Check and CheckOutcome record, under one
// lock, the duration histogram looked up once per check label.
func (m *Metrics) Result(h *Series, vs, check string, ok bool, d time.Duration, reason string, at time.Time, consecutiveFailures int) {
	var duration prometheus.Observer
	m.servers.withSeries(h, func(ss *serverSeries) {
		ss.count(check, ok)
		ss.outcome(ok, reason, at, consecutiveFailures)
		if ss.duration == nil {
			ss.duration = m.checkDuration.WithLabelValues(vs, check)
		}
		duration = ss.duration
	})
	duration.Observe(d.Seconds())
}

// RealServer sets a real server's health state (health.State.String())
// and weights. weight < 0 means the destination is not in the table.
func (m *Metrics) RealServer(vs, rs, state string, weight int64, configured uint32) {
	m.servers.with(vs, rs, func(ss *serverSeries) { ss.setState(stateIndex(state), weight, configured) })
}

// SetState is RealServer for the real server whose series h is.
func (m *Metrics) SetState(h *Series, state health.State, weight int64, configured uint32) {
	m.servers.withSeries(h, func(ss *serverSeries) { ss.setState(stateOf(state), weight, configured) })
}

func (ss *serverSeries) setState(state uint8, weight int64, configured uint32) {
	ss.hasState, ss.state, ss.weight, ss.configured = true, state, weight, configured
}

// Transition counts a state change.
func (m *Metrics) Transition(vs, rs, to string) {
	m.servers.with(vs, rs, func(ss *serverSeries) { ss.transition(stateIndex(to)) })
}

// CountTransition is Transition for the real server whose series h is.
func (m *Metrics) CountTransition(h *Series, to health.State) {
	m.servers.withSeries(h, func(ss *serverSeries) { ss.transition(stateOf(to)) })
}

func (ss *serverSeries) transition(to uint8) {
	if int(to) < len(ss.transitions) {
		ss.transitions[to]++
	}
}

// ForgetRealServer drops every series of a real server that left the config,
// so cardinality follows the config.
func (m *Metrics) ForgetRealServer(vs, rs string) {
	m.servers.forget(vs, rs)
	m.policy.forgetRealServer(prometheus.Labels{"virtual_server": vs, "real_server": rs})
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
	m.servers.with(vs, rs, func(ss *serverSeries) {
		ss.setCheck(check)
		ss.outcome(ok, reason, at, consecutiveFailures)
	})
}

func (ss *serverSeries) outcome(ok bool, reason string, at time.Time, consecutiveFailures int) {
	if ok {
		ss.lastSuccess = float64(at.UnixMilli()) / 1e3
	} else {
		ss.countFailure(ReasonClass(reason))
		ss.lastFailure = float64(at.UnixMilli()) / 1e3
	}
	ss.hasConsecutive, ss.consecutive = true, int32(min(consecutiveFailures, math.MaxInt32))
}

// reasonClasses are the failure reason classes, each with the prefix of
// checks.Result.Reason that selects it. The reason itself can carry
// details (a status code, a TLS cause) that would make the label unbounded.
var reasonClasses = []struct{ prefix, class string }{
	{"timeout", "timeout"}, {"refused", "refused"}, {"unreachable", "unreachable"},
	{"reset", "reset"}, {"dns", "dns"}, {"canceled", "canceled"}, {"status", "status"},
	{"body", "body"}, {"expect", "expect"}, {"tls", "tls"}, {"icmp", "icmp"},
	// The server answered, but not what the check wants: a DNS rcode or a
	// RADIUS Access-Reject is a status; a DNS answer that does not match,
	// a query without rows or an LDAP search without entries a failed
	// expectation. A refused login has a class of its own.
	{"rcode", "status"}, {"rejected", "status"},
	{"answer", "expect"}, {"no rows", "expect"}, {"no entries", "expect"},
	{"auth", "auth"},
	// An exec check's program said down (its exit status), died of a
	// signal (its own crash, or the OOM killer; a kill at the timeout is
	// "timeout"), or printed a weight= line that does not parse.
	{"exit status", "exit"}, {"killed by signal", "signal"}, {"bad output", "output"},
	// The server answered something that is not its protocol (a SIP
	// answer that does not parse).
	{"bad response", "protocol"},
}

// reasonClassHelp lists the classes once each, in order, "error" last,
// for the failure counter's help text.
func reasonClassHelp() string {
	var names []string
	for _, c := range reasonClasses {
		if !slices.Contains(names, c.class) {
			names = append(names, c.class)
		}
	}
	return strings.Join(append(names, "error"), ", ")
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
func (m *Metrics) Flap(vs, rs string) {
	m.servers.with(vs, rs, func(ss *serverSeries) { ss.hasFlaps, ss.flaps = true, ss.flaps+1 })
}

// DriftRepaired counts an operation a periodic resync applied.
func (m *Metrics) DriftRepaired(op string) { m.drift.WithLabelValues(op).Inc() }

// Inconclusive counts a check the director could not make, by cause (the
// prober's reason without its "local: " prefix; probers keep these few
// and fixed).
func (m *Metrics) Inconclusive(reason string) {
	m.inconclusive.WithLabelValues(strings.TrimPrefix(reason, "local: ")).Inc()
}

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
