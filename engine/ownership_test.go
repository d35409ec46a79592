package engine

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/statefile"
)

var handKey = ipvs.ServiceKey{Family: ipvs.IPv4, Protocol: ipvs.TCP, Address: netip.MustParseAddrPort("192.0.2.99:80")}

// recorded reads the managed list of a state file, as key strings; nil
// when the file has none.
func recorded(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, managed, err := statefile.Decode(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if managed == nil {
		return nil
	}
	out := []string{}
	for _, k := range statefile.SortedKeys(managed) {
		out = append(out, k.String())
	}
	return out
}

// leftovers is a state file holding text, and a table that already has
// a service on apiVIP, as an earlier run may leave them.
func leftovers(t *testing.T, text string) (state string, mem *ipvs.Memory) {
	t.Helper()
	state = filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(state, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	mem = ipvs.NewMemory()
	if err := mem.CreateService(context.Background(), ipvs.Service{Key: apiKey, Scheduler: "wrr"}); err != nil {
		t.Fatal(err)
	}
	return state, mem
}

// handMade adds a service the director does not manage.
func handMade(t *testing.T, mem *ipvs.Memory) {
	t.Helper()
	if err := mem.CreateService(context.Background(), ipvs.Service{Key: handKey, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
}

// A service dropped from the config while the director was stopped is
// deleted by the first reconcile of the next run; the others are left alone.
func TestRestartDeletesServiceDroppedFromConfig(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state := filepath.Join(t.TempDir(), "state.json")
	withState := func(o *Options) { o.StateFile = state }
	mem := ipvs.NewMemory()
	handMade(t, mem)

	h, _ := startAdmin(t, withAPI(testConfig("quiesce", b1), b2), mem, withState)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "web")
	waitReady(t, h.engine)
	poll(t, "api created", func() bool { return hasService(t, mem, apiKey) })
	h.stop() // on_shutdown = keep
	if got, want := recorded(t, state), []string{"tcp 192.0.2.10:80", "tcp 192.0.2.20:80"}; !slices.Equal(got, want) {
		t.Fatalf("state file lists %v, want %v", got, want)
	}

	mem.ResetHistory()
	h2, logs := startAdmin(t, testConfig("quiesce", b1), mem, withState)
	waitReady(t, h2.engine)
	if hasService(t, mem, apiKey) {
		t.Error("api, dropped from the config while the director was stopped, is still in the table")
	}
	if !hasService(t, mem, handKey) {
		t.Error("the hand-made service was deleted")
	}
	if w, _ := weights(t, mem, webKey); w[b1.addr] != 100 || len(w) != 1 {
		t.Errorf("web = %v, want untouched", w)
	}
	for _, op := range mem.History() {
		if op.Kind != ipvs.OpDeleteService || op.Service.Key.Normalize() != apiKey {
			t.Errorf("unexpected operation %s; want only the delete of api", op)
		}
	}
	if logs.Count("deleting a virtual service this director no longer manages", `service="tcp 192.0.2.20:80"`,
		`reason="managed by this director before the restart; no longer in the config"`) != 1 {
		t.Errorf("no log line says api is deleted and why:\n%s", logs)
	}
	poll(t, "api leaves the state file", func() bool { return slices.Equal(recorded(t, state), []string{"tcp 192.0.2.10:80"}) })
}

// A service is in the state file before the kernel is asked to create it,
// at start and in a reload; one a rolled-back reload created leaves it.
func TestStateRecordedBeforeCreate(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state := filepath.Join(t.TempDir(), "state.json")
	mem := ipvs.NewMemory()
	seen := make(chan string, 10)
	mem.SetFail(func(op ipvs.Op) error {
		if op.Kind != ipvs.OpCreateService {
			return nil
		}
		data, err := os.ReadFile(state)
		if err != nil {
			seen <- "unreadable: " + err.Error()
		} else if _, managed, err := statefile.Decode(data); err != nil || !managed[op.Service.Key.Normalize()] {
			seen <- fmt.Sprintf("%s not listed before its create (%v): %s", op.Service.Key, err, data)
		} else {
			seen <- "ok"
		}
		if op.Service.Key.Normalize() == apiKey {
			return fmt.Errorf("injected: %w", ipvs.ErrInvalid) // as if the director died here
		}
		return nil
	})
	h, _ := startAdmin(t, testConfig("quiesce", b1), mem, func(o *Options) { o.StateFile = state })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "web")
	if got := <-seen; got != "ok" {
		t.Errorf("start: %s", got)
	}

	ctx := tctx(t)
	if err := h.engine.Reload(ctx, withAPI(testConfig("quiesce", b1), b2)); err == nil {
		t.Fatal("reload whose create failed reported success")
	}
	if got := <-seen; got != "ok" {
		t.Errorf("reload: %s", got)
	}
	mem.SetFail(nil)
	if !h.engine.reconcileNow(t, "resync") {
		t.Fatal("resync after the rollback failed")
	}
	if got, want := recorded(t, state), []string{"tcp 192.0.2.10:80"}; !slices.Equal(got, want) {
		t.Errorf("after the rolled-back reload the state file lists %v, want %v", got, want)
	}
}

// A version-1 file from a director that kept no list still loads: its
// overrides are restored, nothing is deleted on its account, and the list
// is added.
func TestStateFileWithoutManagedList(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state, mem := leftovers(t, fmt.Sprintf(`{"version": 1, "overrides": [{"virtual_server": "web", "real_server": %q, "kind": "drain", "reason": "old", "since": "2025-01-01T00:00:00Z"}]}`, b2.addr))
	h, logs := startAdmin(t, testConfig("quiesce", b1, b2), mem, func(o *Options) { o.StateFile = state })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100, b2.addr: 0}, "web with b2 drained")
	waitReady(t, h.engine)
	if logs.Count("override restored from the state file", "reason=old") != 1 {
		t.Errorf("override of the old file not restored:\n%s", logs)
	}
	if !hasService(t, mem, apiKey) {
		t.Error("a service not in the old file was deleted")
	}
	if got, want := recorded(t, state), []string{"tcp 192.0.2.10:80"}; !slices.Equal(got, want) {
		t.Errorf("state file lists %v, want %v", got, want)
	}
}

