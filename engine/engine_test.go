package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
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

var vip = netip.MustParseAddrPort("192.0.2.10:80")

func testConfig(onFailure string, backends ...*backend) *config.Config {
	vs := config.VirtualServer{
		Name: "web", Address: vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wrr",
		PersistenceNetmask: 32, Forwarding: "nat", OnFailure: onFailure,
		Check: config.Check{
			Type: "http", Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond,
			Rise: 2, Fall: 2, Method: "GET", Path: "/", MaxBodyBytes: 1024, ExpectBody: "ok",
		},
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

type harness struct {
	t       *testing.T
	table   *countingTable
	metrics *metrics.Metrics
	engine  *Engine
	cancel  context.CancelFunc
	done    chan error
}

func start(t *testing.T, cfg *config.Config, table ipvs.Table) *harness {
	t.Helper()
	h := &harness{t: t, table: &countingTable{Table: table}, metrics: metrics.New(metrics.Build{Version: "test"}), done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	e, err := New(cfg, Options{Table: h.table, Metrics: h.metrics, Logger: log})
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

// weights reads the table: destination -> weight for the test VIP.
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

var webKey = ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: vip}

// eventually polls until the table for the test VIP matches want
// (destination -> weight; a missing entry means absent).
func (h *harness) eventually(want map[netip.AddrPort]uint32, what string) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got map[netip.AddrPort]uint32
	for time.Now().Before(deadline) {
		got, _ = weights(h.t, h.table, webKey)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("%s: table has %v, want %v", what, got, want)
}

func TestQuiesceRestoreCycle(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	h := start(t, testConfig("quiesce", b1, b2, b3), ipvs.NewMemory())
	all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100}
	h.eventually(all, "start")
	waitReady(t, h.engine)

	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0, b3.addr: 100}, "b2 stopped")
	if v := h.metric("director_real_server_up", "web", b2.addr, ""); v != 0 {
		t.Errorf("director_real_server_up for b2 = %v, want 0", v)
	}
	b2.start()
	h.eventually(all, "b2 restarted")
	if v := h.metric("director_real_server_up", "web", b2.addr, ""); v != 1 {
		t.Errorf("director_real_server_up for b2 = %v, want 1", v)
	}
}

func TestRemoveRestoreCycle(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	h := start(t, testConfig("remove", b1, b2), ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	b1.stop()
	h.eventually(map[netip.AddrPort]uint32{b2.addr: 100}, "b1 stopped: removed")
	b1.start()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "b1 restarted: back")
}

func TestFallbackAppearsAndLeaves(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	sorry := netip.MustParseAddrPort("127.0.0.1:8089")
	cfg.VirtualServers[0].Fallback = sorry
	h := start(t, cfg, ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	b1.stop()
	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 0, sorry: 1}, "all down: fallback in")
	b2.start()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "one back: fallback out")
}

func TestAdoptsKernelTableWithoutChanges(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	mem := ipvs.NewMemory()
	ctx := context.Background()
	cfg := testConfig("quiesce", b1, b2)
	svc := service(&cfg.VirtualServers[0])
	if err := mem.CreateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*backend{b1, b2} {
		if err := mem.CreateDestination(ctx, svc.Key, ipvs.Destination{Address: b.addr, Weight: 100}); err != nil {
			t.Fatal(err)
		}
	}
	h := start(t, cfg, mem)
	waitReady(t, h.engine)
	// Several check rounds: servers that were serving must never be touched.
	time.Sleep(300 * time.Millisecond)
	if n := h.table.mutations.Load(); n != 0 {
		t.Fatalf("adopting a correct kernel table made %d changes, want 0", n)
	}
	if v := h.metric("director_state_transitions_total", "web", b1.addr, "up"); v != 0 {
		t.Errorf("adopted server counted %v transitions to up, want 0", v)
	}
}

func TestResyncRepairsDrift(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.Director.ResyncInterval = 100 * time.Millisecond
	mem := ipvs.NewMemory()
	h := start(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	ctx := context.Background()
	if err := mem.UpdateDestination(ctx, webKey, ipvs.Destination{Address: b1.addr, Weight: 7}); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "manual weight edit repaired")
	if err := mem.DeleteService(ctx, webKey); err != nil { // like ipvsadm -C
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "cleared table repaired")
}

func TestReloadKeepsUnchangedState(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	h := start(t, cfg, ipvs.NewMemory())
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "b2 down")
	upBefore := h.metric("director_state_transitions_total", "web", b1.addr, "up")
	downBefore := h.metric("director_state_transitions_total", "web", b2.addr, "down")
	probeB1 := h.engine.probeFor(t, b1.addr)

	// Add b3, change the scheduler; b1 and b2 are unchanged.
	next := testConfig("quiesce", b1, b2, b3)
	next.VirtualServers[0].Scheduler = "wlc"
	if err := h.engine.Reload(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0, b3.addr: 100}, "after reload")
	if s := h.scheduler(); s != "wlc" {
		t.Errorf("scheduler after reload = %q, want wlc", s)
	}
	if probeB1 != h.engine.probeFor(t, b1.addr) {
		t.Errorf("b1's check was restarted by a reload that did not change it")
	}
	if got := h.metric("director_state_transitions_total", "web", b1.addr, "up"); got != upBefore {
		t.Errorf("b1 transitions to up went %v -> %v across reload; its state should be kept", upBefore, got)
	}
	if got := h.metric("director_state_transitions_total", "web", b2.addr, "down"); got != downBefore {
		t.Errorf("b2 transitions to down went %v -> %v across reload", downBefore, got)
	}

	// Remove b1: its destination goes.
	if err := h.engine.Reload(context.Background(), testConfig("quiesce", b2, b3)); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b2.addr: 0, b3.addr: 100}, "b1 removed by reload")
}

