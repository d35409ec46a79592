package checks

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lvsdirector/director/internal/testutil"
)

// loopbackPair is a connected loopback TCP pair: the client's end and the
// server's.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l := testutil.Listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// waitReadable waits until data (or the end of the stream) waits on c.
func waitReadable(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ = unix.Poll(fds, 5000)
	})
	if n != 1 {
		t.Fatal("nothing arrived within 5 s")
	}
}

// A starved checker reaches its read only after the deadline passed; Go
// then fails the read without reading, though the answer waits on the
// socket. The look reads what waits, and only what waits.
func TestLookReadsAnAnswerWaitingPastTheDeadline(t *testing.T) {
	client, server := loopbackPair(t)
	server.Write([]byte("HTTP/1.1 200 OK\r\n"))
	waitReadable(t, client)
	client.SetDeadline(time.Unix(1, 0)) // the deadline has passed, as when starved

	buf := make([]byte, 64)
	if n, err := client.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("plain read past the deadline: %d, %v; the test assumes Go fails it unread", n, err)
	}
	look := lookAtDeadline(client)
	n, err := look.Read(buf)
	if err != nil || string(buf[:n]) != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("look: %q, %v; want the waiting answer", buf[:n], err)
	}
	// Nothing more waits: a timeout, at once.
	if n, err := look.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("look with nothing waiting: %d, %v; want the timeout", n, err)
	}
	// The server's end of the stream is read as such.
	server.Write([]byte("x"))
	server.Close()
	waitReadable(t, client)
	if n, err := look.Read(buf); n != 1 || err != nil {
		t.Fatalf("look: %d, %v; want the last byte", n, err)
	}
	time.Sleep(10 * time.Millisecond) // the FIN follows the byte on loopback
	if n, err := look.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("look after the server closed: %d, %v; want EOF", n, err)
	}
}

// A request not written because the deadline had passed, on a socket that
// could take it, is the checker's delay; on a socket whose server does not
// read (the send buffer full), the server's timeout.
func TestLookJudgesAWriteMissedAtTheDeadline(t *testing.T) {
	client, _ := loopbackPair(t)
	look := lookAtDeadline(client)
	client.SetDeadline(time.Unix(1, 0))
	past := time.Now().Add(-time.Second)
	_, err := look.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if got := classifyAt(err, context.DeadlineExceeded, past); got != reasonStarved {
		t.Errorf("request missed on a writable socket: %q (%v), want %q", got, err, reasonStarved)
	}
	if got := classifyAt(err, context.Canceled, past); got != "canceled" {
		t.Errorf("the same when the check was canceled: %q, want canceled", got)
	}

	full, _ := loopbackPair(t) // the server never reads
	chunk := make([]byte, 1<<20)
	full.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		if _, err := full.Write(chunk); err != nil {
			break
		}
	}
	full.SetDeadline(time.Unix(1, 0))
	_, err = lookAtDeadline(full).Write([]byte("x"))
	if got := classifyAt(err, context.DeadlineExceeded, past); got != "timeout" {
		t.Errorf("write to a server that does not read: %q (%v), want timeout", got, err)
	}
}

// fullListener is a listening socket that completes no connect: its
// accept queue (backlog 0) holds one connection never accepted, so the
// kernel drops further SYNs. A server that never answers a connect.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", target.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return target
}

// starveEnv carries a case to TestStarvedCheckChild, run as a child
// process with one P and no asynchronous preemption, so that a goroutine
// spinning without function calls holds the process's only P.
const starveEnv = "DIRECTOR_TEST_STARVE"

// starveTimeout is the checks' timeout in the child; the parent holds the
// child's P for several times as long.
const starveTimeout = 200 * time.Millisecond

// starveCase is one check run in a starved child and the results it may
// have.
type starveCase struct {
	name string
	spec Spec
	want []string // reasons, "" for OK
	// caFile, when set, is the CA the check trusts: the check is in TLS,
	// the one starveSpec makes of kind (default spec.Type).
	caFile string
	kind   string
	// serve, when set, starts the check's server (spec.Target is then
	// unused), which makes the child starve itself at a moment it
	// chooses (starveHold); else the child starves once its check waits
	// for its connect.
	serve func(t *testing.T, h starveHold) netip.AddrPort
}

