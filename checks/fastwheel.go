package checks

import (
	"math"
	"math/bits"
	"time"
)

// The loop's timers are a hashed timer wheel whose slots are timerGrain
// long: the loop fires a timer at the end of the grain it falls in, so a
// slot per grain loses nothing, and arming, moving and stopping a timer
// are a few pointer writes in a list instead of a heap's log n levels of
// pointer chasing (4 % of the director's CPU at 40,000 real servers,
// docs/performance.md).
//
// Grain k is the time (k-1)×timerGrain < t ≤ k×timerGrain after the
// loop's epoch: a timer due in it fires at the first turn at or after
// k×timerGrain, never before its time and at most a grain after it.
//
// Two levels of wheelSlots slots each. The near one has a slot per grain
// for the next wheelSlots grains (16 s: timeouts, and the intervals of
// most checks); the far one a slot per block of wheelSlots grains for the
// blocks after the current one (18 h). A far slot's timers are filed again
// when the wheel reaches their block, before any of its grains is fired;
// those beyond the far level's span wait in its last slot and are filed
// again there each time round. A bitmap of each level's non-empty slots
// finds the next due slot in a few word operations, so the loop looks up
// its next wake-up without scanning slots.
const (
	wheelBits  = 12
	wheelSlots = 1 << wheelBits
	wheelMask  = wheelSlots - 1
)

// FastTimer is a function due at a time, run by the loop. At makes one
// per call; one kept in a struct of its own (a runner's next run) is set
// once with Init and armed for each run with Arm, so that a check on the
// loop allocates no timer per run (and ~60 bytes less a check).
type FastTimer struct {
	at int64 // due, as nanoseconds since the loop's epoch (monotonic): 24 bytes less than a time.Time
	fn func()
	// The list of its slot, intrusive so that arming and stopping
	// allocate nothing and take O(1). pprev points at whatever points at
	// the timer (its slot, or the timer before it), so that it can leave
	// the list without knowing which slot holds it. nil pprev: not
	// pending (fired, stopped or never armed).
	next  *FastTimer
	pprev **FastTimer
}

// Init sets the function tm runs when it fires. Not while it is pending.
func (tm *FastTimer) Init(fn func()) { tm.fn = fn }

// At runs fn in the loop at t (at the next turn if t has passed). Loop
// goroutine only.
func (l *FastLoop) At(t time.Time, fn func()) *FastTimer {
	tm := &FastTimer{fn: fn}
	l.Arm(tm, t)
	return tm
}

// Arm runs tm's function in the loop at t (at the next turn if t has
// passed), once; a pending tm moves to t. Loop goroutine only; also from
// a timer's function, for any timer, itself included.
func (l *FastLoop) Arm(tm *FastTimer, t time.Time) {
	tm.at = l.since(t)
	w := &l.timers
	if tm.pprev != nil {
		tm.unlink()
	} else {
		w.pending++
	}
	w.file(tm)
}

// since is t as a timer keeps it.
func (l *FastLoop) since(t time.Time) int64 { return int64(t.Sub(l.epoch)) }

// Stop keeps the timer from firing; a no-op on one that is not pending.
// Loop goroutine only; also from a timer's function.
func (l *FastLoop) Stop(tm *FastTimer) {
	if tm != nil && tm.pprev != nil {
		tm.unlink()
		l.timers.pending--
	}
}

// fireTimers runs the timers due by now, up to about turnBudget of them.
// Those left are due already: the loop's next wait does not park.
func (l *FastLoop) fireTimers(now time.Time) { l.timers.turnSome(l.since(now), turnBudget) }

// turnBudget is about how many timers a turn of the loop fires before it
// looks at its sockets again. A loop that fell behind (a collection, a
// busy machine) has seconds of starts and deadlines due at once: fired in
// one go, its runs' answers would wait unread in the epoll set until their
// deadlines fired too, each then finished by a poll of its own (a third
// of the director's CPU at 40,000 real servers, docs/performance.md), and
// the loop would fall further behind. Answers first, then the next batch.
const turnBudget = 256

