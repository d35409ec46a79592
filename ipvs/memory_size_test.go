package ipvs

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"unsafe"
)

// memoryTableHeap builds the in-memory table a -dry-run director holds
// for services×perService destinations, created as a plan creates them
// (each service's destinations in address order), and returns the live
// heap per destination of the table and of one Services copy (what the
// engine keeps as its read-back of the table).
func memoryTableHeap(t testing.TB, services, perService int) (table, copied float64) {
	t.Helper()
	ctx := context.Background()
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	m := NewMemory()
	for i := range services {
		k := ServiceKey{Family: IPv4, Protocol: TCP, Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80)}
		if err := m.CreateService(ctx, Service{Key: k, Scheduler: "wrr"}); err != nil {
			t.Fatal(err)
		}
		for j := range perService {
			a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(j >> 8), byte(j)}), 8080)
			if err := m.CreateDestination(ctx, k, Destination{Address: a, Weight: 100, Forwarding: NAT}); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.ResetHistory() // its op history is bounded (maxHistory), not per destination
	mid := heap()
	states, err := m.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := heap()
	runtime.KeepAlive(m)
	runtime.KeepAlive(states)
	n := float64(services * perService)
	return float64(mid-before) / n, float64(after-mid) / n
}

// The in-memory table keeps a destination in its service's sorted slice:
// 104 bytes of DestinationState and an eighth of growth at most, no
// allocation or map entry of its own: 130 bytes a destination at 20 a
// service, its service's share included (201 with a map of pointers); a
// Services copy is each service's destinations at their number, 123
// bytes (104 each, the size class and the service's share). The shape
// is the capacity command's and TestMemoryPerRealServer's: 20,000 real
// servers, 20 a virtual server.
func TestMemoryTableHeapPerDestination(t *testing.T) {
	table, copied := memoryTableHeap(t, 1000, 20)
	t.Logf("live heap per destination: table %.0f B, Services copy %.0f B", table, copied)
	if table > 136 {
		t.Errorf("the table holds %.0f bytes a destination, want at most 136", table)
	}
	if copied > 128 {
		t.Errorf("a Services copy holds %.0f bytes a destination, want at most 128", copied)
	}
}

// The op history a -dry-run director holds is maxHistory calls at most,
// in a slice never grown past them: 152 KB.
func TestMemoryHistoryHeldAtItsBound(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	k := AddressKey(TCP, netip.MustParseAddrPort("192.0.2.1:80"))
	for range 3 * maxHistory {
		m.DeleteService(ctx, k) // failed calls are kept too
	}
	if m.Ops() != 3*maxHistory {
		t.Fatalf("Ops = %d, want %d", m.Ops(), 3*maxHistory)
	}
	if held := uintptr(cap(m.history)) * unsafe.Sizeof(Op{}); held > 160<<10 {
		t.Errorf("the op history holds %d bytes (%d calls of room), want at most 160 KiB", held, cap(m.history))
	}
}
