package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// FastLoop runs the simplest and most common checks — a TCP connect, a
// plain HTTP/1.x request judged on its status — from one goroutine on
// non-blocking sockets and one epoll set, many checks per wake-up: what
// keepalived's checker does. The usual path (a goroutine per run, Go's
// net.Dialer, a context and runtime timer per run) costs about three times
// the CPU per check (docs/performance.md); here a check is a socket, a
// connect, one epoll registration, a getsockopt, (a write and reads) and
// a close, with no goroutine, context or runtime timer of its own.
//
// It serves the probers the registry builds: a prober whose spec it can
// run (Supports) is run the same way, with the same Result and reasons;
// the HTTP response is parsed by net/http's ReadResponse as on the usual
// path. Everything else (TLS, send/expect, bodies, other kinds) stays on
// Probe.
//
// Timers (At) and runs (Start) belong to the loop's goroutine: call them
// from a function the loop runs (Do, a timer, a run's done). Do may be
// called from any goroutine.
type FastLoop struct {
	epfd, wakefd int
	// epoll is epfd in the Go runtime's poller: the loop waits there
	// (parked, no thread held) until a socket of its set is ready or the
	// next timer is due (its read deadline, the loop's one runtime timer).
	epoll    *os.File
	epollRaw syscall.RawConn
	waitTill time.Time // epoll's read deadline as last set
	// wait's state for lookNow, through look (lookNow, made once)
	look        func(uintptr) bool
	ready       int
	waitPending bool
	waitNext    time.Time

	mu      sync.Mutex
	queue   []func() // for the loop, from other goroutines
	closed  bool
	stopped chan struct{} // closed when the loop goroutine has ended

	timers  timerWheel
	epoch   time.Time          // what the timers' times count from (FastTimer.at)
	runs    map[int32]*FastRun // in flight, by socket
	events  []unix.EpollEvent
	pollFds [1]unix.PollFd // expire's look at a socket, kept to spare an allocation
	scratch []byte         // what a read lands in before it is kept
	wbuf    []byte         // an HTTP request as it is written (FastRun.ready)
	br      *bufio.Reader  // parses heads, reset for each
	// reads are the requests heads are parsed for, one per method:
	// ReadResponse reads only a request's method (HEAD has no body), and
	// a whole request kept per HTTP check was 550 bytes a real server
	// (docs/performance.md, "Memory per real server").
	reads map[string]*http.Request
	free  *FastRun // runs done, for the next checks

	readCalls int // read calls made, for tests
}

// readRequest is a request of method for ReadResponse. Loop goroutine only.
func (l *FastLoop) readRequest(method string) *http.Request {
	r := l.reads[method]
	if r == nil {
		r = &http.Request{Method: method}
		l.reads[method] = r
	}
	return r
}

// NewFastLoop starts a loop; Close ends it.
func NewFastLoop() (*FastLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fast checks: epoll: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("fast checks: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("fast checks: epoll: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil { // so that NewFile puts it in the poller
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("fast checks: epoll: %w", err)
	}
	epoll := os.NewFile(uintptr(epfd), "fast-checks-epoll")
	epollRaw, err := epoll.SyscallConn()
	if err != nil {
		epoll.Close()
		unix.Close(wakefd)
		return nil, fmt.Errorf("fast checks: epoll: %w", err)
	}
	l := &FastLoop{epfd: epfd, wakefd: wakefd, epoll: epoll, epollRaw: epollRaw, stopped: make(chan struct{}), epoch: timerEpoch(time.Now()),
		runs: map[int32]*FastRun{}, events: make([]unix.EpollEvent, 256), reads: map[string]*http.Request{},
		scratch: make([]byte, 16<<10), br: bufio.NewReaderSize(nil, 4096)}
	l.look = l.lookNow
	go l.run()
	return l, nil
}

// Close ends the loop: runs in flight are dropped without a result,
// timers never fire. It waits for the loop's goroutine to end.
func (l *FastLoop) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		l.wake()
	}
	l.mu.Unlock()
	<-l.stopped
}

// Do runs fn in the loop's goroutine and returns once it has run. On a
// closed loop fn runs at once, in the caller's goroutine (nothing else
// runs on the loop any more).
func (l *FastLoop) Do(fn func()) {
	done := make(chan struct{})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.stopped
		fn()
		return
	}
	l.queue = append(l.queue, func() { fn(); close(done) })
	if len(l.queue) == 1 {
		l.wake()
	}
	l.mu.Unlock()
	select {
	case <-done:
	case <-l.stopped:
		// Closed before fn ran: the loop will not run it any more.
		l.mu.Lock()
		pending := l.queue
		l.queue = nil
		l.mu.Unlock()
		for _, f := range pending {
			f()
		}
		<-done
	}
}