// A checker starved of CPU while its server answers — the process's only
// P busy past the deadline, then the expired timers run before the
// network is polled — must not fail a healthy server: a TCP connect check
// passes (the connection was made); an HTTP check passes when it had sent
// its request (the answer waiting is read and judged) and is inconclusive
// when it had not (starved while connecting: which of the two depends on
// where the check was when the P was taken). A server that completes no
// connect still fails with "timeout", starved or not. In TLS the same
// holds: a TLS server whose handshake flight waits unread makes an https
// or tls check late (its own next flight could not be sent), never a
// failure, and an https answer waiting after the handshake is read and
// judged; a TLS server that never answers the ClientHello still fails
// with "timeout". Each case runs in a child process whose P a spinning
// goroutine holds until this process, having waited past the check's
// deadline, lets it go: the starvation is made, not hoped for.
func TestStarvedChecks(t *testing.T) {
	healthy := testutil.ServeHTTP(t, testutil.Answer(200, "ok"))
	dead := fullListener(t)

	ca := testutil.TestCA(t)
	caFile := ca.File(t)
	trusted := &tls.Config{Certificates: []tls.Certificate{ca.ValidLeaf(t)}}
	tls12 := &tls.Config{Certificates: trusted.Certificates, MaxVersion: tls.VersionTLS12}
	untrusted := &tls.Config{Certificates: []tls.Certificate{testutil.SelfSigned(t)}}
	healthyTLS := serveStarveTLS(t, trusted, tlsAnswers, starveHold{})
	silentTLS := serveStarveTLS(t, trusted, tlsSilent, starveHold{})

	// Not starved, the dead servers time out and the healthy ones pass.
	for _, c := range []struct {
		spec Spec
		ok   bool
	}{
		{Spec{Type: "tcp", Target: dead, Timeout: starveTimeout}, false},
		{Spec{Type: "tcp", Target: healthy, Timeout: time.Second}, true},
		{Spec{Type: "http", Target: healthy, Timeout: time.Second}, true},
		{starveSpec("https", healthyTLS, caFile, time.Second), true},
		{starveSpec("tcp", healthyTLS, caFile, time.Second), true},
		{starveSpec("dialogue", healthyTLS, caFile, time.Second), true},
		{starveSpec("https", silentTLS, caFile, starveTimeout), false},
		{starveSpec("tcp", silentTLS, caFile, starveTimeout), false},
	} {
		p, err := New(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		res := p.Probe(context.Background())
		if res.OK != c.ok || (!c.ok && res.Reason != "timeout") {
			t.Fatalf("%s, not starved: %+v", c.spec, res)
		}
	}

	cases := []starveCase{
		{name: "tcp healthy", spec: Spec{Type: "tcp", Target: healthy, Timeout: starveTimeout}, want: []string{""}},
		{name: "http healthy", spec: Spec{Type: "http", Target: healthy, Timeout: starveTimeout}, want: []string{"", reasonStarved}},
		{name: "tcp dead", spec: Spec{Type: "tcp", Target: dead, Timeout: starveTimeout}, want: []string{"timeout"}},
		{name: "http dead", spec: Spec{Type: "http", Target: dead, Timeout: starveTimeout}, want: []string{"timeout"}},
	}
	// The TLS cases starve the child where the server says: after it read
	// the ClientHello (the check waits for the server's flight), or after
	// it read the request (the check waits for the answer).
	for _, c := range []struct {
		typ  string
		conf *tls.Config // the server's
		step tlsStep
		want []string
	}{
		// The flight is read and judged; the check's own next flight
		// cannot be sent after the deadline: late, never failed.
		{"https", trusted, tlsAnswersStarved, []string{reasonStarved}},
		{"https", tls12, tlsAnswersStarved, []string{reasonStarved}},
		{"tcp", trusted, tlsAnswersStarved, []string{reasonStarved}},
		{"dialogue", trusted, tlsAnswersStarved, []string{reasonStarved}}, // not "... at step 1"
		// A flight read at the look is judged: a certificate the check
		// does not trust fails as it does when not starved.
		{"https", untrusted, tlsAnswersStarved, []string{"tls: certificate signed by unknown authority"}},
		// The answer after the handshake is read and judged.
		{"https", trusted, tlsAnswersStarvedAtRequest, []string{""}},
		// Nothing to find: the server's failure, starved or not.
		{"https", trusted, tlsSilent, []string{"timeout"}},
		{"tcp", trusted, tlsSilent, []string{"timeout"}},
		{"dialogue", trusted, tlsSilent, []string{"timeout at step 1"}},
	} {
		name := c.typ + " tls " + c.step.String()
		switch c.conf {
		case tls12:
			name += " tls1.2"
		case untrusted:
			name += " untrusted"
		}
		cases = append(cases, starveCase{
			name: name, spec: starveSpec(c.typ, netip.AddrPort{}, caFile, starveTimeout),
			want: c.want, caFile: caFile,
			serve: func(t *testing.T, h starveHold) netip.AddrPort { return serveStarveTLS(t, c.conf, c.step, h) },
		})
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			res := runStarved(t, c)
			if !slices.Contains(c.want, res.Reason) || res.OK != (res.Reason == "") || res.Inconclusive != strings.HasPrefix(res.Reason, localPrefix) {
				t.Errorf("%s, starved: %+v; want a reason of %q (\"\": OK)", c.name, res, c.want)
			} else {
				t.Logf("%s, starved: %q", c.name, res.Reason)
			}
		})
	}
}

