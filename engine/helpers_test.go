package engine

// Helpers shared by the engine's tests: backends, configs, the running
// engine (harness), and reading its table, status and metrics.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/internal/logbuf"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// backend is a real HTTP server on loopback that can be stopped and
// started again on the same address.
type backend struct {
	t    *testing.T
	addr netip.AddrPort
	mu   sync.Mutex
	srv  *http.Server
}

func newBackend(t *testing.T) *backend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{t: t, addr: netip.MustParseAddrPort(ln.Addr().String())}
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

func (b *backend) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

func (b *backend) start() {
	b.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", b.addr.String()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("restarting backend %s: %v", b.addr, err)
	}
	b.serve(ln)
}

// hangingBackend accepts connections and never answers; it holds them
// until the test ends.
func hangingBackend(t *testing.T) *backend {
	t.Helper()
	return &backend{t: t, addr: testutil.HangingServer(t)}
}

var (
	vip    = netip.MustParseAddrPort("192.0.2.10:80")
	webKey = ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: vip}
	apiVIP = netip.MustParseAddrPort("192.0.2.20:80")
	apiKey = ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: apiVIP}
)

func testConfig(onFailure string, backends ...*backend) *config.Config {
	vs := config.VirtualServer{
		Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wrr",
		PersistenceNetmask: 32, Forwarding: "nat", OnFailure: onFailure,
		Checks: []config.Check{{
			Type: "http", Name: "http", Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond,
			Rise: 2, Fall: 2, Options: checks.HTTPOptions{MaxBodyBytes: 1024, ExpectBody: "ok"},
		}},
	}
	for _, b := range backends {
		vs.RealServers = append(vs.RealServers, config.RealServer{Address: b.addr, Weight: 100, Forwarding: "nat"})
	}
	return &config.Config{
		Path: "test.toml",
		Director: config.Director{Listen: "127.0.0.1:0", ResyncInterval: time.Hour,
			OnFailure: onFailure, OnShutdown: "keep"},
		VirtualServers: []config.VirtualServer{vs},
	}
}

// addVS appends to cfg a copy of its first virtual server, named name on
// addr with its own list of real servers, and returns it for adjusting.
func addVS(cfg *config.Config, name string, addr netip.AddrPort) *config.VirtualServer {
	vs := cfg.VirtualServers[0]
	vs.Name, vs.Address = name, addr
	vs.RealServers = slices.Clone(vs.RealServers)
	vs.Checks = slices.Clone(vs.Checks)
	cfg.VirtualServers = append(cfg.VirtualServers, vs)
	return &cfg.VirtualServers[len(cfg.VirtualServers)-1]
}

// withAPI is cfg with a second virtual server, api, on apiVIP with b as its one real server.
func withAPI(cfg *config.Config, b *backend) *config.Config {
	addVS(cfg, "api", apiVIP).RealServers = []config.RealServer{{Address: b.addr, Weight: 1, Forwarding: "nat"}}
	return cfg
}

// countingTable counts mutating calls so tests can assert "nothing changed".
type countingTable struct {
	ipvs.Table
	mutations atomic.Int64
}

func (c *countingTable) CreateService(ctx context.Context, s ipvs.Service) error {
	c.mutations.Add(1)
	return c.Table.CreateService(ctx, s)
}
func (c *countingTable) UpdateService(ctx context.Context, s ipvs.Service) error {
	c.mutations.Add(1)
	return c.Table.UpdateService(ctx, s)
}
func (c *countingTable) DeleteService(ctx context.Context, k ipvs.ServiceKey) error {
	c.mutations.Add(1)
	return c.Table.DeleteService(ctx, k)
}
func (c *countingTable) CreateDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	c.mutations.Add(1)
	return c.Table.CreateDestination(ctx, k, d)
}
func (c *countingTable) UpdateDestination(ctx context.Context, k ipvs.ServiceKey, d ipvs.Destination) error {
	c.mutations.Add(1)
	return c.Table.UpdateDestination(ctx, k, d)
}
func (c *countingTable) DeleteDestination(ctx context.Context, k ipvs.ServiceKey, a netip.AddrPort) error {
	c.mutations.Add(1)
	return c.Table.DeleteDestination(ctx, k, a)
}