// A corrupt file is set aside as before, and deletes nothing.
func TestCorruptStateFileDeletesNothing(t *testing.T) {
	b1 := newBackend(t)
	state, mem := leftovers(t, `{"version": 1, "overrides": [], "managed": [{"protocol": "tcp", "address": "192.0.2.20:80"}, {"fwmark": 3}]}`)
	h, logs := startAdmin(t, testConfig("quiesce", b1), mem, func(o *Options) { o.StateFile = state })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "web")
	waitReady(t, h.engine)
	if logs.Count("override state file is unreadable", "moved_to="+state+".corrupt") != 1 {
		t.Errorf("no log line for the corrupt state file:\n%s", logs)
	}
	if !hasService(t, mem, apiKey) {
		t.Error("a service listed only in the corrupt file was deleted")
	}
	if got, want := recorded(t, state), []string{"tcp 192.0.2.10:80"}; !slices.Equal(got, want) {
		t.Errorf("new state file lists %v, want %v", got, want)
	}
}

// A service retired at start with connections drains first, and
// on_shutdown = flush deletes it along with the configured ones.
func TestRetiredAtStartDrainsAndFlushes(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state := filepath.Join(t.TempDir(), "state.json")
	withState := func(o *Options) { o.StateFile = state }
	mem := ipvs.NewMemory()
	handMade(t, mem)
	h, _ := startAdmin(t, withAPI(testConfig("quiesce", b1), b2), mem, withState)
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "web")
	poll(t, "api created", func() bool { return hasService(t, mem, apiKey) })
	h.stop()

	setConns(t, mem, apiKey, b2.addr, 3, 0)
	cfg := testConfig("quiesce", b1)
	cfg.Director.DrainTimeout = time.Hour
	cfg.Director.OnShutdown = "flush"
	h2, _ := startAdmin(t, cfg, mem, withState)
	waitReady(t, h2.engine)
	if w, ok := weights(t, mem, apiKey); !ok || w[b2.addr] != 0 || len(w) != 1 {
		t.Errorf("api = %v (present %v), want b2 at weight 0, draining", w, ok)
	}
	if d := h2.engine.Draining(); len(d) != 1 || d[0].RealServer != b2.addr {
		t.Errorf("Draining() = %+v, want b2", d)
	}
	h2.stop()
	if hasService(t, mem, apiKey) || hasService(t, mem, webKey) {
		t.Error("on_shutdown = flush left a service this director answered for")
	}
	if !hasService(t, mem, handKey) {
		t.Error("on_shutdown = flush deleted the hand-made service")
	}
	if got := recorded(t, state); got == nil || len(got) != 0 {
		t.Errorf("after a flush the state file lists %v, want an empty list", got)
	}
}

// A dry run neither acts on the list nor changes it.
func TestDryRunLeavesManagedList(t *testing.T) {
	b1 := newBackend(t)
	state, mem := leftovers(t, `{"version": 1, "overrides": [], "managed": [{"protocol": "tcp", "address": "192.0.2.20:80"}]}`)
	h, _ := startAdmin(t, testConfig("quiesce", b1), mem, func(o *Options) { o.StateFile = state; o.DryRun = true })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "web")
	waitReady(t, h.engine)
	if !hasService(t, mem, apiKey) {
		t.Error("a dry run deleted a service on the state file's account")
	}
	if _, err := h.engine.SetOverride(tctx(t), OverrideRequest{VirtualServer: "web", RealServer: b1.addr, Kind: OverrideDrain, Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if got, want := recorded(t, state), []string{"tcp 192.0.2.20:80"}; !slices.Equal(got, want) {
		t.Errorf("after a dry run the state file lists %v, want %v as before", got, want)
	}
}

// A state file that cannot be written is logged once and holds nothing up.
func TestStateFileWriteFailureDoesNotBlock(t *testing.T) {
	b1, b2 := newBackend(t), newBackend(t)
	state := "/dev/null/director/state.json" // not a directory, even for root
	h, logs := startAdmin(t, testConfig("quiesce", b1), ipvs.NewMemory(), func(o *Options) { o.StateFile = state })
	h.eventually(map[netip.AddrPort]uint32{b1.addr: 100}, "web despite the state file")
	waitReady(t, h.engine)
	reload(t, h, withAPI(testConfig("quiesce", b1), b2))
	reload(t, h, testConfig("quiesce", b1))
	if n := logs.Count("writing the state file failed"); n != 1 {
		t.Errorf("%d log lines for the failing state file, want 1:\n%s", n, logs)
	}
}
