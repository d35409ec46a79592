package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
)

// inboxReader takes results from an inbox as the engine loop does, and
// hands them out one at a time, for the runners' tests.
type inboxReader struct {
	in    *inbox
	batch []probeResult
}

// next is the next result, or false when none came within timeout.
func (r *inboxReader) next(timeout time.Duration) (probeResult, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(r.batch) == 0 {
		select {
		case <-r.in.ready:
			r.batch = slices.Clone(r.in.take())
		case <-deadline.C:
			return probeResult{}, false
		}
	}
	res := r.batch[0]
	r.batch = r.batch[1:]
	return res, true
}

func (r *inboxReader) mustNext(t *testing.T) probeResult {
	t.Helper()
	res, ok := r.next(10 * time.Second)
	if !ok {
		t.Fatal("no result within 10s")
	}
	return res
}

// A batch holds every result put since the last take, in the order they
// were put, with one wake-up for all of them; each runner's results keep
// their order across batches.
func TestInboxBatchesInOrder(t *testing.T) {
	in := newInbox(inboxLimit, nil)
	const runners, each = 8, 500
	var wg sync.WaitGroup
	for i := range runners {
		wg.Go(func() {
			for j := range each {
				if !in.put(context.Background(), probeResult{key: fmt.Sprint(i), result: checks.Result{Duration: time.Duration(j)}}) {
					t.Error("put refused with no context ended")
				}
			}
		})
	}
	wg.Wait()
	if got := len(in.ready); got != 1 {
		t.Fatalf("%d results waiting: %d wake-up tokens, want 1", runners*each, got)
	}
	<-in.ready
	batch := in.take()
	if len(batch) != runners*each {
		t.Fatalf("one take returned %d results, want all %d", len(batch), runners*each)
	}
	next := map[string]time.Duration{}
	for _, r := range batch {
		if r.result.Duration != next[r.key] {
			t.Fatalf("runner %s: result %d came when %d was due (order lost)", r.key, r.result.Duration, next[r.key])
		}
		next[r.key]++
	}
	if len(in.take()) != 0 || len(in.ready) != 0 {
		t.Fatal("the inbox is not empty after a take")
	}
	// The next result wakes the loop again.
	in.put(context.Background(), probeResult{key: "0"})
	if len(in.ready) != 1 {
		t.Fatal("a result put after a take did not wake the loop")
	}
}

// A full inbox refuses tryPut (the fast loop must not wait), makes put
// wait until the loop takes a batch, and lets put go when its context
// ends.
func TestInboxFullWaits(t *testing.T) {
	in := newInbox(2, nil)
	for range 2 {
		if !in.tryPut(probeResult{key: "a"}) {
			t.Fatal("tryPut refused with room left")
		}
	}
	if in.tryPut(probeResult{key: "b"}) {
		t.Fatal("tryPut accepted a result beyond the limit")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if in.put(ctx, probeResult{key: "b"}) {
		t.Fatal("put into a full inbox returned true with its context ended")
	}
	done := make(chan bool)
	go func() { done <- in.put(context.Background(), probeResult{key: "c"}) }()
	select {
	case <-done:
		t.Fatal("put into a full inbox returned before the loop took anything")
	case <-time.After(50 * time.Millisecond):
	}
	if got := len(in.take()); got != 2 {
		t.Fatalf("take returned %d results, want 2", got)
	}
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("put returned false after the loop made room")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("put still waits after the loop took a batch")
	}
	if batch := in.take(); len(batch) != 1 || batch[0].key != "c" {
		t.Fatalf("after making room the inbox holds %v, want the waiting result", batch)
	}
}