// nextTimer is when the loop must next turn for its timers (a time passed
// when some are due already); false when none is pending.
func (l *FastLoop) nextTimer() (time.Time, bool) {
	k, ok := l.timers.next()
	if !ok {
		return time.Time{}, false
	}
	return l.epoch.Add(time.Duration(k) * timerGrain), true
}

// timerEpoch is a loop's epoch for a loop made at now: the start of now's
// grain, with now's monotonic reading, so that the wheel's grains end
// where grainUp puts them.
func timerEpoch(now time.Time) time.Time {
	return now.Add(grainUp(now).Sub(now) - timerGrain)
}

// timerWheel holds the loop's pending timers. Its zero value is empty,
// at the loop's epoch. It holds pointers into itself (the lists' pprev):
// never copied.
type timerWheel struct {
	now     int64      // the last turn's time, as a timer's at: a timer armed at or before it is due
	cur     int64      // the last grain turned: the slots of it and before have fired
	pending int        // the timers armed, not yet fired or stopped
	due     *FastTimer // armed at or before now: fired at the next turn
	// firing is the list a turn is firing or filing again, taken off its
	// slot first: a timer's function may then arm, move and stop any
	// timer, one of this very list included, as it would any other.
	firing *FastTimer
	near   wheelLevel // slot k&wheelMask: the timers due in grain k, cur < k ≤ cur+wheelSlots
	far    wheelLevel // slot b&wheelMask: those due in block b (grains b<<wheelBits …), cur's block < b ≤ cur's + wheelSlots; the last also those after
}

// dueGrain is the grain a timer due at at falls in (at rounded up).
func dueGrain(at int64) int64 {
	k := at / int64(timerGrain)
	if at > k*int64(timerGrain) {
		k++
	}
	return k
}

// file puts a pending timer in its list: due at the next turn when its
// time has passed, else the slot of its grain.
func (w *timerWheel) file(tm *FastTimer) {
	if tm.at <= w.now {
		push(&w.due, tm)
		return
	}
	w.place(tm)
}

// place puts a pending timer in the slot of its grain.
func (w *timerWheel) place(tm *FastTimer) {
	k := dueGrain(tm.at)
	switch {
	case k <= w.cur:
		push(&w.due, tm)
	case k-w.cur <= wheelSlots:
		w.near.put(int(k&wheelMask), tm)
	default:
		b := min(k>>wheelBits, w.cur>>wheelBits+wheelSlots)
		w.far.put(int(b&wheelMask), tm)
	}
}

// turn fires the timers due by now (as a timer's at): first those that
// were due before, then the wheel's grains in order. A timer armed meanwhile
// for a time already passed fires at the next turn.
func (w *timerWheel) turn(now int64) { w.turnSome(now, math.MaxInt) }

// turnSome is turn, stopping after the first grain that brings the timers
// fired to budget or more; true when it stopped with grains due by now
// left, which the next turn fires first, in order.
func (w *timerWheel) turnSome(now int64, budget int) bool {
	w.now = max(w.now, now)
	fired := 0
	if w.due != nil {
		moveList(&w.due, &w.firing)
		fired += w.fire()
	}
	to := w.now / int64(timerGrain) // the grain that ended last; now ≥ 0
	for w.pending > 0 {
		k, farBlock, ok := w.nextSlot()
		if !ok || k > to {
			break
		}
		if fired >= budget {
			return true // cur stays at the last grain fired
		}
		if farBlock {
			// The wheel enters the block: its timers go to the near slots
			// (those beyond the far level's span to its last slot), to
			// be fired in grain order, this turn for those due by now.
			w.cur = k - 1
			w.far.take(int((k>>wheelBits)&wheelMask), &w.firing)
			for w.firing != nil {
				tm := w.firing
				tm.unlink()
				w.place(tm)
			}
			continue
		}
		w.cur = k
		w.near.take(int(k&wheelMask), &w.firing)
		fired += w.fire()
	}
	w.cur = max(w.cur, to)
	return false
}