// harness is an engine running on a table until the test ends.
type harness struct {
	t       *testing.T
	table   *countingTable
	metrics *metrics.Metrics
	engine  *Engine
	cancel  context.CancelFunc
	done    chan error
}

// startWith runs an engine for cfg on table, logging to w (and to stderr
// with -v); opt, when not nil, adjusts its options.
func startWith(t *testing.T, cfg *config.Config, table ipvs.Table, w io.Writer, opt func(*Options)) *harness {
	t.Helper()
	if testing.Verbose() {
		w = io.MultiWriter(w, os.Stderr)
	}
	h := &harness{t: t, table: &countingTable{Table: table}, metrics: metrics.New(metrics.Build{Version: "test"}), done: make(chan error, 1)}
	opts := Options{Table: h.table, Metrics: h.metrics, Logger: slog.New(slog.NewTextHandler(w, nil))}
	if opt != nil {
		opt(&opts)
	}
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.engine = e
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- e.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func start(t *testing.T, cfg *config.Config, table ipvs.Table) *harness {
	t.Helper()
	return startWith(t, cfg, table, io.Discard, nil)
}

// startLogged is start with a fast drain poll and the log captured.
func startLogged(t *testing.T, cfg *config.Config, table ipvs.Table) (*harness, *logbuf.Buffer) {
	t.Helper()
	buf := &logbuf.Buffer{}
	return startWith(t, cfg, table, buf, func(o *Options) { o.DrainPoll = 20 * time.Millisecond }), buf
}

// startAdmin is start with a fast admin poll, the log captured and
// options adjusted by opt.
func startAdmin(t *testing.T, cfg *config.Config, table ipvs.Table, opt func(*Options)) (*harness, *logbuf.Buffer) {
	t.Helper()
	buf := &logbuf.Buffer{}
	return startWith(t, cfg, table, buf, func(o *Options) {
		o.DrainPoll, o.AdminPoll = 20*time.Millisecond, 20*time.Millisecond
		if opt != nil {
			opt(o)
		}
	}), buf
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("Run did not return after cancel")
	}
}

func reload(t *testing.T, h *harness, cfg *config.Config) {
	t.Helper()
	if err := h.engine.Reload(tctx(t), cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// poll waits for cond, for up to 15 s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !testutil.Within(15*time.Second, cond) {
		t.Fatalf("timed out waiting for: %s", what)
	}
}

func waitReady(t *testing.T, e *Engine) {
	t.Helper()
	if !testutil.Within(10*time.Second, e.Ready) {
		t.Fatal("engine never became ready")
	}
}

// waitStatus polls Status until ok accepts it.
func waitStatus(t *testing.T, e *Engine, what string, ok func(Status) bool) Status {
	t.Helper()
	var st Status
	if !testutil.Within(15*time.Second, func() bool { st = e.Status(); return ok(st) }) {
		t.Fatalf("%s: never seen; last status %+v", what, st)
	}
	return st
}

// weights reads the table: destination -> weight for the service key.
func weights(t *testing.T, table ipvs.Table, key ipvs.ServiceKey) (map[netip.AddrPort]uint32, bool) {
	t.Helper()
	svcs, err := table.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Key == key {
			w := map[netip.AddrPort]uint32{}
			for _, d := range s.Destinations {
				w[d.Address] = d.Weight
			}
			return w, true
		}
	}
	return nil, false
}

func hasService(t *testing.T, table ipvs.Table, key ipvs.ServiceKey) bool {
	t.Helper()
	_, ok := weights(t, table, key)
	return ok
}

// eventually polls until the table for the test VIP matches want
// (destination -> weight; a missing entry means absent).
func (h *harness) eventually(want map[netip.AddrPort]uint32, what string) {
	h.t.Helper()
	var got map[netip.AddrPort]uint32
	if !testutil.Within(15*time.Second, func() bool {
		got, _ = weights(h.t, h.table, webKey)
		return fmt.Sprint(got) == fmt.Sprint(want)
	}) {
		h.t.Fatalf("%s: table has %v, want %v", what, got, want)
	}
}