// runStarved runs c's check in a child process starved past its deadline
// and returns its result.
func runStarved(t *testing.T, c starveCase) Result {
	t.Helper()
	shared := filepath.Join(t.TempDir(), "flags")
	if err := os.WriteFile(shared, make([]byte, 12), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := mapFlags(t, shared)
	spinning, release := flags[0], flags[1]
	child := starveChild{Path: shared, Type: c.spec.Type, Target: c.spec.Target.String(), CAFile: c.caFile}
	if c.kind != "" {
		child.Type = c.kind
	}
	if c.serve != nil {
		child.Target, child.Hold = c.serve(t, starveHold{hold: flags[2], spinning: spinning}).String(), true
	}

	js, _ := json.Marshal(child)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStarvedCheckChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), starveEnv+"="+string(js), "GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	// Once the child spins, its check has started and waits for its
	// connect (or for what its server holds back); hold it past the
	// deadline, several times over.
	testutil.Within(30*time.Second, func() bool {
		select {
		case <-exited: // its check ended first: it never spins
			return true
		default:
			return atomic.LoadUint32(spinning) == 1
		}
	})
	if atomic.LoadUint32(spinning) == 0 {
		cmd.Process.Kill()
		<-exited
		t.Fatalf("the child did not start spinning\n%s", out.String())
	}
	time.Sleep(3 * starveTimeout)
	atomic.StoreUint32(release, 1)
	if <-exited; waitErr != nil {
		t.Fatalf("child: %v\n%s", waitErr, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if _, js, ok := strings.Cut(line, "STARVED RESULT "); ok {
			var r Result
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("child said %q: %v", line, err)
			}
			if r.Duration < starveTimeout {
				t.Fatalf("the check took %v, less than its timeout: the child was not starved during it\n%s", r.Duration, out.String())
			}
			return r
		}
	}
	t.Fatalf("no result from the child:\n%s", out.String())
	return Result{}
}

// starveChild is what TestStarvedCheckChild is told.
type starveChild struct {
	Path   string // the file whose first three words are the flags spinning, release and hold
	Type   string
	Target string
	CAFile string // see starveCase.caFile
	Hold   bool   // starve when the parent sets hold (starveHold), not when the check first waits
}

// mapFlags maps the file at path, shared with the other process, and
// returns its first three 32-bit words.
func mapFlags(t *testing.T, path string) [3]*uint32 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 12, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return [3]*uint32{(*uint32)(unsafe.Pointer(&mem[0])), (*uint32)(unsafe.Pointer(&mem[4])), (*uint32)(unsafe.Pointer(&mem[8]))}
}

