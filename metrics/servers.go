package metrics

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsdirector/director/health"
)

// servers holds every per-real-server series as plain numbers and turns
// them into metrics only when they are read.
//
// Why not metric vectors: a vector child keeps its own label pairs and
// bookkeeping, about half a kilobyte per series; a real server has some
// twenty series, and at 20,000 real servers the vectors were half the
// director's live heap (docs/performance.md). Here a server costs one small
// struct. The /metrics handler writes these series straight into the
// response (writeText) instead of gathering them: gathering 20,000
// servers' series at once was the biggest spike of the director's memory.
// Collect serves everything else that reads a registry (tests, Gather).
type servers struct {
	mu sync.Mutex
	m  map[serverKey]*serverSeries

	families [famCount]family
}

type serverKey struct{ vs, rs string }

// family is one metric family written by hand: a descriptor for Collect,
// and what the text format needs.
type family struct {
	name, help string
	counter    bool
	desc       *prometheus.Desc
	// names are the label names sorted, as client_golang writes them;
	// order[i] is where names[i]'s value is in the label values given.
	names []string
	order []int
}

func newFamily(name, help string, counter bool, labels []string) family {
	f := family{name: name, help: help, counter: counter, desc: prometheus.NewDesc(name, help, labels, nil)}
	f.names = slices.Sorted(slices.Values(labels))
	for _, n := range f.names {
		f.order = append(f.order, slices.Index(labels, n))
	}
	return f
}

func (f *family) valueType() prometheus.ValueType {
	if f.counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}

// metric is one sample of f as a const metric.
func (f *family) metric(v float64, values []string) prometheus.Metric {
	return prometheus.MustNewConstMetric(f.desc, f.valueType(), v, values...)
}

// textWriter writes families in the Prometheus text format (0.0.4): a
// header before a family's first sample, then one line per sample.
type textWriter struct {
	w      *bufio.Writer
	line   []byte
	header bool
}

func newTextWriter(w io.Writer) *textWriter { return &textWriter{w: bufio.NewWriterSize(w, 64<<10)} }

// begin starts a family; its header is written with its first sample, so
// a family without samples leaves no trace, as with a registry.
func (t *textWriter) begin() { t.header = false }

func (t *textWriter) sample(f *family, values []string, v float64) {
	if !t.header {
		typ := "gauge"
		if f.counter {
			typ = "counter"
		}
		t.w.WriteString("# HELP " + f.name + " " + escapeHelp(f.help) + "\n# TYPE " + f.name + " " + typ + "\n")
		t.header = true
	}
	t.line = append(t.line[:0], f.name...)
	if len(f.names) > 0 {
		t.line = append(t.line, '{')
		for j, name := range f.names {
			if j > 0 {
				t.line = append(t.line, ',')
			}
			t.line = append(t.line, name...)
			t.line = append(t.line, `="`...)
			t.line = appendEscaped(t.line, values[f.order[j]])
			t.line = append(t.line, '"')
		}
		t.line = append(t.line, '}')
	}
	t.line = append(t.line, ' ')
	t.line = strconv.AppendFloat(t.line, v, 'g', -1, 64)
	t.line = append(t.line, '\n')
	t.w.Write(t.line)
}

func (t *textWriter) flush() error { return t.w.Flush() }

// The families, in exposition order.
const (
	famUp = iota
	famWeight
	famConfigured
	famState
	famChecks
	famFailures
	famLastSuccess
	famLastFailure
	famConsecutive
	famFlaps
	famTransitions
	famOverride
	famCount
)

// serverSeries is one real server's figures. A series is exported once it
// has been set, as a vector child would be: the has* flags say which.
type serverSeries struct {
	check string // check type, the "check" label
	// duration is the check duration histogram of the server's virtual
	// server and check, looked up once per check label, not per result
	// (nil until then; Result).
	duration prometheus.Observer

	// The flags and the configured weight share a word (field order
	// matters here: 20,000 servers).
	hasState, hasConsecutive, hasFlaps, hasOverride bool
	configured                                      uint32

	weight int64

	checksOK, checksFailed uint64
	// failures are the failures counted by reason class, sorted by
	// reasonIndex, only the classes seen: a server fails in one or two
	// classes, and a counter for every class was 160 bytes a server.
	failures []failureCount

	lastSuccess, lastFailure float64 // Unix seconds; 0: never
	// consecutive is int32 so that the state fits beside it (68 years of
	// failures a second); state indexes health.States (noState: none).
	consecutive int32
	state       uint8
	// override is the override kind as 1 + its index in OverrideKinds, 0
	// for none (a kind outside them is shown as none, as before): a byte
	// beside the state, where a string was 16 (the struct 152 bytes, the
	// 160 class, was 168 in the 176).
	override uint8

	flaps       uint64
	transitions [len(health.States)]uint64 // by state entered, as health.States
}