func (l *FastLoop) wake() {
	var one = [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

// run is the loop: wait for sockets and the next timer, handle what is
// ready, fire what is due.
func (l *FastLoop) run() {
	defer close(l.stopped)
	defer func() {
		for fd := range l.runs {
			unix.Close(int(fd))
		}
		l.epoll.Close()
		unix.Close(l.wakefd)
	}()
	for {
		n := l.wait()
		// Every answer waiting, before any timer: a run whose answer is
		// read ends here, its deadline unfired (fireTimers).
		for {
			for i := range n {
				ev := l.events[i]
				if ev.Fd == -1 {
					if !l.drainQueue() {
						return
					}
					continue
				}
				if r := l.runs[ev.Fd]; r != nil {
					r.ready(ev.Events)
				}
			}
			if n < len(l.events) {
				break
			}
			n = rawEpollNow(l.epfd, l.events)
		}
		l.fireTimers(time.Now())
	}
}

// wait returns the number of ready events in l.events, once there are
// some or the next timer is due. It parks in the runtime's poller on the
// epoll fd, which is readable while the set has ready sockets.
func (l *FastLoop) wait() int {
	next, pending := l.nextTimer() // zero: no timer, no deadline
	if !next.Equal(l.waitTill) {
		l.epoll.SetReadDeadline(next)
		l.waitTill = next
	}
	l.ready, l.waitPending, l.waitNext = 0, pending, next
	if err := l.epollRaw.Read(l.look); err != nil {
		// The deadline (the next timer) passed, maybe before the first
		// look: look once more.
		l.ready = rawEpollNow(l.epfd, l.events)
	}
	return l.ready
}

// lookNow is wait's look at the set, polled after the runtime armed its
// wait, so that readiness between this look and the park still wakes it.
// A method value made once (look): a closure per wait was two allocations.
func (l *FastLoop) lookNow(uintptr) bool {
	l.ready = rawEpollNow(l.epfd, l.events)
	return l.ready > 0 || (l.waitPending && !time.Now().Before(l.waitNext))
}

// timerGrain is how finely the loop's timers are kept when it parks: it
// wakes at the end of the grain a timer falls in and runs every timer due
// by then. Checks spread over their interval then start a few at a time —
// at 1,000 checks a second about four per wake-up instead of one — and each
// wake-up of a parked goroutine costs more CPU than the connect it starts
// (docs/performance.md). A timer fires at most one grain late: a start lags
// by up to 4 ms, a timeout gives the server up to 4 ms more.
const timerGrain = 4 * time.Millisecond

// grainUp is t rounded up to the next multiple of timerGrain.
func grainUp(t time.Time) time.Time {
	g := t.Truncate(timerGrain)
	if g.Before(t) {
		g = g.Add(timerGrain)
	}
	return g
}

// drainQueue runs what other goroutines handed in; false once closed.
func (l *FastLoop) drainQueue() bool {
	var b [8]byte
	unix.Read(l.wakefd, b[:])
	l.mu.Lock()
	q, closed := l.queue, l.closed
	l.queue = nil
	l.mu.Unlock()
	for _, fn := range q {
		fn()
	}
	return !closed
}

// fastSpec is what the loop needs to run a prober's check. Probers hold
// it by value: an allocation of its own per check was ~130 bytes a real
// server (docs/performance.md, "Memory, second pass").
type fastSpec struct {
	spec   *Spec         // nil: the loop cannot run the check
	http   *httpProber   // nil: a TCP connect; else its request (the shape's template) and head
	source unix.Sockaddr // nil: any
	raw    rawAddr       // the target, for connect
}

// fastOf returns how the loop runs p, nil when it cannot.
func fastOf(p Prober) *fastSpec {
	var f *fastSpec
	switch p := p.(type) {
	case *tcpProber:
		f = &p.fast
	case *httpProber:
		f = &p.fast
	}
	if f == nil || f.spec == nil {
		return nil
	}
	return f
}

// Supports says whether the loop can run p's checks.
func (l *FastLoop) Supports(p Prober) bool { return RunsOnLoop(p) }

// RunsOnLoop says whether a FastLoop can run p's checks.
func RunsOnLoop(p Prober) bool { return fastOf(p) != nil }

// init prepares the loop's form of a check of spec; false, leaving f
// unset, when the loop cannot run it.
func (f *fastSpec) init(spec *Spec) bool {
	if _, ok := spec.DataPathRoute(); ok {
		return false // dialled from the real server's namespace (datapath = true)
	}
	raw := newRawAddr(spec.Target.Addr(), spec.Target.Port(), zoneIndex(spec.Target.Addr()))
	var source unix.Sockaddr
	if spec.Source.IsValid() {
		fam, src := sockaddr(spec.Source, 0)
		if fam != raw.family() {
			return false
		}
		source = src
	}
	f.spec, f.raw, f.source = spec, raw, source
	return true
}

func sockaddr(a netip.Addr, port uint16) (int, unix.Sockaddr) {
	if a.Is4() || a.Is4In6() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(port), Addr: a.Unmap().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(port), Addr: a.As16(), ZoneId: zoneIndex(a)}
}

// zoneIndex is the interface index of an IPv6 address's zone, 0 for none.
func zoneIndex(a netip.Addr) uint32 {
	if z := a.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			return uint32(ifi.Index)
		}
	}
	return 0
}

