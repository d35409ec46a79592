package engine

import "time"

// backoff is a retry timer whose delay doubles from min to max while
// failures go on, and which is quiet after a success.
type backoff struct {
	min, max time.Duration
	next     time.Duration
	timer    *time.Timer
}

func newBackoff(min, max time.Duration) *backoff {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &backoff{min: min, max: max, next: min, timer: t}
}

// C fires when a scheduled retry is due.
func (b *backoff) C() <-chan time.Time { return b.timer.C }

// schedule arms the timer for the next retry and doubles the delay.
func (b *backoff) schedule() {
	b.timer.Reset(b.next)
	b.next = min(b.next*2, max(b.max, b.min))
}

// reset disarms the timer and starts the delays over.
func (b *backoff) reset() {
	b.timer.Stop()
	b.next = b.min
}

func (b *backoff) stop() { b.timer.Stop() }
