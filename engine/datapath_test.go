package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/datapath"
	"github.com/lvsdirector/director/ipvs"
)

// recordingDataPath records what the engine asks of its data path; its
// Dial says every VIP is unreachable.
type recordingDataPath struct {
	mu      sync.Mutex
	syncs   [][]datapath.Route
	closed  int
	syncErr error
}

func (r *recordingDataPath) Sync(_ context.Context, routes []datapath.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs = append(r.syncs, routes)
	return r.syncErr
}

func (r *recordingDataPath) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed++
	return nil
}

func (r *recordingDataPath) Dial(context.Context, string, datapath.Route, uint16) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Err: errors.New("unreachable in this test")}
}

func (r *recordingDataPath) state() ([][]datapath.Route, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.syncs), r.closed
}

// dataPathConfig is testConfig with a dr service whose check goes
// through the data path from source.
func dataPathConfig(source string, rips ...string) *config.Config {
	cfg := testConfig("quiesce")
	vs := &cfg.VirtualServers[0]
	vs.Forwarding = "dr"
	vs.Checks[0].DataPath, vs.Checks[0].Source = true, netip.MustParseAddr(source)
	for _, rip := range rips {
		vs.RealServers = append(vs.RealServers, config.RealServer{Address: netip.AddrPortFrom(netip.MustParseAddr(rip), 80), Weight: 1, Forwarding: "dr"})
	}
	return cfg
}

func TestEngineOwnsTheDataPath(t *testing.T) {
	dp := &recordingDataPath{}
	h := startWith(t, dataPathConfig("10.0.0.50", "10.0.0.11", "10.0.0.12"), ipvs.NewMemory(), io.Discard, func(o *Options) { o.DataPath = dp })
	waitReady(t, h.engine)
	syncs, closed := dp.state()
	want := []datapath.Route{
		{Source: netip.MustParseAddr("10.0.0.50"), RealServer: netip.MustParseAddr("10.0.0.11"), VIP: vip.Addr()},
		{Source: netip.MustParseAddr("10.0.0.50"), RealServer: netip.MustParseAddr("10.0.0.12"), VIP: vip.Addr()},
	}
	if len(syncs) != 1 || !slices.Equal(syncs[0], want) || closed != 0 {
		t.Fatalf("at start: syncs %v, closed %d; want one sync of %v", syncs, closed, want)
	}

	// A reload hands over the new routes; one without data-path checks
	// hands over none, which removes everything.
	reload(t, h, dataPathConfig("10.0.0.50", "10.0.0.11"))
	reload(t, h, testConfig("quiesce"))
	syncs, _ = dp.state()
	if len(syncs) != 3 || !slices.Equal(syncs[1], want[:1]) || len(syncs[2]) != 0 {
		t.Fatalf("after two reloads: syncs %v; want %v, then none", syncs, want[:1])
	}

	h.stop()
	if _, closed := dp.state(); closed != 1 {
		t.Errorf("closed %d times after Run returned, want once", closed)
	}
}

func TestEngineRefusesToStartWithoutItsDataPath(t *testing.T) {
	dp := &recordingDataPath{syncErr: errors.New("datapath: creating a network namespace: operation not permitted")}
	e, err := New(dataPathConfig("10.0.0.50", "10.0.0.11"), Options{Table: ipvs.NewMemory(), DataPath: dp})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Run(tctx(t))
	if err == nil || !errors.Is(err, dp.syncErr) {
		t.Fatalf("Run = %v, want the data path's error", err)
	}
	if _, closed := dp.state(); closed != 1 {
		t.Errorf("closed %d times after a failed start, want once (nothing half-built is left)", closed)
	}
}
