package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFreshFor(t *testing.T) {
	for _, tc := range []struct {
		cost, maxAge, want time.Duration
	}{
		{0, time.Second, 0}, // free: produced for every request
		{50 * time.Microsecond, time.Second, 500 * time.Microsecond}, // a small config
		{20 * time.Millisecond, time.Second, 200 * time.Millisecond},
		{100 * time.Millisecond, time.Second, time.Second}, // at the cap
		{3 * time.Second, 5 * time.Second, 5 * time.Second},
	} {
		if got := freshFor(tc.cost, tc.maxAge); got != tc.want {
			t.Errorf("freshFor(%s, %s) = %s, want %s", tc.cost, tc.maxAge, got, tc.want)
		}
	}
}

// TestRefresherLoadsOnceForConcurrentCallers: 100 callers arriving
// together while nothing is loaded cost one load, and all get its value.
func TestRefresherLoadsOnceForConcurrentCallers(t *testing.T) {
	var loads atomic.Int64
	release := make(chan struct{})
	r := &refresher[int]{maxAge: time.Hour, wait: 10 * time.Second, load: func(context.Context, *stamped[int]) (int, error) {
		<-release
		return int(loads.Add(1)), nil
	}}
	var wg sync.WaitGroup
	got := make([]int, 100)
	for i := range got {
		wg.Go(func() {
			v, err := r.get(context.Background(), nil)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	time.Sleep(50 * time.Millisecond) // all are waiting
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads for 100 concurrent callers, want 1", n)
	}
	for i, v := range got {
		if v != 1 {
			t.Fatalf("caller %d got %d, want the one load's value 1", i, v)
		}
	}
}

// TestRefresherServesLastValueWhileLoading: once a value exists, callers
// never wait for a reload another caller runs.
func TestRefresherServesLastValueWhileLoading(t *testing.T) {
	var loads atomic.Int64
	block := make(chan struct{})
	r := &refresher[int]{maxAge: time.Nanosecond, wait: 10 * time.Second, load: func(_ context.Context, prev *stamped[int]) (int, error) {
		if prev != nil {
			<-block
		}
		return int(loads.Add(1)), nil
	}}
	if v, _ := r.get(context.Background(), nil); v != 1 {
		t.Fatalf("first get = %d", v)
	}
	second := make(chan int)
	go func() { v, _ := r.get(context.Background(), nil); second <- v }() // reloads: stale after 1ns
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	for range 10 {
		if v, err := r.get(context.Background(), nil); v != 1 || err != nil {
			t.Fatalf("get while reloading = %d, %v; want the last value 1", v, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("gets while reloading took %s; they must not wait", d)
	}
	close(block)
	if v := <-second; v != 2 {
		t.Errorf("the reloading caller got %d, want 2", v)
	}
}

// TestRefresherFreshness: a value is served again while it is fresh by
// freshFor, and reloaded after; invalidate forces a reload at once.
func TestRefresherFreshness(t *testing.T) {
	var loads atomic.Int64
	r := &refresher[int]{maxAge: time.Hour, wait: time.Second, load: func(context.Context, *stamped[int]) (int, error) {
		time.Sleep(10 * time.Millisecond) // fresh for 100 ms
		return int(loads.Add(1)), nil
	}}
	r.get(context.Background(), nil)
	if v, _ := r.get(context.Background(), nil); v != 1 {
		t.Errorf("get within 100 ms = %d, want the first value", v)
	}
	time.Sleep(150 * time.Millisecond)
	r.get(context.Background(), nil) // stale: reloads (and waits, as nothing else loads)
	if v, _ := r.get(context.Background(), nil); v != 2 {
		t.Errorf("get after 150 ms = %d, want a second load", v)
	}
	r.invalidate()
	if v, _ := r.get(context.Background(), nil); v != 3 {
		t.Errorf("get after invalidate = %d, want a third load", v)
	}
}

// TestRefresherFailures: a failed load is not kept; a load that finds no
// render slot falls back on the last value; a panicking load does not
// leave later callers waiting; a caller waits for a load at most wait.
func TestRefresherFailures(t *testing.T) {
	boom := errors.New("boom")
	var fail atomic.Value
	r := &refresher[int]{maxAge: time.Nanosecond, wait: 100 * time.Millisecond, load: func(context.Context, *stamped[int]) (int, error) {
		switch f := fail.Load(); f {
		case "panic":
			panic("load panicked")
		case "error":
			return 0, boom
		case "busy":
			return 0, errBusy
		}
		return 7, nil
	}}
	fail.Store("error")
	if _, err := r.get(context.Background(), nil); err != boom {
		t.Errorf("failed load: err %v, want boom", err)
	}
	fail.Store("busy")
	if _, err := r.get(context.Background(), nil); err != errBusy {
		t.Errorf("busy with nothing to fall back on: err %v, want errBusy", err)
	}
	fail.Store("")
	r.get(context.Background(), nil)
	fail.Store("busy")
	if v, err := r.get(context.Background(), nil); v != 7 || err != nil {
		t.Errorf("busy with a last value: %d, %v; want 7", v, err)
	}
	fail.Store("panic")
	r.invalidate()
	func() {
		defer func() { recover() }()
		r.get(context.Background(), nil)
	}()
	fail.Store("")
	if v, err := r.get(context.Background(), nil); v != 7 || err != nil {
		t.Errorf("after a panicking load: %d, %v", v, err)
	}

	// A load that never ends: the next caller gives up after wait.
	stuck := make(chan struct{})
	defer close(stuck)
	slow := &refresher[int]{maxAge: time.Hour, wait: 100 * time.Millisecond, load: func(context.Context, *stamped[int]) (int, error) {
		<-stuck
		return 1, nil
	}}
	go slow.get(context.Background(), nil)
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if _, err := slow.get(context.Background(), nil); err != errBusy || time.Since(start) > 2*time.Second {
		t.Errorf("waiting on a stuck load: %v after %s, want errBusy after ~100ms", err, time.Since(start))
	}
}

func TestRenderSlots(t *testing.T) {
	s := newRenderSlots(2, 50*time.Millisecond)
	ctx := context.Background()
	if s.acquire(ctx) != nil || s.acquire(ctx) != nil {
		t.Fatal("two slots: both acquires must succeed")
	}
	start := time.Now()
	if err := s.acquire(ctx); err != errBusy {
		t.Errorf("third acquire = %v, want errBusy", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("third acquire gave up after %s, want it to wait 50ms first", d)
	}
	go func() { time.Sleep(10 * time.Millisecond); s.release() }()
	if err := s.acquire(ctx); err != nil {
		t.Errorf("acquire while a slot is released = %v", err)
	}
}
