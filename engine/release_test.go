package engine

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// onLoop runs f on e's loop and waits for it.
func onLoop(t *testing.T, e *Engine, f func(now time.Time)) {
	t.Helper()
	req := request{do: func(_ context.Context, now time.Time) (any, bool, error) {
		f(now)
		return nil, false, nil
	}, reply: make(chan reply, 1)}
	select {
	case e.requests <- req:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not take the request")
	}
	<-req.reply
}

// A snapshot nobody read for snapshotKeep is released, freed by the
// collector, and the next reader gets a whole new one from the loop.
func TestUnreadSnapshotIsReleased(t *testing.T) {
	up := newBackend(t)
	h := start(t, testConfig("quiesce", up), ipvs.NewMemory())
	e := h.engine
	waitReady(t, e)
	if st := e.Snapshot(); len(st.VirtualServers) != 1 || len(st.VirtualServers[0].RealServers) != 1 {
		t.Fatalf("snapshot %+v, want one virtual server of one real server", st)
	}
	onLoop(t, e, func(now time.Time) { e.releaseUnread(now.Add(snapshotKeep)) })
	stand := e.snapshot.Load()
	if stand.released == nil || len(stand.VirtualServers) != 0 {
		t.Fatalf("an unread snapshot is still published after %v: %+v", snapshotKeep, stand)
	}
	if !stand.Ready || stand.ConfigPath != "test.toml" {
		t.Errorf("the stand-in lost the director's fields: %+v", stand)
	}
	runtime.GC()
	if stand.released.Value() != nil {
		t.Error("the released snapshot is still alive after a collection")
	}
	st := e.Snapshot()
	if st.released != nil || len(st.VirtualServers) != 1 || len(st.VirtualServers[0].RealServers) != 1 ||
		st.VirtualServers[0].RealServers[0].Address != up.addr || st.Version <= stand.Version {
		t.Fatalf("the first read after a release got %+v, want a whole new snapshot", st)
	}
}

// A reader after a release whom the loop does not answer within
// snapshotWait gets the released snapshot while it is alive: what it got
// before releases, the last one.
func TestReleasedSnapshotServesABusyLoop(t *testing.T) {
	h := start(t, testConfig("quiesce", newBackend(t)), ipvs.NewMemory())
	e := h.engine
	waitReady(t, e)
	full := e.Snapshot()
	onLoop(t, e, func(now time.Time) { e.releaseUnread(now.Add(snapshotKeep)) })
	busy, free := make(chan struct{}), make(chan struct{})
	e.requests <- request{do: func(context.Context, time.Time) (any, bool, error) {
		close(busy)
		<-free
		return nil, false, nil
	}, reply: make(chan reply, 1)}
	<-busy
	got := e.Snapshot()
	close(free)
	if got != full {
		t.Errorf("a reader of a busy loop got %p, want the released snapshot %p", got, full)
	}
}

// A reader that polls (a dashboard every 15 s) keeps its snapshot: no
// release, so no rebuild but the ones its polls cause anyway.
func TestPolledSnapshotIsKept(t *testing.T) {
	h := start(t, testConfig("quiesce", newBackend(t)), ipvs.NewMemory())
	e := h.engine
	waitReady(t, e)
	e.Snapshot()
	var before, after *Status
	onLoop(t, e, func(now time.Time) {
		before = e.snapshot.Load()
		e.lastRead.Store(now.Add(-15 * time.Second).UnixNano())
		e.releaseUnread(now)
		after = e.snapshot.Load()
	})
	if after != before || after.released != nil {
		t.Errorf("a snapshot read 15 s ago was released")
	}
	onLoop(t, e, func(now time.Time) {
		e.lastRead.Store(now.Add(-snapshotKeep).UnixNano())
		e.releaseUnread(now)
		after = e.snapshot.Load()
	})
	if after.released == nil {
		t.Errorf("a snapshot last read %v ago was kept", snapshotKeep)
	}
}

// The snapshot New publishes, which no reader asked for, is released at
// the loop's first admin tick: a director nobody reads holds none from
// its start.
func TestNeverReadSnapshotIsReleasedAtOnce(t *testing.T) {
	h, _ := startAdmin(t, testConfig("quiesce", newBackend(t)), ipvs.NewMemory(), nil)
	e := h.engine
	poll(t, "the snapshot New published released", func() bool { return e.snapshot.Load().released != nil })
	waitReady(t, e)
}

// A stopped engine's snapshot is never released: Snapshot returns it
// without a loop to ask.
func TestStoppedEngineKeepsItsSnapshot(t *testing.T) {
	cfg := testConfig("quiesce", &backend{addr: netip.MustParseAddrPort("127.0.0.1:1")})
	e, err := New(cfg, Options{Table: ipvs.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	e.releaseUnread(time.Now().Add(2 * snapshotKeep))
	if st := e.Snapshot(); st.released != nil || len(st.VirtualServers) != 1 {
		t.Errorf("a stopped engine's snapshot was released: %+v", st)
	}
}
