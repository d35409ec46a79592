package engine

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

func TestAPIOverrides(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	state := filepath.Join(t.TempDir(), "state", "state.json")
	h, logs := startAdmin(t, testConfig("quiesce", b1, b2, b3), ipvs.NewMemory(), func(o *Options) { o.StateFile = state })
	all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100}
	h.eventually(all, "start")
	waitReady(t, h.engine)
	ctx := tctx(t)

	// Requests that must change nothing. The state file exists from the
	// start (it lists the managed services); a write would replace it.
	before := h.table.mutations.Load()
	stateBefore, err := os.Stat(state)
	if err != nil {
		t.Fatalf("no state file after the start: %v", err)
	}
	for _, tt := range []struct {
		req  OverrideRequest
		want error
	}{
		{OverrideRequest{VirtualServer: "nope", RealServer: b1.addr, Kind: OverrideDrain, Reason: "x"}, ErrNotFound},
		{OverrideRequest{VirtualServer: "web", RealServer: netip.MustParseAddrPort("10.9.9.9:80"), Kind: OverrideDrain, Reason: "x"}, ErrNotFound},
		{OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: "explode", Reason: "x"}, ErrInvalid},
		{OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDrain, Reason: ""}, ErrInvalid},
		{OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDrain, Reason: "a\nb"}, ErrInvalid},
		{OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDrain, Reason: "x", Expires: time.Now().Add(-time.Second)}, ErrInvalid},
	} {
		if _, err := h.engine.SetOverride(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("SetOverride(%+v) = %v, want %v", tt.req, err, tt.want)
		}
	}
	if err := h.engine.EnableServer(ctx, "web", b1.addr, "", "test"); !errors.Is(err, ErrConflict) {
		t.Errorf("enabling a server without override = %v, want ErrConflict", err)
	}
	if n := h.table.mutations.Load() - before; n != 0 {
		t.Errorf("refused requests made %d table changes", n)
	}
	if stateAfter, err := os.Stat(state); err != nil || !os.SameFile(stateBefore, stateAfter) {
		t.Errorf("refused requests wrote the state file")
	}

	// drain: weight 0, kept; disable: removed.
	o, err := h.engine.SetOverride(ctx, OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDrain, Reason: "kernel upgrade", By: "127.0.0.1:5555"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != OverrideDrain || o.Source != SourceAPI || o.Reason != "kernel upgrade" {
		t.Errorf("override = %+v", o)
	}
	// The table has changed when SetOverride returns.
	if got, _ := weights(t, h.table, webKey); got[b1.addr] != 0 {
		t.Errorf("after drain returned, b1 has weight %d, want 0", got[b1.addr])
	}
	if _, err := h.engine.SetOverride(ctx, OverrideRequest{VirtualServer: "web", RealServer: b2.addr, Kind: OverrideDisable, Reason: "disk failing"}); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b3.addr: 100}, "b1 drained, b2 disabled")
	time.Sleep(200 * time.Millisecond) // several check rounds: checks pass, the overrides hold
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b3.addr: 100}, "overrides hold while checks pass")

	r1 := rsStatus(t, h.engine, "web", b1.addr)
	if r1.Override == nil || r1.Override.Kind != OverrideDrain || r1.Override.Reason != "kernel upgrade" || r1.State != health.Up {
		t.Errorf("status of b1 = state %v override %+v, want up with a drain", r1.State, r1.Override)
	}
	if v := h.gauge("director_real_server_override", map[string]string{"real_server": b2.addr.String(), "kind": "disable"}); v != 1 {
		t.Errorf("override metric for b2 disable = %v, want 1", v)
	}
	if v := h.gauge("director_real_server_override", map[string]string{"real_server": b2.addr.String(), "kind": "drain"}); v != 0 {
		t.Errorf("override metric for b2 drain = %v, want 0", v)
	}
	if n := logs.Count("real server override set", "kind=drain", `reason="kernel upgrade"`, "by=127.0.0.1:5555"); n != 1 {
		t.Errorf("%d log lines for the drain, want 1:\n%s", n, logs)
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"kernel upgrade"`) || !strings.Contains(string(data), `"disable"`) {
		t.Errorf("state file lacks the overrides:\n%s", data)
	}

	// enable: back to what health says.
	if err := h.engine.EnableServer(ctx, "web", b1.addr, "done", "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.engine.EnableServer(ctx, "web", b2.addr, "", "test"); err != nil {
		t.Fatal(err)
	}
	h.eventually(all, "enabled again")
	if v := h.gauge("director_real_server_override", map[string]string{"real_server": b1.addr.String(), "kind": "drain"}); v != 0 {
		t.Errorf("override metric after enable = %v, want 0", v)
	}
	data, _ = os.ReadFile(state)
	if strings.Contains(string(data), "kernel upgrade") {
		t.Errorf("state file still holds the ended override:\n%s", data)
	}
}

func TestOverrideExpires(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	h, logs := startAdmin(t, testConfig("quiesce", b1, b2), ipvs.NewMemory(), nil)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	if _, err := h.engine.SetOverride(tctx(t), OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDisable,
		Reason: "reboot", Expires: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b2.addr: 100}, "disabled")
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "expired: back")
	if logs.Count("real server override expired", "kind=disable") != 1 {
		t.Errorf("no log line for the expiry:\n%s", logs)
	}
}

func TestOverrideSurvivesReloadAndRestart(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state := filepath.Join(t.TempDir(), "state.json")
	mem := ipvs.NewMemory()
	withState := func(o *Options) { o.StateFile = state }
	h, _ := startAdmin(t, testConfig("quiesce", b1, b2), mem, withState)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}, "start")
	if _, err := h.engine.SetOverride(tctx(t), OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDrain, Reason: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "drained")

	next := testConfig("quiesce", b1, b2)
	next.VirtualServers[0].Scheduler = "wlc"
	reload(t, h, next)
	time.Sleep(150 * time.Millisecond)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "still drained after a reload")
	h.stop()

	// A restart on the same table: b1 is never given weight again.
	h2, logs := startAdmin(t, next, mem, withState)
	waitReady(t, h2.engine)
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got, _ := weights(t, mem, webKey); got[b1.addr] != 0 {
			t.Fatalf("after a restart b1 has weight %d, want 0 (drained)", got[b1.addr])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if logs.Count("override restored from the state file", "kind=drain", "reason=maintenance") != 1 {
		t.Errorf("no log line for the restored override:\n%s", logs)
	}
	if r := rsStatus(t, h2.engine, "web", b1.addr); r.Override == nil || r.Override.Reason != "maintenance" {
		t.Errorf("override after restart = %+v", r.Override)
	}

	// A reload without b1 drops its override from the state file.
	reload(t, h2, testConfig("quiesce", b2))
	poll(t, "state file without b1", func() bool {
		data, err := os.ReadFile(state)
		return err == nil && !strings.Contains(string(data), "maintenance")
	})
}

func TestCorruptStateFile(t *testing.T) {
	b1 := newBackend(t)
	state := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, logs := startAdmin(t, testConfig("quiesce", b1), ipvs.NewMemory(), func(o *Options) { o.StateFile = state })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "starts without overrides")
	if logs.Count("override state file is unreadable", "moved_to="+state+".corrupt") != 1 {
		t.Errorf("no log line for the corrupt state file:\n%s", logs)
	}
	if _, err := os.Stat(state + ".corrupt"); err != nil {
		t.Errorf("corrupt state file not kept aside: %v", err)
	}
}

func TestMaintenanceDir(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	dir := t.TempDir()
	cfg := testConfig("quiesce", b1, b2, b3)
	cfg.Director.MaintenanceDir = dir
	// A file present at start holds b1 out from the first reconcile.
	if err := os.WriteFile(filepath.Join(dir, b1.addr.Addr().String()+"_"+itoa(b1.addr.Port())), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h, logs := startAdmin(t, cfg, ipvs.NewMemory(), nil)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100, b3.addr: 100}, "b1 in maintenance (drain)")

	// disable by content, in the virtual server's subdirectory.
	if err := os.Mkdir(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web", b2.addr.String()), []byte("disable: swapping disks\nmore\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b3.addr: 100}, "b2 disabled by its file")
	r2 := rsStatus(t, h.engine, "web", b2.addr)
	if r2.Override == nil || r2.Override.Kind != OverrideDisable || r2.Override.Reason != "swapping disks" || r2.Override.Source != SourceMaintenance {
		t.Errorf("b2 override = %+v", r2.Override)
	}
	// Enabling through the API is refused while the file is there.
	if err := h.engine.EnableServer(tctx(t), "web", b2.addr, "", "test"); !errors.Is(err, ErrConflict) {
		t.Errorf("EnableServer with a maintenance file = %v, want ErrConflict", err)
	}
	// A file for another virtual server, or no server, changes nothing.
	os.Mkdir(filepath.Join(dir, "other"), 0o755)
	os.WriteFile(filepath.Join(dir, "other", b3.addr.String()), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "10.99.0.1_80"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ".swp"), nil, 0o644)
	poll(t, "warning for the unmatched file", func() bool {
		return logs.Count("matches no real server", "10.99.0.1_80") == 1
	})
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b3.addr: 100}, "unrelated files change nothing")

	os.Remove(filepath.Join(dir, b1.addr.Addr().String()+"_"+itoa(b1.addr.Port())))
	os.Remove(filepath.Join(dir, "web", b2.addr.String()))
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100}, "files removed: back")
	if n := logs.Count("real server override ended", "source=maintenance_dir"); n != 2 {
		t.Errorf("%d log lines for ended maintenance, want 2", n)
	}
	if logs.Count("matches no real server", "10.99.0.1_80") != 1 {
		t.Errorf("the unmatched file was warned about more than once")
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

func TestQuorumFallbackTakeover(t *testing.T) {
	b1, b2, b3 := newBackend(t), newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2, b3)
	sorry := netip.MustParseAddrPort("127.0.0.1:8089")
	cfg.VirtualServers[0].Fallback = sorry
	cfg.VirtualServers[0].Quorum, cfg.VirtualServers[0].Hysteresis = 200, 50 // lost below 150, back at 250
	h, logs := startAdmin(t, cfg, ipvs.NewMemory(), nil)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100}, "start")
	b1.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100, b3.addr: 100}, "200 healthy: quorum kept")
	b2.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 0, b3.addr: 0, sorry: 1}, "100 healthy: fallback takes over")
	if v := h.gauge("director_virtual_server_quorum_up", map[string]string{"virtual_server": "web"}); v != 0 {
		t.Errorf("quorum_up = %v, want 0", v)
	}
	if st := vsStatus(t, h.engine, "web"); !st.QuorumLost || st.HealthyWeight != 100 || st.Quorum != 200 {
		t.Errorf("status: quorum lost %v, healthy %d, quorum %d", st.QuorumLost, st.HealthyWeight, st.Quorum)
	}
	b2.start()
	poll(t, "b2 up again", func() bool { return rsStatus(t, h.engine, "web", b2.addr).State == health.Up })
	time.Sleep(150 * time.Millisecond)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 0, b3.addr: 0, sorry: 1}, "200 healthy: below 250, still the fallback (hysteresis)")
	b1.start()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100}, "300 healthy: quorum regained")
	if logs.Count("quorum lost") != 1 || logs.Count("quorum regained") != 1 {
		t.Errorf("want one quorum lost and one regained line:\n%s", logs)
	}
}

// panicConfig is four backends with a slower check, so that the ones
// stopped together fail within one round even on a loaded machine.
func panicConfig(bs ...*backend) *config.Config {
	cfg := testConfig("remove", bs...)
	vs := &cfg.VirtualServers[0]
	vs.Checks[0].Interval, vs.Checks[0].Timeout, vs.Checks[0].Fall, vs.Checks[0].Rise = 300*time.Millisecond, 200*time.Millisecond, 1, 1
	vs.PanicThreshold = 0.5
	return cfg
}

type eventLog struct {
	mu  sync.Mutex
	evs []VirtualServerEvent
}

func (l *eventLog) add(ev VirtualServerEvent) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }
func (l *eventLog) types() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, ev := range l.evs {
		s = append(s, ev.Type)
	}
	return strings.Join(s, ",")
}

func TestPanicGuardKeepsPool(t *testing.T) {
	bs := []*backend{newBackend(t), newBackend(t), newBackend(t), newBackend(t)}
	events := &eventLog{}
	h, logs := startAdmin(t, panicConfig(bs...), ipvs.NewMemory(), func(o *Options) { o.OnVirtualServerEvent = events.add })
	all := map[netip.AddrPort]uint32{}
	for _, b := range bs {
		all[b.addr] = 100
	}
	h.eventually(all, "start")
	waitReady(t, h.engine)
	before := h.table.mutations.Load()

	bs[0].stop()
	bs[1].stop()
	bs[2].stop()
	poll(t, "panic", func() bool { return vsStatus(t, h.engine, "web").Panic })
	poll(t, "three servers down by their checks", func() bool {
		n := 0
		for _, b := range bs[:3] {
			if rsStatus(t, h.engine, "web", b.addr).State == health.Down {
				n++
			}
		}
		return n == 3
	})
	time.Sleep(time.Second) // rounds go by: the pool is kept
	if n := h.table.mutations.Load() - before; n != 0 {
		got, _ := weights(t, h.table, webKey)
		t.Fatalf("the panic guard let %d table changes through; table %v", n, got)
	}
	if r := rsStatus(t, h.engine, "web", bs[0].addr); !r.HeldByPanic {
		t.Errorf("b0 not shown as held by the panic guard")
	}
	if v := h.gauge("director_virtual_server_panic", map[string]string{"virtual_server": "web"}); v != 1 {
		t.Errorf("panic gauge = %v, want 1", v)
	}
	if v := h.gauge("director_panics_total", map[string]string{"virtual_server": "web"}); v != 1 {
		t.Errorf("panics_total = %v, want 1", v)
	}
	if logs.Count("panic guard tripped", "virtual_server=web") != 1 {
		t.Errorf("want one panic log line:\n%s", logs)
	}

	// Two recover: one of four down is within the threshold; it goes.
	bs[0].start()
	bs[1].start()
	h.eventually(map[netip.AddrPort]uint32{bs[0].addr: 100, bs[1].addr: 100, bs[3].addr: 100}, "panic over: the one still down is removed")
	if vsStatus(t, h.engine, "web").Panic {
		t.Errorf("still in panic")
	}
	if got := events.types(); got != "panic,panic_end" {
		t.Errorf("events = %q, want panic,panic_end", got)
	}
}

func TestPanicClearedByOperator(t *testing.T) {
	bs := []*backend{newBackend(t), newBackend(t), newBackend(t)}
	h, _ := startAdmin(t, panicConfig(bs...), ipvs.NewMemory(), nil)
	h.eventually(map[netip.AddrPort]uint32{bs[0].addr: 100, bs[1].addr: 100, bs[2].addr: 100}, "start")
	ctx := tctx(t)
	if err := h.engine.ClearPanic(ctx, "web", "test"); !errors.Is(err, ErrConflict) {
		t.Errorf("ClearPanic while not in panic = %v, want ErrConflict", err)
	}
	if err := h.engine.ClearPanic(ctx, "nope", "test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ClearPanic of an unknown virtual server = %v, want ErrNotFound", err)
	}
	bs[0].stop()
	bs[1].stop()
	poll(t, "panic", func() bool { return vsStatus(t, h.engine, "web").Panic })
	if err := h.engine.ClearPanic(ctx, "web", "test"); err != nil {
		t.Fatal(err)
	}
	h.eventually(map[netip.AddrPort]uint32{bs[2].addr: 100}, "cleared: the failed servers are removed")
	time.Sleep(time.Second)
	if vsStatus(t, h.engine, "web").Panic {
		t.Errorf("the panic came back after being cleared")
	}
}

func TestSingleFailureWithPanicGuardIsRemoved(t *testing.T) {
	bs := []*backend{newBackend(t), newBackend(t), newBackend(t)}
	h, _ := startAdmin(t, panicConfig(bs...), ipvs.NewMemory(), nil)
	h.eventually(map[netip.AddrPort]uint32{bs[0].addr: 100, bs[1].addr: 100, bs[2].addr: 100}, "start")
	bs[0].stop()
	h.eventually(map[netip.AddrPort]uint32{bs[1].addr: 100, bs[2].addr: 100}, "one failure is removed after its round")
	if vsStatus(t, h.engine, "web").Panic {
		t.Errorf("one failure tripped the panic guard")
	}
}

func TestFlapDamping(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	cfg := testConfig("quiesce", b1, b2)
	cfg.Director.Damping = config.Damping{Enabled: true, Penalty: 1000, Suppress: 1500, Reuse: 750,
		HalfLife: 1500 * time.Millisecond, MaxSuppress: time.Minute}
	h, logs := startAdmin(t, cfg, ipvs.NewMemory(), nil)
	both := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100}
	h.eventually(both, "start")

	b1.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "first flap")
	b1.start()
	h.eventually(both, "one flap is not suppressed")
	b1.stop()
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 0, b2.addr: 100}, "second flap")
	b1.start()
	poll(t, "b1 up by its checks but suppressed", func() bool {
		r := rsStatus(t, h.engine, "web", b1.addr)
		return r.State == health.Up && r.Suppressed
	})
	if got, _ := weights(t, h.table, webKey); got[b1.addr] != 0 {
		t.Errorf("suppressed b1 has weight %d, want 0", got[b1.addr])
	}
	if v := h.gauge("director_real_server_suppressed", map[string]string{"real_server": b1.addr.String()}); v != 1 {
		t.Errorf("suppressed metric = %v, want 1", v)
	}
	if logs.Count("suppressed by flap damping") != 1 {
		t.Errorf("want one suppression log line:\n%s", logs)
	}
	// The penalty (about 2000) decays below 750 in about 1.4 half-lives.
	h.eventually(both, "released once the penalty decayed")
	if logs.Count("released by flap damping") != 1 {
		t.Errorf("want one release log line:\n%s", logs)
	}

	// An operator's enable ends a suppression at once.
	for range 2 {
		b1.stop()
		poll(t, "b1 down", func() bool { return rsStatus(t, h.engine, "web", b1.addr).State == health.Down })
		b1.start()
		poll(t, "b1 up", func() bool { return rsStatus(t, h.engine, "web", b1.addr).State == health.Up })
	}
	poll(t, "suppressed again", func() bool { return rsStatus(t, h.engine, "web", b1.addr).Suppressed })
	if err := h.engine.EnableServer(tctx(t), "web", b1.addr, "fixed", "test"); err != nil {
		t.Fatal(err)
	}
	if got, _ := weights(t, h.table, webKey); got[b1.addr] != 100 {
		t.Errorf("after enable b1 has weight %d, want 100", got[b1.addr])
	}
}

// Entries of the maintenance directory that are not small regular files
// (a FIFO, a socket, a 2 GiB file, a symlink to /dev/zero), each named
// after a real server: opening one for a blocking read would hang the
// engine. They are logged once each and ignored; checks and reloads go on.
func TestMaintenanceDirOddEntries(t *testing.T) {
	b1, b2, b3, b4 := newBackend(t), newBackend(t), newBackend(t), newBackend(t)
	dir := t.TempDir()
	cfg := testConfig("quiesce", b1, b2, b3, b4)
	cfg.Director.MaintenanceDir = dir
	name := func(b *backend) string { return filepath.Join(dir, b.addr.Addr().String()+"_"+itoa(b.addr.Port())) }
	if err := syscall.Mkfifo(name(b1), 0o644); err != nil {
		t.Fatal(err)
	}
	sock, err := net.Listen("unix", name(b2))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	big, err := os.Create(name(b3))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(2 << 30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	big.Close()
	if err := os.Symlink("/dev/zero", name(b4)); err != nil {
		t.Fatal(err)
	}
	h, logs := startAdmin(t, cfg, ipvs.NewMemory(), nil)
	all := map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 100, b3.addr: 100, b4.addr: 100}
	h.eventually(all, "every server in, the odd entries ignored")
	checks := h.metric("director_checks_total", "web", b1.addr, "")
	poll(t, "checks go on", func() bool { return h.metric("director_checks_total", "web", b1.addr, "") >= checks+3 })
	next := testConfig("quiesce", b1, b2, b3, b4)
	next.Director.MaintenanceDir = dir
	next.VirtualServers[0].Scheduler = "rr"
	reload(t, h, next)
	h.eventually(all, "after a reload")
	if s := h.scheduler(); s != "rr" {
		t.Errorf("scheduler after the reload = %q, want rr", s)
	}
	for _, b := range []*backend{b1, b2, b3, b4} {
		if n := logs.Count("maintenance_dir: entry ignored", name(b)); n != 1 {
			t.Errorf("%d log lines for %s, want 1:\n%s", n, name(b), logs)
		}
	}
	if r := rsStatus(t, h.engine, "web", b1.addr); r.Override != nil {
		t.Errorf("a FIFO set an override: %+v", r.Override)
	}
}
