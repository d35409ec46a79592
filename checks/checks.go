// Package checks holds the probers that test a real server's health. Each
// prober checks one target with one spec and returns a Result; reporting and
// scheduling are the caller's job.
//
// A Spec has the parts every check has (type, target, source, timeout,
// interval) and the Options of its kind. Kinds are registered in one table
// (registry.go); each Kind says which config keys it reads, decodes them
// (Kind.Decode, fed by the config package with file and line), validates
// them (Options.Validate) and builds its prober.
//
// # Adding a prober
//
// Write one file, say dns.go, holding:
//   - an options struct (DNSOptions) with Validate, Canonical and Describe
//     (Canonical must render every field, defaults applied, so Spec.Key
//     tells checks apart; the registry test changes each field in turn);
//   - a decode function reading its keys through a Decoder, and the prober
//     with its Probe, using dial/classify (net.go) and run (this file) so
//     reasons and deadlines behave as everywhere else;
//   - a Kind value naming them, its keys and its foreign names.
//
// Then add the Kind to registry (one line), a fixture to the registry test,
// its section to config.example.toml and the README. Nothing in config/ or
// engine/ changes: the config reads the new keys through the registry and
// the engine only sees Spec and Prober.
package checks

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/lvsdirector/director/datapath"
)

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Reason says why a probe failed, short and stable: "timeout",
	// "refused", "unreachable", "reset", "dns", "canceled", "status 503",
	// "body mismatch", "body shorter than Content-Length", "body
	// incomplete", "body too large", "body: invalid gzip", "headers too
	// large (limit 262144)", "expect mismatch", "tls: <cause>" (e.g. "tls:
	// certificate signed by unknown authority", "tls: certificate
	// expired"), "icmp: <permission problem>", "local: <cause>" when
	// Inconclusive (e.g. "local: too many open files", "local: deadline
	// passed before the probe started", "local: late: request not sent
	// before the deadline"), "error: <short>" for the rest.
	// Empty when OK.
	Reason   string
	Start    time.Time
	Duration time.Duration
	// HasWeight says the check reported a weight for the server (exec's
	// dynamic weight); the server then gets Weight instead of its
	// configured weight while it is up.
	HasWeight bool
	Weight    uint32
	// Inconclusive says the check could not be made because of the
	// director's own state (out of file descriptors, buffers or memory,
	// the deadline passed before the probe started, or the checker was
	// starved past it before it could send, late.go): OK is false, but
	// it says nothing of the server. Reason starts with "local: ".
	Inconclusive bool
}

// Prober runs one kind of check against one target. Probe must return by
// the context's deadline and close everything it opened.
type Prober interface {
	Probe(ctx context.Context) Result
}

// Spec is everything that defines one check of one target. Two specs with
// the same Key are the same check: the scheduler runs it once and shares
// the result.
type Spec struct {
	Type     string         // a registered kind: "http", "https", "tcp", "icmp"
	Target   netip.AddrPort // address (and port, unless the kind has NoPort) to check
	Source   netip.Addr     // optional local address to send from
	Timeout  time.Duration  // bound on the whole check; callers also put it on the context
	Interval time.Duration  // how often the scheduler runs it (part of the identity)
	// RetryInterval, when above 0, is how soon the scheduler runs it again
	// after a failure, until Fall failures in a row (keepalived's
	// delay_before_retry). Both are part of the identity only when it is set.
	RetryInterval time.Duration
	Fall          int
	// Options are the kind's own settings (HTTPOptions for http and https,
	// TCPOptions, ICMPOptions); nil means the kind's Zero.
	Options Options
	// VirtualServer and RealServer say whom the check is for: the virtual
	// server's name and the real server's address (config's CheckSpec sets
	// them). Only kinds with PerServer use them (exec hands them to its
	// command) and count them in Key; the other kinds' identical checks of
	// several virtual servers stay one check.
	VirtualServer string
	RealServer    netip.AddrPort
	// DataPath, when its VIP is set, makes this a data-path check
	// (datapath = true): the probe is addressed to the VIP at the
	// target's port and delivered to the target's address the way the
	// kernel's DR or TUN forwarding delivers a client's packet, from a
	// namespace of the director's own that takes Source as its address
	// (package datapath). Only kinds with DataPath have it.
	DataPath DataPath

	// shared is the Shared that built the check's prober (Shared.NewFor),
	// whose DataPath dials data-path checks: a pointer, where the dialer
	// itself was an interface of 16 bytes in every check's spec.
	shared *Shared
}

