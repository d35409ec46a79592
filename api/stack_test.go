package api

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/internal/testutil"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// stack is a director on loopback: an engine over an in-memory table,
// checking real backends, behind the real API handler with real metrics.
type stack struct {
	url     string
	engine  *engine.Engine
	table   *ipvs.Memory
	metrics *metrics.Metrics
	up      netip.AddrPort // healthy backend
	down    netip.AddrPort // answers 503
	vip     netip.AddrPort
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{
		up: testutil.ServeHTTP(t, testutil.Answer(200, "ok\n")), down: testutil.ServeHTTP(t, testutil.Answer(503, "overloaded\n")),
		vip: netip.MustParseAddrPort("192.0.2.10:80"), table: ipvs.NewMemory(),
		metrics: metrics.New(metrics.Build{Version: "v1.2.3", Revision: "abc"}),
	}
	vs := config.VirtualServer{
		Name: "web", Address: s.vip, Family: "ipv4", Protocol: "tcp", Scheduler: "wrr",
		PersistenceNetmask: 32, Forwarding: "nat", OnFailure: "quiesce",
		Fallback: netip.MustParseAddrPort("127.0.0.1:8089"),
		Checks: []config.Check{{
			Type: "http", Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond,
			Rise: 2, Fall: 2, Options: checks.HTTPOptions{Path: "/healthz", MaxBodyBytes: 1024, ExpectBody: "ok"},
		}},
		RealServers: []config.RealServer{
			{Address: s.up, Weight: 100, Forwarding: "nat"},
			{Address: s.down, Weight: 50, Forwarding: "nat"},
		},
	}
	cfg := &config.Config{
		Path: "/etc/director/director.toml", SHA256: "9f2c4e0b7a1d3c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
		Director:       config.Director{Listen: "127.0.0.1:0", ResyncInterval: time.Hour, OnFailure: "quiesce", OnShutdown: "keep"},
		VirtualServers: []config.VirtualServer{vs},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	eng, err := engine.New(cfg, engine.Options{Table: s.table, Metrics: s.metrics, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s.engine = eng
	s.metrics.Reload(true, time.Now())
	s.metrics.ConfigHash(cfg.SHA256)
	s.metrics.SetKernelStats(metrics.NewIPVSCollector(s.table, eng.ServiceNames, time.Second, log))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	srv := httptest.NewServer(Handler(eng, Options{Metrics: s.metrics.Handler(), Version: "v1.2.3", Logger: log, Table: s.table}))
	s.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	})
	s.waitSettled(t)
	key := ipvs.AddressKey(ipvs.TCP, s.vip)
	if err := s.table.SetCounters(key, s.up, ipvs.Counters{Connections: 1234, ActiveConns: 17, InactiveConns: 3, PacketsIn: 9000, BytesIn: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSettled polls until the healthy backend is up, the 503 one down,
// and the table reconciled, with a few results in the 503 one's history.
func (s *stack) waitSettled(t *testing.T) {
	t.Helper()
	settled := func() bool {
		st := s.engine.Status()
		if !st.Ready || len(st.VirtualServers) != 1 {
			return false
		}
		rs := st.VirtualServers[0].RealServers
		return rs[0].State == health.Up && rs[0].ProgrammedWeight == 100 &&
			rs[1].State == health.Down && rs[1].ProgrammedWeight == 0 && len(rs[1].History) >= 3
	}
	if !testutil.Within(20*time.Second, settled) {
		t.Fatalf("the director never settled: %+v", s.engine.Status())
	}
}