// FastRun is one check in flight on the loop.
type FastRun struct {
	loop     *FastLoop
	f        *fastSpec
	fd       int
	start    time.Time
	deadline time.Time
	timer    FastTimer // the deadline; runs expire, set once for the run's lifetime
	done     FastDone
	written  int    // bytes of the request written
	sentLate bool   // the request's first bytes went out at or after the deadline
	buf      []byte // the response so far
	scanned  int    // how much of buf was searched for the head's end
	finished bool
	// reuse: the loop takes the run back once done has been called. Not
	// for a run that ended inside Start, whose caller still gets it.
	reuse    bool
	starting bool
	nextFree *FastRun // the loop's free runs
}

// FastDone is what a run on the loop hands its result to, in the loop. An
// interface rather than a func, so that a runner passes itself: a method
// value would be a closure allocated per run.
type FastDone interface{ FastDone(Result) }

// DoneFunc is a func as a FastDone.
type DoneFunc func(Result)

// FastDone calls f.
func (f DoneFunc) FastDone(r Result) { f(r) }

// maxKeptBuf is the most response buffer a free run keeps for its next
// check: a usual head fits; a rare large one is left to the collector.
const maxKeptBuf = 4 << 10

// newRun is a run from the loop's free list, or a new one.
func (l *FastLoop) newRun() *FastRun {
	r := l.free
	if r == nil {
		r = &FastRun{loop: l}
		r.timer.Init(r.expire)
		return r
	}
	l.free, r.nextFree = r.nextFree, nil
	return r
}

// Start runs p's check, bounded by deadline (and by the spec's timeout
// from now, when shorter), and calls done in the loop with its result.
// It returns nil, and calls nothing, when the loop cannot run p. Loop
// goroutine only.
//
// The run is the loop's again once done has been called, to serve another
// check (a check allocates no run of its own): the caller must not use it
// after that, not even to Abort it. StartKept is for a caller that may.
func (l *FastLoop) Start(p Prober, deadline time.Time, done FastDone) *FastRun {
	return l.start(p, deadline, done, true)
}

// StartKept is Start whose run stays the caller's after done.
func (l *FastLoop) StartKept(p Prober, deadline time.Time, done FastDone) *FastRun {
	return l.start(p, deadline, done, false)
}

func (l *FastLoop) start(p Prober, deadline time.Time, done FastDone, reuse bool) *FastRun {
	f := fastOf(p)
	if f == nil {
		return nil
	}
	r := l.newRun()
	r.f, r.fd, r.start, r.deadline, r.done = f, -1, time.Now(), deadline, done
	r.written, r.sentLate, r.buf, r.scanned, r.finished = 0, false, r.buf[:0], 0, false
	r.reuse, r.starting = reuse, true
	defer func() { r.starting = false }()
	if !r.start.Before(deadline) {
		// As run does: a late start is the director's delay.
		r.finish(reasonLate)
		return r
	}
	if t := f.spec.Timeout; t > 0 && r.start.Add(t).Before(deadline) {
		r.deadline = r.start.Add(t)
	}
	fd, err := rawSocket(f.raw.family())
	if err != nil {
		r.fail("socket", err)
		return r
	}
	r.fd = fd
	if f.source != nil {
		if err := unix.Bind(fd, f.source); err != nil {
			r.fail("bind", err)
			return r
		}
	}
	if err := rawConnect(fd, &f.raw); err != nil && err != unix.EINPROGRESS {
		r.fail("connect", err)
		return r
	}
	// Edge-triggered, in and out at once: the connect's completion and
	// the answer each wake the loop once, with no second epoll_ctl.
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		r.fail("epoll_ctl", err)
		return r
	}
	l.runs[int32(fd)] = r
	l.Arm(&r.timer, r.deadline)
	return r
}