// DataPath is the data path a check probes through.
type DataPath struct {
	VIP netip.Addr
	// Tunnel is TUN forwarding (IPIP to the real server); false is DR.
	Tunnel bool
}

// On reports whether the check goes through the data path.
func (d DataPath) On() bool { return d.VIP.IsValid() }

// DataPathRoute is the route a data-path check probes through; ok is
// false for other checks.
func (s Spec) DataPathRoute() (r datapath.Route, ok bool) {
	if !s.DataPath.On() {
		return r, false
	}
	return datapath.Route{Source: s.Source, RealServer: s.Target.Addr(), VIP: s.DataPath.VIP, Tunnel: s.DataPath.Tunnel}, true
}

// dataPathDialer is what dials s's data path: its Shared's DataPath, or
// nil.
func (s *Spec) dataPathDialer() DataPathDialer {
	if s.shared == nil {
		return nil
	}
	return s.shared.DataPath
}

// DataPathDialer connects to a VIP through one real server's data path:
// the director's datapath.Manager.
type DataPathDialer interface {
	Dial(ctx context.Context, network string, r datapath.Route, port uint16) (net.Conn, error)
}

// DefaultTimeout bounds a probe when neither Spec.Timeout nor the context
// passed to Probe carries a deadline.
const DefaultTimeout = 5 * time.Second

// Shared is what the probers built by one director share: the bound on
// exec checks running at once, which is on the director, as its fd and
// process limits are, not on any one check; whether icmp checks fell back
// to raw sockets; the logger for such director-wide events. The engine
// holds one.
type Shared struct {
	execSlots slots
	// icmpRaw is set once an icmp check found ping sockets refused and a
	// raw socket allowed: icmp checks without privileged use raw sockets
	// from then on, and the fallback is logged once.
	icmpRaw atomic.Bool
	log     *slog.Logger
	// DataPath dials for data-path checks; without it they fail as
	// inconclusive ("local: datapath: ..."). Set it before New.
	DataPath DataPathDialer

	mu      sync.Mutex
	headers map[string]http.Header // HTTP request headers by their extra headers (requestHeader)
	shapes  interned[httpShape]    // HTTP requests' shapes by scheme and canonical options (newHTTP)
}

// httpShape returns the shape of HTTP requests under key, built by build
// when no prober holds one.
func (sh *Shared) httpShape(key string, build func() *httpShape) *httpShape {
	return sh.shapes.get(&sh.mu, key, build)
}

// interned holds what probers built through one Shared share, one value
// per key (a check's canonical options) while a prober holds it. Its map
// forgets a value once the value is collected, so that reloads leave
// nothing behind for options no check has any more.
type interned[T any] struct {
	m map[string]weak.Pointer[T]
}

// get returns the value under key, or the one build makes (outside mu,
// which guards t).
func (t *interned[T]) get(mu *sync.Mutex, key string, build func() *T) *T {
	mu.Lock()
	v := t.m[key].Value()
	mu.Unlock()
	if v != nil {
		return v
	}
	made := build()
	mu.Lock()
	defer mu.Unlock()
	if v := t.m[key].Value(); v != nil {
		return v // built meanwhile by another caller
	}
	if t.m == nil {
		t.m = map[string]weak.Pointer[T]{}
	}
	w := weak.Make(made)
	t.m[key] = w
	runtime.AddCleanup(made, func(key string) {
		mu.Lock()
		defer mu.Unlock()
		if t.m[key] == w {
			delete(t.m, key)
		}
	}, key)
	return made
}

// NewShared returns the resources of one director's probers.
func NewShared() *Shared {
	return &Shared{execSlots: make(slots, ExecConcurrency), log: slog.New(slog.DiscardHandler)}
}

// WithLogger sets where the probers log events of the whole director
// (an icmp fallback to raw sockets), and returns sh.
func (sh *Shared) WithLogger(l *slog.Logger) *Shared {
	sh.log = l
	return sh
}

// New is Shared.New with resources of its own: for validating a spec, or
// a prober used alone.
func New(spec Spec) (Prober, error) { return NewShared().New(spec) }

