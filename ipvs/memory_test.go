package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// The in-memory table's behaviour as a table is the contract in
// ipvs/ipvstest (TestMemoryConformance); these tests are of what only it has.

// TestMemorySchedulers: every scheduler name the director knows is
// accepted, twos too, which the conformance suite leaves out because the
// e2e VM's kernel (6.1) predates it.
func TestMemorySchedulers(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	for _, name := range Schedulers {
		if err := m.CreateService(ctx, Service{Key: web, Scheduler: name}); err != nil {
			t.Errorf("scheduler %s: %v", name, err)
		}
		m.DeleteService(ctx, web)
	}
}

func TestMemoryServicesAreSortedDeepCopies(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	for _, k := range []ServiceKey{mark6, tls, web6, web, mark4} {
		if err := m.CreateService(ctx, Service{Key: k, Persistence: 1500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"10.0.0.3:80", "10.0.0.1:80", "10.0.0.2:80"} {
		m.CreateDestination(ctx, web, rs(a, 1))
	}
	got, _ := m.Services(ctx)
	want := []ServiceKey{web, tls, mark4, web6, mark6}
	for i := range want {
		if got[i].Key != want[i] {
			t.Errorf("order %d: %s, want %s", i, got[i].Key, want[i])
		}
	}
	if got[0].Persistence != 2*time.Second {
		t.Errorf("persistence %s", got[0].Persistence)
	}
	ds := got[0].Destinations
	if ds[0].Address.String() != "10.0.0.1:80" || ds[2].Address.String() != "10.0.0.3:80" {
		t.Errorf("destinations not sorted: %+v", ds)
	}
	ds[0].Weight = 99
	got[0].Scheduler = "x"
	again, _ := m.Services(ctx)
	if again[0].Destinations[0].Weight != 1 || again[0].Scheduler != "wlc" {
		t.Error("Services returned shared memory")
	}
}

func TestMemoryHooks(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	boom := errors.New("boom")
	m.FailNext(OpCreateService, boom)
	if err := m.CreateService(ctx, Service{Key: web}); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if got, _ := m.Services(ctx); len(got) != 0 {
		t.Fatal("failed call changed the table")
	}
	if err := m.CreateService(ctx, Service{Key: web}); err != nil {
		t.Fatal(err)
	}
	m.SetFail(func(op Op) error {
		if op.Kind == OpCreateDestination && op.Destination.Weight == 13 {
			return ErrInvalid
		}
		return nil
	})
	if err := m.CreateDestination(ctx, web, rs("10.0.0.1:80", 13)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
	if err := m.CreateDestination(ctx, web, rs("10.0.0.1:80", 12)); err != nil {
		t.Fatal(err)
	}
	m.SetFail(nil)
	if m.Ops() != 4 || len(m.History()) != 4 || m.History()[3].Destination.Weight != 12 {
		t.Errorf("ops %d, history %+v", m.Ops(), m.History())
	}
	m.Services(ctx)
	if m.Ops() != 4 {
		t.Error("reads counted as operations")
	}
	m.ResetHistory()
	if m.Ops() != 0 {
		t.Error("not reset")
	}

	c := Counters{Connections: 5, ActiveConns: 2}
	if err := m.SetCounters(web, netip.MustParseAddrPort("10.0.0.1:80"), c); err != nil {
		t.Fatal(err)
	}
	if err := m.SetCounters(web, netip.AddrPort{}, Counters{BytesIn: 9}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetCounters(tls, netip.AddrPort{}, c); !errors.Is(err, ErrServiceNotFound) {
		t.Errorf("got %v", err)
	}
	if err := m.SetCounters(web, netip.MustParseAddrPort("10.0.0.2:80"), c); !errors.Is(err, ErrDestinationNotFound) {
		t.Errorf("got %v", err)
	}
	got, _ := m.Services(ctx)
	if got[0].Counters.BytesIn != 9 || got[0].Destinations[0].Counters != c {
		t.Errorf("counters: %+v", got[0])
	}
	// Counters survive an update of the destination, as in the kernel.
	m.UpdateDestination(ctx, web, rs("10.0.0.1:80", 3))
	if got, _ := m.Services(ctx); got[0].Destinations[0].Counters != c {
		t.Errorf("counters lost on update")
	}
}

func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			k := AddressKey(TCP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 80))
			for j := range 50 {
				m.CreateService(ctx, Service{Key: k})
				m.CreateDestination(ctx, k, rs("10.0.0.1:80", uint32(j)))
				m.Services(ctx)
				m.DeleteService(ctx, k)
			}
		})
	}
	wg.Wait()
	if m.Ops() != 8*50*3 {
		t.Errorf("ops %d", m.Ops())
	}
}

func TestMemoryHistoryIsBounded(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	k := AddressKey(TCP, netip.MustParseAddrPort("192.0.2.1:80"))
	for i := range 3 * maxHistory {
		if i%2 == 0 {
			m.CreateService(ctx, Service{Key: k, Scheduler: "rr"})
		} else {
			m.DeleteService(ctx, k)
		}
	}
	if n := len(m.History()); n > maxHistory {
		t.Fatalf("history holds %d calls, want at most %d", n, maxHistory)
	}
	if m.Ops() != 3*maxHistory {
		t.Fatalf("Ops = %d, want %d", m.Ops(), 3*maxHistory)
	}
	if last := m.History()[len(m.History())-1]; last.Kind != OpDeleteService {
		t.Fatalf("last call in history is %v, want the most recent (delete service)", last.Kind)
	}
}

func TestNewMemoryFromRoundTrips(t *testing.T) {
	ctx := context.Background()
	src := NewMemory()
	k := AddressKey(TCP, netip.MustParseAddrPort("192.0.2.1:80"))
	if err := src.CreateService(ctx, Service{Key: k, Scheduler: "wrr"}); err != nil {
		t.Fatal(err)
	}
	for i, w := range []uint32{0, 5, 100} {
		d := Destination{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), Weight: w}
		if err := src.CreateDestination(ctx, k, d); err != nil {
			t.Fatal(err)
		}
	}
	src.SetCounters(k, netip.MustParseAddrPort("10.0.0.2:80"), Counters{ActiveConns: 7})
	before, _ := src.Services(ctx)
	copyTable := NewMemoryFrom(before)
	after, _ := copyTable.Services(ctx)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("copy differs:\n%v\n%v", before, after)
	}
	// The copy is independent of the states it was made from.
	copyTable.UpdateDestination(ctx, k, Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 9})
	if again, _ := src.Services(ctx); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatal("changing the copy changed the original")
	}
}