// Abort ends the run without a result. Loop goroutine only.
func (r *FastRun) Abort() {
	if r == nil || r.finished {
		return
	}
	r.done = nil
	r.finish("canceled")
}

// expire ends a run at its deadline. A loop that is behind (a busy
// machine, thousands of sockets ready at once) may reach the deadline
// before the readiness it has not read yet: one last look at the socket,
// without waiting, so that a server that did answer in time is not failed
// for the director's own delay.
func (r *FastRun) expire() {
	fds := r.loop.pollFds[:]
	fds[0] = unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLOUT}
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
		var events uint32
		if fds[0].Revents&unix.POLLOUT != 0 {
			events |= unix.EPOLLOUT
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0 {
			events |= unix.EPOLLIN | unix.EPOLLERR
		}
		r.ready(events)
		if r.finished {
			return // ready judged it (and the run may be free again)
		}
	}
	if r.sentLate {
		// Connected, but the loop wrote the request only once the
		// deadline had passed: the server never had the time the check
		// gives it. The director's delay, not the server's failure.
		r.finish(reasonBehind)
		return
	}
	r.finish("timeout") // a no-op when ready finished it
}

// fail ends the run with the reason the usual path gives for err, which
// is wrapped as net's dialer and connections wrap it.
func (r *FastRun) fail(op string, err error) {
	netOp := "read"
	switch op {
	case "write":
		netOp = "write"
	case "socket", "bind", "connect", "epoll_ctl":
		netOp = "dial"
	}
	r.finish(classifyAt(&net.OpError{Op: netOp, Net: "tcp", Err: os.NewSyscallError(op, err)}, nil, r.deadline))
}

func (r *FastRun) finish(reason string) {
	if r.finished {
		return
	}
	r.finished = true
	r.loop.Stop(&r.timer)
	if r.fd >= 0 {
		delete(r.loop.runs, int32(r.fd))
		rawClose(r.fd) // also leaves the epoll set
		r.fd = -1
	}
	done := r.done
	r.done = nil
	if r.reuse && !r.starting {
		// Back to the free list before done, which may start another
		// check on it: nothing below touches the run.
		l := r.loop
		if cap(r.buf) > maxKeptBuf {
			r.buf = nil
		}
		r.f = nil
		r.nextFree, l.free = l.free, r
	}
	if done != nil {
		done.FastDone(Result{OK: reason == "", Reason: reason, Inconclusive: strings.HasPrefix(reason, localPrefix),
			Start: r.start, Duration: time.Since(r.start)})
	}
}

// ready handles the socket's readiness.
func (r *FastRun) ready(events uint32) {
	if r.written == 0 && events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		soerr, err := rawSoError(r.fd)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		if err != nil {
			r.fail("connect", err)
			return
		}
		if r.f.http == nil {
			r.finish("")
			return
		}
	}
	if r.f.http == nil {
		return // connecting still
	}
	h := r.f.http
	if size := h.request.size(h.host); r.written < size {
		if events&unix.EPOLLOUT == 0 {
			return
		}
		if r.written == 0 && !time.Now().Before(r.deadline) {
			r.sentLate = true
		}
		// The request is put together in the loop's buffer from the
		// shape's template and the host, at each write: a few hundred
		// bytes copied, against a copy of them kept per check.
		r.loop.wbuf = h.request.appendTo(r.loop.wbuf[:0], h.host)
		n, err := rawWrite(r.fd, r.loop.wbuf[r.written:])
		if err != nil && err != unix.EAGAIN {
			r.fail("write", err)
			return
		}
		r.written += max(n, 0)
		if r.written < size {
			return // the rest when the socket is writable again
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		// Nothing to read: the answer (to what was just written) comes
		// with an EPOLLIN edge of its own. A read now would only say
		// EAGAIN.
		return
	}
	// Read what has arrived, up to the cap the usual path puts on the
	// head, and judge as soon as the head may be complete (a blank line
	// has come since the last look) or the reading is over: not at every
	// packet, which would make a server trickling headers cost the square
	// of their size, and not after one more read to hear EAGAIN or the
	// end of a head already whole (a head is usually one read). Until the
	// judgement is complete it reads on to EAGAIN, which is what arms the
	// edge-triggered socket again. Reads land in the loop's scratch
	// buffer; a run keeps only what came.
	var end error
	for {
		if len(r.buf) < maxHeadBytes {
			n, err := rawRead(r.fd, r.loop.scratch[:min(len(r.loop.scratch), maxHeadBytes-len(r.buf))])
			r.loop.readCalls++
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return // the rest when more comes
			case err != nil:
				end = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
			case n == 0:
				end = io.EOF
			default:
				r.buf = append(r.buf, r.loop.scratch[:n]...)
				if len(r.buf) < maxHeadBytes {
					from := max(0, r.scanned-2)
					whole := bytes.Contains(r.buf[from:], []byte("\n\n")) || bytes.Contains(r.buf[from:], []byte("\n\r\n"))
					r.scanned = len(r.buf)
					if !whole {
						continue
					}
				}
			}
		}
		if reason, complete := h.judgeHead(r.loop.br, r.loop.readRequest(h.method), r.buf, end, r.deadline); complete {
			r.finish(reason)
			return
		}
		if end != nil || len(r.buf) >= maxHeadBytes {
			return // judged whole above; not reached
		}
	}
}