// TestStarvedCheckChild is TestStarvedChecks' child: it starts a check
// and then holds its only P in a loop without function calls (which
// nothing preempts with asyncpreemptoff=1) until the parent releases it.
func TestStarvedCheckChild(t *testing.T) {
	env := os.Getenv(starveEnv)
	if env == "" {
		t.Skip("run by TestStarvedChecks in a process of its own")
	}
	if runtime.GOMAXPROCS(0) != 1 {
		t.Fatal("the child needs GOMAXPROCS=1")
	}
	var c starveChild
	if err := json.Unmarshal([]byte(env), &c); err != nil {
		t.Fatal(err)
	}
	flags := mapFlags(t, c.Path)
	spinning, release, hold := flags[0], flags[1], flags[2]
	p, err := New(starveSpec(c.Type, netip.MustParseAddrPort(c.Target), c.CAFile, starveTimeout))
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan Result, 1)
	finished := make(chan struct{}) // the check's result is in
	spun := make(chan struct{})     // the spinning goroutine is done with the flags
	go func() {
		defer close(spun)
		if c.Hold {
			// The server says when: it has read what the check sent,
			// and the check, which runs whenever this sleeps, has
			// parked waiting for the answer.
			for atomic.LoadUint32(hold) == 0 {
				select {
				case <-finished:
					return // not starved: the parent says so
				case <-time.After(time.Millisecond):
				}
			}
		} else {
			// Let the check run until it parks, waiting for its
			// connect; the network is polled only once nothing else
			// can run.
			for range 3 {
				runtime.Gosched()
			}
		}
		atomic.StoreUint32(spinning, 1)
		for atomic.LoadUint32(release) == 0 {
		}
	}()
	go func() { results <- p.Probe(context.Background()) }()
	res := <-results
	close(finished)
	<-spun // before the flags are unmapped
	js, _ := json.Marshal(res)
	os.Stdout.WriteString("STARVED RESULT " + string(js) + "\n") // printed, not logged: the parent reads it
}

// starveSpec is the spec of a starved case's check: with caFile, an https
// check, a tcp check with tls = true, a dialogue check whose one step
// starts TLS or an ldap check ("ldaps", "ldap+starttls"), trusting
// caFile; without, the plain check of typ.
func starveSpec(typ string, target netip.AddrPort, caFile string, timeout time.Duration) Spec {
	spec := Spec{Type: typ, Target: target, Timeout: timeout}
	if caFile == "" {
		return spec
	}
	trust := TLSOptions{CAFile: caFile}
	switch typ {
	case "https":
		spec.Options = HTTPOptions{TLSOptions: trust}
	case "tcp":
		spec.Options = TCPOptions{TLS: true, TLSOptions: trust}
	case "dialogue":
		spec.Options = DialogueOptions{Steps: []Step{{StartTLS: true}}, TLSOptions: trust}
	case "ldaps":
		spec.Type, spec.Options = "ldap", LDAPOptions{TLS: true, TLSOptions: trust}
	case "ldap+starttls":
		spec.Type, spec.Options = "ldap", LDAPOptions{StartTLS: true, TLSOptions: trust}
	}
	return spec
}

// starveHold is how a server in this process starves the child at the
// moment it chooses: it sets hold, which the child waits for, and waits
// until the child spins. The zero starveHold starves nothing.
type starveHold struct{ hold, spinning *uint32 }

// starve makes the child starve now and returns once it does.
func (h starveHold) starve() {
	if h.hold == nil {
		return
	}
	atomic.StoreUint32(h.hold, 1)
	testutil.Within(30*time.Second, func() bool { return atomic.LoadUint32(h.spinning) == 1 })
}

// tlsStep is what a TLS server of serveStarveTLS does, and when it
// starves the child.
type tlsStep int

const (
	tlsAnswers                 tlsStep = iota // completes handshakes and answers requests 200 "ok"
	tlsAnswersStarved                         // the same, starving the child once it read the ClientHello
	tlsAnswersStarvedAtRequest                // the same, starving the child once it read the request
	tlsSilent                                 // reads the ClientHello (starving the child) and never answers
)

func (s tlsStep) String() string {
	return [...]string{"answers", "starved at hello", "starved at request", "silent"}[s]
}

// serveStarveTLS serves TLS with conf on loopback until the test ends,
// doing step on each connection and starving the child through h.
func serveStarveTLS(t *testing.T, conf *tls.Config, step tlsStep, h starveHold) netip.AddrPort {
	return testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		switch step {
		case tlsSilent:
			if _, err := c.Read(make([]byte, 1)); err != nil {
				return
			}
			h.starve()
			io.Copy(io.Discard, c) // until the check gives up
			return
		case tlsAnswersStarved:
			c = &afterFirstRead{Conn: c, then: h.starve}
		}
		tc := tls.Server(c, conf)
		if tc.Handshake() != nil {
			return // a check that had no time for its own flight
		}
		if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
			return // a tcp or dialogue check, done with the handshake
		}
		if step == tlsAnswersStarvedAtRequest {
			h.starve()
		}
		io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
}

// afterFirstRead is a connection that runs then once its first read got
// data.
type afterFirstRead struct {
	net.Conn
	then func()
	once sync.Once
}

