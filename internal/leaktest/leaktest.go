// Package leaktest finds goroutines that a test left running. It is for
// tests only; it replaces a dependency (go.uber.org/goleak) with the forty
// lines the director's tests need.
package leaktest

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Wait is how long goroutines get to end before they count as leaked.
const Wait = 5 * time.Second

// Check fails t unless every goroutine started after the call has ended
// once the test and all its cleanups (its servers' included) are done.
// Call it first in the test, so that its cleanup runs last.
func Check(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() { gone(t, before) })
}

// Around records the running goroutines and returns a function that fails
// t unless every goroutine started since has ended: for a stretch of a
// test (one probe) while what it talks to starts no goroutines itself.
func Around(t testing.TB) (done func()) {
	t.Helper()
	before := goroutines()
	return func() {
		t.Helper()
		gone(t, before)
	}
}

// goroutines returns the stack of every goroutine, by goroutine id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		out[id] = g
	}
	return out
}

// gone waits up to Wait for every goroutine not in before to end, and
// fails t with the stacks of those that do not.
func gone(t testing.TB, before map[string]string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		var leaked []string
		for id, stack := range goroutines() {
			if _, old := before[id]; !old {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