// fire runs the timers of the firing list and returns how many it ran.
func (w *timerWheel) fire() int {
	n := 0
	for w.firing != nil {
		tm := w.firing
		tm.unlink()
		w.pending--
		tm.fn()
		n++
	}
	return n
}

// next is the grain the loop must next turn for: cur when some timer is
// due already; false when none is pending.
func (w *timerWheel) next() (int64, bool) {
	switch {
	case w.due != nil:
		return w.cur, true
	case w.pending == 0:
		return 0, false
	}
	k, _, ok := w.nextSlot()
	return k, ok
}

// nextSlot is the first grain after cur with work: a near slot's timers
// to fire, or the first grain of a far slot's block (farBlock), whose
// timers must be filed again before it is fired.
func (w *timerWheel) nextSlot() (k int64, farBlock, ok bool) {
	k = math.MaxInt64
	if d, found := w.near.first(int((w.cur + 1) & wheelMask)); found {
		k, ok = w.cur+1+int64(d), true
	}
	b := w.cur>>wheelBits + 1
	if d, found := w.far.first(int(b & wheelMask)); found {
		if start := (b + int64(d)) << wheelBits; start <= k {
			k, farBlock, ok = start, true, true
		}
	}
	return k, farBlock, ok
}

// wheelLevel is a ring of lists with a bitmap of those that may be
// non-empty: a bit is set when a timer goes into an empty slot and
// cleared when the slot is taken, or found empty by first (a slot its
// last timer left through Stop or Arm).
type wheelLevel struct {
	slots [wheelSlots]*FastTimer
	used  [wheelSlots / 64]uint64 // bit s%64 of word s/64: slot s may hold timers
	words uint64                  // bit i: used[i] is not zero
}

func (lv *wheelLevel) put(s int, tm *FastTimer) {
	if lv.slots[s] == nil {
		lv.used[s>>6] |= 1 << (s & 63)
		lv.words |= 1 << (s >> 6)
	}
	push(&lv.slots[s], tm)
}

func (lv *wheelLevel) clear(s int) {
	if lv.used[s>>6] &^= 1 << (s & 63); lv.used[s>>6] == 0 {
		lv.words &^= 1 << (s >> 6)
	}
}

// take moves slot s's list to *to.
func (lv *wheelLevel) take(s int, to **FastTimer) {
	moveList(&lv.slots[s], to)
	lv.clear(s)
}

// first is how far after from, going round, the first non-empty slot is
// (0: from itself); false when all are empty.
func (lv *wheelLevel) first(from int) (int, bool) {
	for {
		s := lv.setFrom(from)
		if s < 0 {
			s = lv.setFrom(0)
		}
		if s < 0 {
			return 0, false
		}
		if lv.slots[s] != nil {
			return (s - from) & wheelMask, true
		}
		lv.clear(s)
	}
}

// setFrom is the first slot from from on whose bit is set, -1 for none.
func (lv *wheelLevel) setFrom(from int) int {
	i := from >> 6
	if word := lv.used[i] >> (from & 63); word != 0 {
		return from + bits.TrailingZeros64(word)
	}
	words := lv.words &^ (1<<(i+1) - 1) // the words after i
	if words == 0 {
		return -1
	}
	i = bits.TrailingZeros64(words)
	return i<<6 | bits.TrailingZeros64(lv.used[i])
}

// push puts tm first in the list *head.
func push(head **FastTimer, tm *FastTimer) {
	tm.next = *head
	if tm.next != nil {
		tm.next.pprev = &tm.next
	}
	tm.pprev = head
	*head = tm
}

// unlink takes tm out of its list.
func (tm *FastTimer) unlink() {
	*tm.pprev = tm.next
	if tm.next != nil {
		tm.next.pprev = tm.pprev
	}
	tm.next, tm.pprev = nil, nil
}

// moveList moves the list *from to *to, which must be empty.
func moveList(from, to **FastTimer) {
	*to, *from = *from, nil
	if *to != nil {
		(*to).pprev = to
	}
}