// noState is a state outside health.States, as RealServer may be given:
// exported as up 0 and no state 1, as before states were indexes.
const noState = uint8(len(health.States))

func stateIndex(state string) uint8 {
	for i, st := range health.States {
		if st.String() == state {
			return uint8(i)
		}
	}
	return noState
}

func stateOf(state health.State) uint8 {
	for i, st := range health.States {
		if st == state {
			return uint8(i)
		}
	}
	return noState
}

// is reports whether the server's state is st.
func (ss *serverSeries) is(st health.State) bool {
	return int(ss.state) < len(health.States) && health.States[ss.state] == st
}

// Series is one real server's series, held by whoever records many
// results for it (the engine, from the server's creation to its removal):
// recording through it (Result, SetState, CountTransition) costs no
// formatting of the server's address and no lookup by label values. It
// is the same series RealServer and the others find by name, so what is
// exported does not depend on which way it was written; once
// ForgetRealServer dropped it, what is recorded through it is exported by
// nobody.
type Series serverSeries

// failureCount is the failures of one reason class (reasonIndex).
type failureCount struct {
	class uint8
	n     uint64
}

func newServers() *servers {
	s := &servers{m: map[serverKey]*serverSeries{}}
	f := func(i int, name, help string, counter bool, extra ...string) {
		s.families[i] = newFamily(name, help, counter, append([]string{"virtual_server", "real_server"}, extra...))
	}
	f(famUp, "director_real_server_up", "1 when the real server is up after rise/fall, 0 when down or not yet known.", false)
	f(famWeight, "director_real_server_weight", "Weight the director programs for the real server now (absent from the kernel: -1).", false)
	f(famConfigured, "director_real_server_configured_weight", "Weight the config gives the real server when it is up.", false)
	f(famState, "director_real_server_state", "The real server's health state, one-hot: 1 for the current state, 0 for the others.", false, "state")
	f(famChecks, "director_checks_total", "Health checks completed, by result (success or failure).", true, "check", "result")
	f(famFailures, "director_check_failures_total", "Failed health checks by reason class ("+reasonClassHelp()+").", true, "check", "reason")
	f(famLastSuccess, "director_check_last_success_timestamp_seconds", "Unix time of the real server's last successful check (absent until one succeeds).", false)
	f(famLastFailure, "director_check_last_failure_timestamp_seconds", "Unix time of the real server's last failed check (absent until one fails).", false)
	f(famConsecutive, "director_real_server_consecutive_failures", "Failed checks in a row since the last success.", false)
	f(famFlaps, "director_real_server_flaps_total", "Changes between up and down (either way) after the first verdict.", true)
	f(famTransitions, "director_state_transitions_total", "Health state changes of a real server, by the state entered.", true, "to")
	f(famOverride, "director_real_server_override", "1 while an operator override (kind drain or disable, from the API or maintenance_dir) holds the real server out, else 0.", false, "kind")
	return s
}

// with runs f on the series of one real server, creating it if needed.
func (s *servers) with(vs, rs string, f func(*serverSeries)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.get(vs, rs))
}

// get is the series of one real server, created if needed; s.mu held.
func (s *servers) get(vs, rs string) *serverSeries {
	k := serverKey{vs, rs}
	ss := s.m[k]
	if ss == nil {
		ss = &serverSeries{}
		s.m[k] = ss
	}
	return ss
}

// withSeries runs f on a series held by handle.
func (s *servers) withSeries(h *Series, f func(*serverSeries)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f((*serverSeries)(h))
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
		ss.duration = nil
	}
}

