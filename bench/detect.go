package bench

import (
	"fmt"
	"time"
)

// Detection time of a dead server, with and without retry_interval. A
// backend dies at a uniformly random moment of its check's interval: the
// first failed run comes after interval/2 on average (interval at worst),
// and the fall−1 runs that confirm it after retry_interval each, or after
// interval each without one.

// retryStep is the spacing of the confirming runs.
func retryStep(o Options) time.Duration {
	if o.RetryInterval > 0 {
		return o.RetryInterval
	}
	return o.Interval
}

// detectionSchedule is the longest the schedule lets a detection take:
// a whole interval to the first failed run, then fall−1 steps.
func detectionSchedule(o Options) time.Duration {
	return o.Interval + time.Duration(max(o.Fall-1, 0))*retryStep(o)
}

// expectedDetection is the mean the schedule predicts:
// interval/2 + (fall−1) × step.
func expectedDetection(o Options) time.Duration {
	return o.Interval/2 + time.Duration(max(o.Fall-1, 0))*retryStep(o)
}

// retryLine is the [defaults.check] line setting retry_interval, if any.
func retryLine(o Options) string {
	if o.RetryInterval <= 0 {
		return ""
	}
	return fmt.Sprintf("retry_interval = %q\n", o.RetryInterval.String())
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
