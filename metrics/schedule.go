package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Schedule measures how punctual the check scheduler is: how late each
// check starts against its plan, and how many planned runs were dropped
// because the previous run, or the whole machine, fell an interval behind.
type Schedule struct {
	lag     prometheus.Histogram
	skipped prometheus.Counter
	started prometheus.Counter
}

func newSchedule(reg prometheus.Registerer) *Schedule {
	s := &Schedule{
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "director_check_schedule_lag_seconds",
			Help: "How late a check started compared with its planned time.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1,
				.25, .5, 1, 2.5, 5},
			// Classic buckets only, as director_check_duration_seconds.
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "director_checks_skipped_total",
			Help: "Planned check runs dropped because the scheduler was a whole interval behind.",
		}),
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "director_checks_started_total",
			Help: "Check runs started by the scheduler.",
		}),
	}
	reg.MustRegister(s.lag, s.skipped, s.started)
	return s
}

// Started records a check run that started lag after its planned time.
func (s *Schedule) Started(lag time.Duration) {
	s.started.Inc()
	s.lag.Observe(lag.Seconds())
}

// Skipped records n planned runs that were dropped.
func (s *Schedule) Skipped(n int) { s.skipped.Add(float64(n)) }

// SkippedCounter and StartedCounter expose the counters to tests.
func (s *Schedule) SkippedCounter() prometheus.Counter { return s.skipped }
func (s *Schedule) StartedCounter() prometheus.Counter { return s.started }