// New validates spec and returns the prober of its kind, sharing sh with
// the others sh built. Errors name the offending option, using the
// configuration file's spelling.
func (sh *Shared) New(spec Spec) (Prober, error) { return sh.NewFor(&spec) }

// NewFor is New for a spec the caller keeps: the prober reads *spec
// rather than a copy of its own, so that a check's spec is held once
// (a copy each in the engine's runner and in its prober was ~220 bytes a
// real server, docs/performance.md, "Memory, second pass"). NewFor
// completes *spec (options left out become the kind's Zero, the data-path
// dialer is set), which changes neither its Key nor its String; *spec
// must not change afterwards. On error *spec is left as it was.
func (sh *Shared) NewFor(spec *Spec) (Prober, error) {
	k, err := validateCommon(*spec)
	if err != nil {
		return nil, err
	}
	opts := spec.options(k)
	if reflect.TypeOf(opts) != reflect.TypeOf(k.Zero) {
		return nil, fmt.Errorf("%s check: options are %T, want %T", spec.Type, opts, k.Zero)
	}
	if errs := opts.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %v", spec, errs[0])
	}
	spec.Options = opts
	spec.shared = sh
	return k.build(spec, sh)
}

func validateCommon(spec Spec) (Kind, error) {
	k, ok := LookupKind(spec.Type)
	switch {
	case spec.Type == "":
		return k, fmt.Errorf("type: missing check type (want %s)", orList(KindNames()))
	case !ok:
		return k, fmt.Errorf("type: unknown check type %q (want %s)", spec.Type, orList(KindNames()))
	}
	if !spec.Target.Addr().IsValid() {
		return k, fmt.Errorf("%s check: missing target address", spec.Type)
	}
	if !k.NoPort && spec.Target.Port() == 0 {
		return k, fmt.Errorf("%s check of %s: target needs a port", spec.Type, spec.Target.Addr())
	}
	if spec.Target.Addr().IsUnspecified() {
		return k, fmt.Errorf("%s check: target %s is the unspecified address", spec.Type, spec.Target.Addr())
	}
	if a := spec.Target.Addr().Unmap(); a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return k, fmt.Errorf("%s check: target %s is a multicast or broadcast address", spec.Type, a)
	}
	if spec.Source.IsValid() && spec.Source.Unmap().Is4() != spec.Target.Addr().Unmap().Is4() {
		return k, fmt.Errorf("%s: source %s and target %s are different address families", spec, spec.Source, spec.Target.Addr())
	}
	if spec.Timeout < 0 {
		return k, fmt.Errorf("%s: timeout %s is negative", spec, spec.Timeout)
	}
	if spec.Interval < 0 {
		return k, fmt.Errorf("%s: interval %s is negative", spec, spec.Interval)
	}
	if dp := spec.DataPath; dp.On() {
		switch {
		case !k.DataPath:
			return k, fmt.Errorf("%s: datapath: %s checks cannot probe through the data path (%s can)", spec, spec.Type, DataPathKinds())
		case !spec.Source.IsValid():
			return k, fmt.Errorf("%s: datapath: needs a source address, which the director's probe namespace takes on the real servers' segment", spec)
		case !dp.VIP.Is4() || !spec.Target.Addr().Is4() || !spec.Source.Is4():
			return k, fmt.Errorf("%s: datapath: only IPv4 virtual and real servers are supported", spec)
		}
	}
	return k, nil
}

// options returns the spec's options, or k's Zero when it has none.
func (s Spec) options(k Kind) Options {
	if s.Options == nil {
		return k.Zero
	}
	return s.Options
}

// Key is a stable identity over the spec: specs that check the same thing
// give equal keys and specs differing in any field or option give
// different keys. Options left out and options set to their defaults count
// as equal, as do nil and empty lists. Use it to share one prober between
// identical checks and to carry a check's state across reloads.
//
// It is a SHA-256 digest (16 bytes, as a string) of the spec's canonical
// text: the director holds one per check and uses it as a map key, and
// with tens of thousands of checks the text itself (hundreds of bytes
// each) was a measurable share of the heap.
func (s Spec) Key() string {
	sum := sha256.Sum256([]byte(s.canonical()))
	return string(sum[:16])
}