func (h *harness) scheduler() string {
	svcs, err := h.table.Services(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, s := range svcs {
		if s.Key == webKey {
			return s.Scheduler
		}
	}
	return ""
}

func setConns(t *testing.T, mem *ipvs.Memory, key ipvs.ServiceKey, addr netip.AddrPort, active, inactive uint32) {
	t.Helper()
	if err := mem.SetCounters(key, addr, ipvs.Counters{ActiveConns: active, InactiveConns: inactive}); err != nil {
		t.Fatal(err)
	}
}

// probeFor returns the runner checking addr, to tell whether a reload restarted it.
func (e *Engine) probeFor(t *testing.T, addr netip.AddrPort) *probeRunner {
	t.Helper()
	// The probes are the loop's: ask it.
	v, err := e.submit(tctx(t), func(context.Context, time.Time) (any, bool, error) {
		for _, p := range e.probes {
			if p.spec.Target == addr {
				return p, false, nil
			}
		}
		return nil, false, nil
	})
	if err != nil || v == nil {
		t.Fatalf("no check runs for %s (%v)", addr, err)
	}
	return v.(*probeRunner)
}

// rsStatus finds a real server in the engine's status.
func rsStatus(t *testing.T, e *Engine, vs string, rs netip.AddrPort) RealServerStatus {
	t.Helper()
	for _, v := range e.Status().VirtualServers {
		if v.Name != vs {
			continue
		}
		for _, r := range v.RealServers {
			if r.Address == rs {
				return r
			}
		}
	}
	t.Fatalf("no real server %s/%s in the status", vs, rs)
	return RealServerStatus{}
}

func vsStatus(t *testing.T, e *Engine, vs string) VirtualServerStatus {
	t.Helper()
	for _, v := range e.Status().VirtualServers {
		if v.Name == vs {
			return v
		}
	}
	t.Fatalf("no virtual server %s in the status", vs)
	return VirtualServerStatus{}
}

func serverIn(st Status, addr string) *RealServerStatus {
	for i := range st.VirtualServers {
		for j := range st.VirtualServers[i].RealServers {
			if r := &st.VirtualServers[i].RealServers[j]; r.Address.String() == addr {
				return r
			}
		}
	}
	return nil
}

// series reads the first series of the director's metric name whose
// labels agree with labels (a label the series lacks is not compared),
// as a counter or a gauge; ok is false when there is none.
func (h *harness) series(name string, labels map[string]string) (v float64, ok bool) {
	h.t.Helper()
	families, err := h.metrics.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	// Counters are summed over the series that match (checks_total has
	// one per result: success and failure); a gauge is its first match.
	var sum float64
	found := false
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			if m.GetCounter() == nil {
				return m.GetGauge().GetValue(), true
			}
			sum += m.GetCounter().GetValue()
			found = true
		}
	}
	return sum, found
}

// gauge is series, -1 when there is none.
func (h *harness) gauge(name string, labels map[string]string) float64 {
	h.t.Helper()
	if v, ok := h.series(name, labels); ok {
		return v
	}
	return -1
}

// metric reads one series by its virtual_server and real_server labels,
// and the "to" label when the series has one. A series that does not
// exist reads as 0.
func (h *harness) metric(name, vs string, rs netip.AddrPort, to string) float64 {
	h.t.Helper()
	v, _ := h.series(name, map[string]string{"virtual_server": vs, "real_server": rs.String(), "to": to})
	return v
}

// counter reads the series with label = value (any series when label is
// ""); 0 when there is none.
func (h *harness) counter(name, label, value string) float64 {
	h.t.Helper()
	labels := map[string]string{}
	if label != "" {
		labels[label] = value
	}
	v, _ := h.series(name, labels)
	return v
}

// stateMetric reads director_real_server_state for one state; -1 when
// there is no such series.
func (h *harness) stateMetric(vs string, rs netip.AddrPort, state string) float64 {
	h.t.Helper()
	return h.gauge("director_real_server_state", map[string]string{"virtual_server": vs, "real_server": rs.String(), "state": state})
}

// reconcileNow runs one reconcile on the loop, which owns the state, and
// reports whether it succeeded.
func (e *Engine) reconcileNow(t *testing.T, trigger string) bool {
	t.Helper()
	v, err := e.submit(tctx(t), func(ctx context.Context, _ time.Time) (any, bool, error) {
		return e.reconcile(ctx, trigger), false, nil
	})
	if err != nil {
		t.Fatalf("reconcile through the loop: %v", err)
	}
	return v.(bool)
}
