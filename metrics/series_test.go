package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/health"
)

// scrape is the /metrics text of m without the lines that differ between
// two registries of one process (Go runtime, process, scrape counters).
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var keep []string
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.Contains(l, "director_") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// Recording through a server's Series exports exactly what recording by
// name does: the same series, labels and values, the duration histogram
// included, and a state given as a health.State is the one its name gives.
func TestSeriesHandleExportsWhatNamesDo(t *testing.T) {
	at := time.Unix(1764650000, 0)
	byName, byHandle := New(Build{Version: "test"}), New(Build{Version: "test"})
	const vs, rs = "web", "10.0.0.1:80"

	byName.RealServer(vs, rs, health.Unknown.String(), -1, 100)
	h := byHandle.RealServerSeries(vs, rs)
	byHandle.SetState(h, health.Unknown, -1, 100)

	results := []struct {
		check  string
		ok     bool
		reason string
		fails  int
	}{
		{"http", true, "", 0}, {"http", false, "timeout", 1}, {"http", false, "status 503", 2},
		{"http", true, "", 0}, {"tcp", false, "refused", 1}, {"tcp", true, "", 0},
	}
	for i, r := range results {
		d := time.Duration(i+1) * 3 * time.Millisecond
		byName.Check(vs, rs, r.check, r.ok, d)
		byName.CheckOutcome(vs, rs, r.check, r.ok, r.reason, at, r.fails)
		byHandle.Result(h, vs, r.check, r.ok, d, r.reason, at, r.fails)
	}
	for _, st := range []health.State{health.Up, health.Down, health.Draining} {
		byName.Transition(vs, rs, st.String())
		byName.RealServer(vs, rs, st.String(), 50, 100)
		byHandle.CountTransition(h, st)
		byHandle.SetState(h, st, 50, 100)
	}
	want, got := scrape(t, byName), scrape(t, byHandle)
	if got != want {
		t.Errorf("through the handle:\n%s\n\nby name:\n%s", got, want)
	}
	for _, s := range []string{
		`director_check_duration_seconds_count{check="tcp",virtual_server="web"} 2`,
		`director_checks_total{check="tcp",real_server="10.0.0.1:80",result="success",virtual_server="web"} 1`,
		`director_real_server_state{real_server="10.0.0.1:80",state="draining",virtual_server="web"} 1`,
	} {
		if !strings.Contains(got, s) {
			t.Errorf("no %s in\n%s", s, got)
		}
	}

	// A forgotten server's series are gone, whatever is still recorded
	// through a handle kept by mistake.
	byHandle.ForgetRealServer(vs, rs)
	byHandle.Result(h, vs, "tcp", true, time.Millisecond, "", at, 0)
	byHandle.SetState(h, health.Up, 100, 100)
	if s := scrape(t, byHandle); strings.Contains(s, `real_server="10.0.0.1:80"`) {
		t.Errorf("a forgotten server exported:\n%s", s)
	}
}