// countFailure counts a failure of the given reason class.
func (ss *serverSeries) countFailure(class string) {
	i := uint8(reasonIndex(class))
	at, found := slices.BinarySearchFunc(ss.failures, i, func(f failureCount, i uint8) int { return int(f.class) - int(i) })
	if !found {
		ss.failures = slices.Insert(ss.failures, at, failureCount{class: i})
	}
	ss.failures[at].n++
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

// snapshot copies every server's figures, sorted by virtual server and
// real server, so that reading them never holds the lock the engine
// needs to record results.
type snapshotEntry struct {
	key serverKey
	ss  serverSeries
}

func (s *servers) snapshot() []snapshotEntry {
	s.mu.Lock()
	out := make([]snapshotEntry, 0, len(s.m))
	for k, ss := range s.m {
		e := snapshotEntry{key: k, ss: *ss}
		e.ss.failures = slices.Clone(ss.failures)
		out = append(out, e)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b snapshotEntry) int {
		if c := strings.Compare(a.key.vs, b.key.vs); c != 0 {
			return c
		}
		return strings.Compare(a.key.rs, b.key.rs)
	})
	return out
}

// series calls emit for every series of family fam of one server that is
// set, with the label values after virtual_server and real_server.
func (ss *serverSeries) series(fam int, emit func(extra []string, v float64)) {
	switch fam {
	case famUp:
		if ss.hasState {
			emit(nil, b2f(ss.is(health.Up)))
		}
	case famWeight:
		if ss.hasState {
			emit(nil, float64(ss.weight))
		}
	case famConfigured:
		if ss.hasState {
			emit(nil, float64(ss.configured))
		}
	case famState:
		if ss.hasState {
			for _, st := range health.States {
				emit([]string{st.String()}, b2f(ss.is(st)))
			}
		}
	case famChecks:
		if ss.checksFailed > 0 {
			emit([]string{ss.check, "failure"}, float64(ss.checksFailed))
		}
		if ss.checksOK > 0 {
			emit([]string{ss.check, "success"}, float64(ss.checksOK))
		}
	case famFailures:
		for _, f := range ss.failures {
			emit([]string{ss.check, reasonLabel(int(f.class))}, float64(f.n))
		}
	case famLastSuccess:
		if ss.lastSuccess > 0 {
			emit(nil, ss.lastSuccess)
		}
	case famLastFailure:
		if ss.lastFailure > 0 {
			emit(nil, ss.lastFailure)
		}
	case famConsecutive:
		if ss.hasConsecutive {
			emit(nil, float64(ss.consecutive))
		}
	case famFlaps:
		if ss.hasFlaps {
			emit(nil, float64(ss.flaps))
		}
	case famTransitions:
		for i, n := range ss.transitions {
			if n > 0 {
				emit([]string{health.States[i].String()}, float64(n))
			}
		}
	case famOverride:
		if ss.hasOverride {
			for i, kind := range OverrideKinds {
				emit([]string{kind}, b2f(int(ss.override) == i+1))
			}
		}
	}
}

func (s *servers) Describe(ch chan<- *prometheus.Desc) {
	for i := range s.families {
		ch <- s.families[i].desc
	}
}

func (s *servers) Collect(ch chan<- prometheus.Metric) {
	for _, e := range s.snapshot() {
		for i := range s.families {
			f := &s.families[i]
			e.ss.series(i, func(extra []string, v float64) {
				ch <- f.metric(v, append([]string{e.key.vs, e.key.rs}, extra...))
			})
		}
	}
}

// writeText writes every per-server family, family by family, without
// building them in memory.
func (s *servers) writeText(w io.Writer, want func(family string) bool) error {
	t := newTextWriter(w)
	if !slices.ContainsFunc(s.families[:], func(f family) bool { return want(f.name) }) {
		return t.flush() // none asked for: no snapshot of every server
	}
	snap := s.snapshot()
	values := make([]string, 0, 4)
	for i := range s.families {
		f := &s.families[i]
		if !want(f.name) {
			continue
		}
		t.begin()
		for _, e := range snap {
			e.ss.series(i, func(extra []string, v float64) {
				values = append(append(values[:0], e.key.vs, e.key.rs), extra...)
				t.sample(f, values, v)
			})
		}
	}
	return t.flush()
}

// appendEscaped appends a label value escaped as the text format wants:
// backslash, double quote and newline.
func appendEscaped(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func escapeHelp(h string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(h)
}