// errMore says the head is not complete yet and the connection is open.
var errMore = errors.New("more to come")

// heldResponse reads what has arrived of a response: after it, errMore
// while the connection is open, else how the connection ended; at
// maxHeadBytes an end of stream marked as the director's own cap, as
// capReader does on the usual path.
type heldResponse struct {
	b   []byte
	off int
	end error
	hit bool
}

func (h *heldResponse) Read(p []byte) (int, error) {
	if h.end == nil && len(h.b) < maxHeadBytes {
		// Whole lines only while more may come: bufio's ReadLine hands a
		// partial line over as if complete when an error follows it.
		h.b = h.b[:bytes.LastIndexByte(h.b, '\n')+1]
	}
	if h.off >= len(h.b) {
		switch {
		case len(h.b) >= maxHeadBytes:
			h.hit = true
			return 0, io.EOF
		case h.end == nil:
			return 0, errMore
		}
		return 0, h.end
	}
	n := copy(p, h.b[h.off:])
	h.off += n
	return n, nil
}

// judgeHead judges, reading through br, the response head that has arrived (end: nil while
// the connection is open, else how it ended), as probe does once it has
// parsed the head: complete is false while more must be read.
// req is the request as ReadResponse needs it: its method.
func (p *httpProber) judgeHead(br *bufio.Reader, req *http.Request, b []byte, end error, deadline time.Time) (reason string, complete bool) {
	held := &heldResponse{b: b, end: end}
	br.Reset(held)
	defer br.Reset(nil)
	resp, err := http.ReadResponse(br, req)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req)
	}
	switch {
	case errors.Is(err, errMore):
		return "", false
	case err != nil && held.hit:
		return fmt.Sprintf("headers too large (limit %d)", maxHeadBytes), true
	case err != nil:
		return classifyAt(err, nil, deadline), true
	case !statusOK(p.urls[0].statuses, resp.StatusCode):
		return fmt.Sprintf("status %d", resp.StatusCode), true
	}
	return "", true
}

// FastProber returns a Prober whose Probe runs p's check on the loop and
// waits for it: the same check as p.Probe, on the loop's path. p itself
// when the loop cannot run it.
func (l *FastLoop) FastProber(p Prober) Prober {
	if !l.Supports(p) {
		return p
	}
	return &loopProber{loop: l, p: p}
}

type loopProber struct {
	loop *FastLoop
	p    Prober
}

// Probe bounds the check as run does: by ctx's deadline and the spec's
// timeout, or DefaultTimeout when neither is set.
func (lp *loopProber) Probe(ctx context.Context) Result {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
		if t := fastOf(lp.p).spec.Timeout; t > 0 {
			deadline = time.Now().Add(t)
		}
	}
	ch := make(chan Result, 1)
	var run *FastRun
	lp.loop.Do(func() { run = lp.loop.StartKept(lp.p, deadline, DoneFunc(func(r Result) { ch <- r })) })
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return <-ch // the loop's own timer ends the run at the same deadline
	}
	lp.loop.Do(func() { run.Abort() })
	select {
	case res := <-ch: // it ended before the abort
		return res
	default:
	}
	start := time.Now()
	return Result{Reason: "canceled", Start: start}
}
