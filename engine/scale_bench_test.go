package engine

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
)

// scaleConfig is vss virtual servers of per real servers each, every real
// server with its own TCP check (rise 1, fall 1: every result that
// differs from the last is a transition).
func scaleConfig(vss, per int) *config.Config {
	cfg := &config.Config{
		Path: "scale.toml",
		Director: config.Director{Listen: "127.0.0.1:0", ResyncInterval: time.Hour,
			OnFailure: "quiesce", OnShutdown: "keep"},
	}
	n := 0
	for i := range vss {
		vs := config.VirtualServer{
			Name:    "vs" + strconv.Itoa(i),
			Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(2 + i/250), byte(1 + i%250)}), 80),
			Family:  "ipv4", Protocol: "tcp", Scheduler: "wrr", PersistenceNetmask: 32, Forwarding: "nat", OnFailure: "quiesce",
			Checks: []config.Check{{Type: "tcp", Name: "tcp", Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 1}},
		}
		for range per {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(n / 250), byte(1 + n%250)}), 8080)
			vs.RealServers = append(vs.RealServers, config.RealServer{Address: addr, Weight: 100, Forwarding: "nat"})
			n++
		}
		cfg.VirtualServers = append(cfg.VirtualServers, vs)
	}
	return cfg
}

// scaleEngine is an engine for scaleConfig(vss, per) whose servers are all
// up and programmed, its loop's state driven by the benchmark itself (no
// runner started, no goroutine but the caller's), and the check key of
// each real server, in config order.
func scaleEngine(b *testing.B, vss, per int) (*Engine, []string) {
	cfg := scaleConfig(vss, per)
	e, err := New(cfg, Options{Table: ipvs.NewMemory(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e.adoptConfig(cfg, nil, ctx)
	keys := make([]string, 0, vss*per)
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for j := range vs.RealServers {
			keys = append(keys, vs.CheckSpec(&vs.RealServers[j], &vs.Checks[0]).Key())
		}
	}
	for _, k := range keys {
		e.observe(probeResult{key: k, result: checks.Result{OK: true}})
	}
	if !e.reconcile(ctx, "start") {
		b.Fatal("the first reconcile failed")
	}
	return e, keys
}

// BenchmarkReconcileOneTransition20k is the engine's cost of one real
// server going down or up among 20,000 over 200 virtual services: its
// result observed and the one reconcile that follows (the table as last
// known, no read-back: a transition's path).
func BenchmarkReconcileOneTransition20k(b *testing.B) {
	e, keys := scaleEngine(b, 200, 100)
	ctx := context.Background()
	key := keys[len(keys)/2]
	ok := false
	for b.Loop() {
		if !e.observe(probeResult{key: key, result: checks.Result{OK: ok, Reason: "refused"}}) {
			b.Fatal("no transition")
		}
		if !e.reconcile(ctx, "transition") {
			b.Fatal("reconcile failed")
		}
		ok = !ok
	}
}

// BenchmarkBurst1000Results20k is a burst of 1,000 results, each a
// transition, among 20,000 servers: handed over by a runner goroutine,
// taken by the loop as they come (as many per wake-up as are waiting),
// observed, and one reconcile.
func BenchmarkBurst1000Results20k(b *testing.B) {
	e, keys := scaleEngine(b, 200, 100)
	ctx := context.Background()
	burst := keys[:0:0]
	for i := 0; i < len(keys) && len(burst) < 1000; i += len(keys) / 1000 {
		burst = append(burst, keys[i])
	}
	ok := false
	for b.Loop() {
		go func(ok bool) { // the runners
			for _, k := range burst {
				e.results.put(ctx, probeResult{key: k, result: checks.Result{OK: ok, Reason: "refused"}})
			}
		}(ok)
		changed := false
		for n := 0; n < len(burst); { // the loop: as many results per wake-up as are waiting
			<-e.results.ready
			batch := e.results.take()
			n += len(batch)
			changed = e.observeAll(batch) || changed
		}
		if !changed {
			b.Fatal("no transition")
		}
		if !e.reconcile(ctx, "transition") {
			b.Fatal("reconcile failed")
		}
		ok = !ok
	}
}

// BenchmarkPublishSnapshot20k is the cost of one status snapshot of
// 20,000 real servers over 200 virtual services, each with a full history
// of results: what a status reader's request costs the loop.
func BenchmarkPublishSnapshot20k(b *testing.B) {
	e, keys := scaleEngine(b, 200, 100)
	start := time.Now()
	for i := range e.opts.HistoryLength {
		for _, k := range keys {
			r := checks.Result{OK: i%4 != 3, Start: start.Add(time.Duration(i) * time.Second), Duration: time.Millisecond}
			if !r.OK {
				r.Reason = "timeout"
			}
			e.observe(probeResult{key: k, result: r})
		}
	}
	for b.Loop() {
		e.publishSnapshot(time.Now())
	}
}