func (c *afterFirstRead) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(c.then)
	}
	return n, err
}

// An LDAP check starved while Debian's slapd answers its TLS handshake
// (LDAPS, or StartTLS, whose handshake the LDAP library makes) is late,
// as the TLS checks of TestStarvedChecks are: the flight is read, the
// check's own next flight could not be sent in time.
func TestStarvedLDAPChecks(t *testing.T) {
	plain, ldaps, caFile := startSlapd(t)
	for _, c := range []struct {
		typ     string
		backend netip.AddrPort
	}{
		{"ldaps", ldaps},
		{"ldap+starttls", plain},
	} {
		t.Run(c.typ, func(t *testing.T) {
			res := runStarved(t, starveCase{
				name: c.typ, spec: starveSpec(c.typ, netip.AddrPort{}, caFile, starveTimeout), caFile: caFile, kind: c.typ,
				serve: func(t *testing.T, h starveHold) netip.AddrPort { return starveAtClientHello(t, c.backend, h) },
			})
			if res.Reason != reasonStarved || !res.Inconclusive {
				t.Errorf("%s, starved at the ClientHello: %+v; want %q", c.typ, res, reasonStarved)
			}
		})
	}
}

// starveAtClientHello relays connections to backend until the test ends,
// starving the child (h) when the check sends a TLS ClientHello, before
// the backend sees it.
func starveAtClientHello(t *testing.T, backend netip.AddrPort, h starveHold) netip.AddrPort {
	return testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		b, err := net.Dial("tcp", backend.String())
		if err != nil {
			return
		}
		defer b.Close()
		go io.Copy(c, b)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 && buf[0] == 0x16 { // a TLS handshake record: LDAP messages start 0x30
				h.starve()
			}
			if n > 0 {
				if _, werr := b.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// BenchmarkDialLook is the look's cost on a connect that succeeds (a dup
// and a close, late.go) beside the same dial without it, in one run:
// compare the two sub-benchmarks, not the figures across machines.
func BenchmarkDialLook(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := l.Addr().String()
	for _, bc := range []struct {
		name string
		dial func(context.Context, *net.Dialer) (net.Conn, error)
	}{
		{"plain", func(ctx context.Context, d *net.Dialer) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }},
		{"look", func(ctx context.Context, d *net.Dialer) (net.Conn, error) { return dialTCP(ctx, d, addr) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				d := net.Dialer{KeepAlive: -1}
				c, err := bc.dial(ctx, &d)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// The engine tells the operator "short of CPU" for these reasons and
// "short of descriptors or memory" for the other local ones: RanLate must
// know every reason the probers give for a late check.
func TestRanLate(t *testing.T) {
	for _, c := range []struct {
		reason string
		late   bool
	}{
		{reasonLate, true},
		{reasonStarved, true},
		{reasonBehind, true},
		{localPrefix + "too many open files", false},
		{"timeout", false},
	} {
		if got := RanLate(c.reason); got != c.late {
			t.Errorf("RanLate(%q) = %v, want %v", c.reason, got, c.late)
		}
	}
}

// BenchmarkHandshakeLook is a TLS handshake bounded by the connection's
// deadline (handshake, late.go) beside the same handshake bounded by
// HandshakeContext, which it replaced, in one run: compare the two
// sub-benchmarks (allocations above all; the handshake's cryptography
// dominates the time).
func BenchmarkHandshakeLook(b *testing.B) {
	ca := testutil.TestCA(b)
	server := &tls.Config{Certificates: []tls.Certificate{ca.ValidLeaf(b)}}
	target := testutil.ServeConns(b, testutil.Listen(b), func(c net.Conn) { tls.Server(c, server).Handshake() })
	client, err := tlsConfig(&Spec{Target: target}, TLSOptions{CAFile: ca.File(b)}, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name      string
		handshake func(context.Context, net.Conn) error
	}{
		{"context", func(ctx context.Context, c net.Conn) error { return tls.Client(c, client).HandshakeContext(ctx) }},
		{"deadline", func(ctx context.Context, c net.Conn) error { _, err := handshake(ctx, c, client); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := net.Dial("tcp", target.String())
				if err != nil {
					b.Fatal(err)
				}
				if err := bc.handshake(ctx, lookAtDeadline(c)); err != nil {
					b.Fatal(err)
				}
				c.Close()
				cancel()
			}
		})
	}
}