func TestBadReloadChangesNothing(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	h := start(t, testConfig("quiesce", b1, b2), ipvs.NewMemory())
	want := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(want, "start")
	waitReady(t, h.engine)
	before := h.table.mutations.Load()

	bad := testConfig("quiesce", b1) // would drop b2...
	bad.VirtualServers[0].Scheduler = "rr"
	bad.VirtualServers[0].Check.ExpectBody = "(" // ...but its check cannot be built
	err := h.engine.Reload(context.Background(), bad)
	if err == nil {
		t.Fatal("reload with an invalid check was accepted")
	}
	if !strings.Contains(err.Error(), "test.toml") {
		t.Errorf("reload error %q does not name the config file", err)
	}
	time.Sleep(200 * time.Millisecond)
	if got, _ := weights(t, h.table, webKey); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("table after bad reload = %v, want unchanged %v", got, want)
	}
	if n := h.table.mutations.Load() - before; n != 0 {
		t.Errorf("bad reload caused %d table changes", n)
	}
	if s := h.scheduler(); s != "wrr" {
		t.Errorf("scheduler after bad reload = %q, want wrr", s)
	}
}

func TestSharedCheckRunsOnce(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	second := cfg.VirtualServers[0]
	second.Name = "web-alt"
	second.Address = netip.MustParseAddrPort("192.0.2.11:80")
	second.RealServers = append([]config.RealServer(nil), second.RealServers...)
	cfg.VirtualServers = append(cfg.VirtualServers, second)
	e, err := New(cfg, Options{Table: ipvs.NewMemory(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.buildProbers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 1 {
		t.Fatalf("two virtual servers with the same check of the same server built %d probers, want 1", len(fresh))
	}
}

func TestShutdownFlushRemovesOnlyManagedServices(t *testing.T) {
	b1 := newBackend(t)
	cfg := testConfig("quiesce", b1)
	cfg.Director.OnShutdown = "flush"
	mem := ipvs.NewMemory()
	foreign := ipvs.Service{Key: ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP,
		Address: netip.MustParseAddrPort("192.0.2.99:443")}, Scheduler: "rr", PersistenceNetmask: 32}
	if err := mem.CreateService(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	h := start(t, cfg, mem)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "start")
	h.stop()
	svcs, err := mem.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Key != foreign.Key {
		t.Fatalf("after flush the table holds %v, want only the hand-made service", svcs)
	}
}

func TestNewRejectsUnbuildableCheck(t *testing.T) {
	cfg := testConfig("quiesce", &backend{addr: netip.MustParseAddrPort("127.0.0.1:1")})
	cfg.VirtualServers[0].Check.ExpectStatus = []string{"abc"}
	_, err := New(cfg, Options{Table: ipvs.NewMemory(), NewProber: checks.New})
	if err == nil || !strings.Contains(err.Error(), `virtual server "web"`) {
		t.Fatalf("New = %v, want an error naming the virtual server", err)
	}
}

func waitReady(t *testing.T, e *Engine) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e.Ready() {
			return
		}
	}
	t.Fatal("engine never became ready")
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

// probeFor returns the runner checking addr, to tell whether a reload restarted it.
func (e *Engine) probeFor(t *testing.T, addr netip.AddrPort) *probeRunner {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.probes {
		if p.spec.Target == addr {
			return p
		}
	}
	t.Fatalf("no check runs for %s", addr)
	return nil
}

// metric reads one series of the director's registry: name with
// virtual_server and real_server labels, and the "to" label when given.
// A series that does not exist reads as 0.
func (h *harness) metric(name, vs string, rs netip.AddrPort, to string) float64 {
	h.t.Helper()
	families, err := h.metrics.Registry.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch {
				case l.GetName() == "virtual_server" && l.GetValue() != vs,
					l.GetName() == "real_server" && l.GetValue() != rs.String(),
					l.GetName() == "to" && l.GetValue() != to:
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// BenchmarkObserveResult is the engine's cost per check result: fan-out,
// state machine, status ring and metrics for one real server.
func BenchmarkObserveResult(b *testing.B) {
	cfg := testConfig("quiesce", &backend{addr: netip.MustParseAddrPort("127.0.0.1:8080")})
	e, err := New(cfg, Options{Table: ipvs.NewMemory(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	e.mu.Lock()
	e.adoptConfig(cfg, nil, context.Background())
	e.mu.Unlock()
	var key string
	for k := range e.listeners {
		key = k
	}
	ok := probeResult{key: key, result: checks.Result{OK: true, Duration: time.Millisecond}}
	for b.Loop() {
		e.observe(ok)
	}
}