// canonical renders the common fields, then the kind's options.
func (s Spec) canonical() string {
	var c canonical
	c.str("type", s.Type)
	c.str("target", s.Target.String())
	c.str("source", s.Source.String())
	c.str("timeout", s.Timeout.String())
	c.str("interval", s.Interval.String())
	if s.RetryInterval > 0 {
		c.str("retry_interval", s.RetryInterval.String())
		c.int("fall", int64(s.Fall))
	}
	opts := s.Options
	if k, ok := LookupKind(s.Type); ok {
		opts = s.options(k)
		if k.PerServer {
			c.str("virtual_server", s.VirtualServer)
			c.str("real_server", s.RealServer.String())
		}
	}
	if dp := s.DataPath; dp.On() {
		c.str("datapath_vip", dp.VIP.String())
		c.boolean("datapath_tunnel", dp.Tunnel)
	}
	if opts != nil {
		c.b.WriteString("options={")
		c.b.WriteString(opts.Canonical())
		c.b.WriteString("}")
	}
	return strings.TrimSuffix(c.b.String(), " ")
}

// canonical builds an options' canonical text: name="quoted value" pairs
// separated by spaces, lists in brackets.
type canonical struct{ b strings.Builder }

func (c *canonical) str(name, v string) {
	c.b.WriteString(name)
	c.b.WriteByte('=')
	c.b.WriteString(strconv.Quote(v))
	c.b.WriteByte(' ')
}

func (c *canonical) boolean(name string, v bool) { c.str(name, strconv.FormatBool(v)) }
func (c *canonical) int(name string, v int64)    { c.str(name, strconv.FormatInt(v, 10)) }

func (c *canonical) list(name string, vs []string) {
	c.b.WriteString(name)
	c.b.WriteString("=[")
	for _, v := range vs {
		c.b.WriteString(strconv.Quote(v))
		c.b.WriteByte(',')
	}
	c.b.WriteString("] ")
}

// text returns what was written, without the trailing space.
func (c *canonical) text() string { return strings.TrimSuffix(c.b.String(), " ") }

// String is a short human form of the check: "http://10.0.0.11:8080/healthz",
// "tcp 10.0.0.11:8080", "icmp 10.0.0.11".
func (s Spec) String() string {
	k, ok := LookupKind(s.Type)
	if !ok {
		return s.Type + " " + s.Target.String()
	}
	if opts := s.options(k); reflect.TypeOf(opts) == reflect.TypeOf(k.Zero) {
		return opts.Describe(s)
	}
	return s.Type + " " + s.Target.String()
}

// withDeadline bounds ctx by the spec's timeout, or by DefaultTimeout when
// neither carries a deadline, so that every probe ends.
func withDeadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	if _, ok := ctx.Deadline(); !ok {
		return context.WithTimeout(ctx, DefaultTimeout)
	}
	return context.WithCancel(ctx)
}

// run runs one probe: probe gets ctx bounded by timeout (see
// withDeadline) and returns the failure reason, "" for success. A probe
// whose deadline passed before it started is not run: a late start is the
// director's delay, not the server's.
func run(ctx context.Context, timeout time.Duration, probe func(context.Context) string) Result {
	start := time.Now()
	var reason string
	if dl, ok := ctx.Deadline(); ok && !start.Before(dl) {
		reason = reasonLate
	} else {
		ctx, cancel := withDeadline(ctx, timeout)
		defer cancel()
		reason = probe(ctx)
	}
	return Result{OK: reason == "", Inconclusive: strings.HasPrefix(reason, localPrefix),
		Reason: reason, Start: start, Duration: time.Since(start)}
}

// localPrefix starts the reason of an inconclusive result.
const localPrefix = "local: "

const reasonLate = localPrefix + "deadline passed before the probe started"

// RanLate reports whether an inconclusive result's reason says the
// director ran the check past its deadline (it started late, or was
// starved before it could send): short of CPU, not of descriptors or
// memory.
func RanLate(reason string) bool {
	return reason == reasonLate || reason == reasonStarved
}

// reasonBehind: the fast loop fell behind and sent the request only after
// the deadline (fast.go). The same cause as the goroutine path's
// reasonStarved (late.go), so one metric label counts both.
const reasonBehind = reasonStarved
