package ipvs

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
)

// Memory is an in-memory Table that behaves like the kernel's: the same
// errors for duplicates, missing entries, unknown schedulers and invalid
// requests, and services read back in their normalized form. It is used by
// `director run -dry-run` and by tests, which can inject failures
// (FailNext, SetFail), count mutating calls (Ops, History) and set
// counters (SetCounters). The zero value is not usable: call NewMemory.
type Memory struct {
	mu       sync.Mutex
	services map[ServiceKey]*memService
	ops      int
	history  []Op
	failNext []injected
	fail     func(Op) error
}

type memService struct {
	svc      Service
	counters Counters
	// dests are sorted by address (netip.AddrPort.Compare of the
	// normalized address) and found by binary search: no allocation and
	// no map entry per destination (a pointer map of them was ~165 bytes
	// a destination, docs/performance.md), and Services copies them as
	// they are. A plan creates and deletes a service's destinations in
	// address order, so an insert is an append at the end.
	dests []DestinationState
}

// find is the index of addr (normalized) in ms.dests, or where it would go.
func (ms *memService) find(addr netip.AddrPort) (int, bool) {
	return slices.BinarySearchFunc(ms.dests, addr, func(d DestinationState, a netip.AddrPort) int { return d.Address.Compare(a) })
}

// insert puts d at i (from find), growing dests by an eighth when full
// rather than doubling: the table holds them for as long as it runs.
func (ms *memService) insert(i int, d DestinationState) {
	if n := len(ms.dests); n == cap(ms.dests) {
		grown := make([]DestinationState, n, n+n/8+1)
		copy(grown, ms.dests)
		ms.dests = grown
	}
	ms.dests = slices.Insert(ms.dests, i, d)
}

// remove deletes the destination at i, giving memory back once dests is
// mostly empty.
func (ms *memService) remove(i int) {
	ms.dests = slices.Delete(ms.dests, i, i+1)
	if n := len(ms.dests); cap(ms.dests) > 16 && n < cap(ms.dests)/4 {
		ms.dests = append(make([]DestinationState, 0, n+n/8+1), ms.dests...)
	}
}

type injected struct {
	kind OpKind
	err  error
}

// NewMemory returns an empty in-memory table.
func NewMemory() *Memory {
	return &Memory{services: make(map[ServiceKey]*memService)}
}

// NewMemoryFrom returns an in-memory table holding states, as read from
// another table: a scratch copy to apply a plan to and read the result back
// without asking the kernel again.
func NewMemoryFrom(states []ServiceState) *Memory {
	m := NewMemory()
	for _, st := range states {
		ms := &memService{svc: st.Service.Normalize(), counters: st.Counters,
			dests: make([]DestinationState, 0, len(st.Destinations))}
		for _, d := range st.Destinations {
			d.Address = normAddrPort(d.Address)
			if i, ok := ms.find(d.Address); ok {
				ms.dests[i] = d // the last of the same address, as before
			} else {
				ms.insert(i, d)
			}
		}
		m.services[ms.svc.Key.Normalize()] = ms
	}
	return m
}

// FailNext makes the next mutating call of the given kind fail with err
// (which should usually wrap one of the sentinel errors) without changing
// the table. Calls queue up: two FailNext calls fail the next two matching
// calls. A kind of zero matches any mutating call.
func (m *Memory) FailNext(kind OpKind, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext = append(m.failNext, injected{kind, err})
}

// SetFail installs a hook called before every mutating call; a non-nil
// error fails the call without changing the table. nil removes the hook.
// The hook is called with the table locked: it must not call back into m.
func (m *Memory) SetFail(f func(Op) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

// Ops returns how many mutating calls were made (failed ones included).
func (m *Memory) Ops() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// History returns the most recent mutating calls (up to a few
// thousand), in order (failed ones included). Delete operations carry only the key / address.
func (m *Memory) History() []Op {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.history)
}

// ResetHistory clears the call counter and history.
func (m *Memory) ResetHistory() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = 0
	m.history = nil
}

// SetCounters sets the counters of a destination, or of the service
// itself when addr is the zero AddrPort.
func (m *Memory) SetCounters(k ServiceKey, addr netip.AddrPort, c Counters) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.services[k.Normalize()]
	if !ok {
		return fmt.Errorf("set counters of %s: %w", k, ErrServiceNotFound)
	}
	if !addr.IsValid() {
		ms.counters = c
		return nil
	}
	i, ok := ms.find(normAddrPort(addr))
	if !ok {
		return fmt.Errorf("set counters of %s in %s: %w", addr, k, ErrDestinationNotFound)
	}
	ms.dests[i].Counters = c
	return nil
}

// Services returns a deep copy of the table, services sorted by key and
// destinations by address, each service's destinations at their number
// (a reader such as the engine keeps the copy).
func (m *Memory) Services(ctx context.Context) ([]ServiceState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ServiceState, 0, len(m.services))
	for _, ms := range m.services {
		st := ServiceState{Service: ms.svc, Counters: ms.counters, Destinations: make([]DestinationState, len(ms.dests))}
		copy(st.Destinations, ms.dests) // sorted already
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ServiceState) int { return a.Key.Compare(b.Key) })
	return out, nil
}

// maxHistory bounds History: tests look at the last few calls, and an
// unbounded list would grow for as long as a -dry-run director runs.
// 1,024 calls are 152 KB, held by every -dry-run director (4,096 grown
// by append were 0.7-0.9 MB; nothing but tests reads them).
const maxHistory = 1024

// begin counts a mutating call and runs the injected failures. m.mu is held.
func (m *Memory) begin(ctx context.Context, op Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.ops++
	// A dry-run director runs for months: keep only the recent calls.
	switch n := len(m.history); {
	case n == maxHistory:
		m.history = slices.Delete(m.history, 0, maxHistory/2)
	case n == cap(m.history): // grown here, never past maxHistory
		m.history = append(make([]Op, 0, min(max(2*n, 16), maxHistory)), m.history...)
	}
	m.history = append(m.history, op)
	for i, f := range m.failNext {
		if f.kind == 0 || f.kind == op.Kind {
			m.failNext = slices.Delete(m.failNext, i, i+1)
			return f.err
		}
	}
	if m.fail != nil {
		return m.fail(op)
	}
	return nil
}

// CreateService adds a service (without destinations).
func (m *Memory) CreateService(ctx context.Context, s Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.createService(ctx, s); err != nil {
		return fmt.Errorf("create service %s: %w", s.Key, err)
	}
	return nil
}

func (m *Memory) createService(ctx context.Context, s Service) error {
	if err := m.begin(ctx, Op{Kind: OpCreateService, Service: s}); err != nil {
		return err
	}
	s = s.Normalize()
	if err := checkKey(s.Key); err != nil {
		return err
	}
	if _, ok := m.services[s.Key]; ok { // the kernel looks the service up before it checks the scheduler
		return ErrServiceExists
	}
	if err := checkScheduler(s.Scheduler); err != nil {
		return err
	}
	m.services[s.Key] = &memService{svc: s}
	return nil
}

// UpdateService replaces the settings of a service.
func (m *Memory) UpdateService(ctx context.Context, s Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.updateService(ctx, s); err != nil {
		return fmt.Errorf("update service %s: %w", s.Key, err)
	}
	return nil
}

func (m *Memory) updateService(ctx context.Context, s Service) error {
	if err := m.begin(ctx, Op{Kind: OpUpdateService, Service: s}); err != nil {
		return err
	}
	s = s.Normalize()
	if err := checkKey(s.Key); err != nil {
		return err
	}
	ms, ok := m.services[s.Key]
	if !ok {
		return ErrServiceNotFound
	}
	if err := checkScheduler(s.Scheduler); err != nil {
		return err
	}
	ms.svc = s
	return nil
}

// DeleteService removes a service and its destinations.
func (m *Memory) DeleteService(ctx context.Context, k ServiceKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.begin(ctx, Op{Kind: OpDeleteService, Service: Service{Key: k}})
	if err == nil {
		nk := k.Normalize()
		if err = checkKey(nk); err == nil {
			if _, ok := m.services[nk]; ok {
				delete(m.services, nk)
			} else {
				err = ErrServiceNotFound
			}
		}
	}
	if err != nil {
		return fmt.Errorf("delete service %s: %w", k, err)
	}
	return nil
}

// CreateDestination adds a destination to a service.
func (m *Memory) CreateDestination(ctx context.Context, k ServiceKey, d Destination) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.setDestination(ctx, OpCreateDestination, k, d); err != nil {
		return fmt.Errorf("create destination %s in %s: %w", d.Address, k, err)
	}
	return nil
}

// UpdateDestination replaces the weight and forwarding of a destination.
func (m *Memory) UpdateDestination(ctx context.Context, k ServiceKey, d Destination) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.setDestination(ctx, OpUpdateDestination, k, d); err != nil {
		return fmt.Errorf("update destination %s in %s: %w", d.Address, k, err)
	}
	return nil
}

// setDestination creates or updates a destination, making the kernel's
// checks in the kernel's order, which decides the error when several apply.
func (m *Memory) setDestination(ctx context.Context, kind OpKind, k ServiceKey, d Destination) error {
	if err := m.begin(ctx, Op{Kind: kind, Service: Service{Key: k}, Destination: d}); err != nil {
		return err
	}
	ms, err := m.serviceOf(k, d)
	if err != nil {
		return err
	}
	d.Address = normAddrPort(d.Address)
	if FamilyOf(d.Address.Addr()) != ms.svc.Key.Family && d.Forwarding != TUN {
		return fmt.Errorf("%w: %s destination in %s service needs tun forwarding", ErrInvalid, FamilyOf(d.Address.Addr()), ms.svc.Key.Family)
	}
	if d.Weight > math.MaxInt32 {
		return fmt.Errorf("%w: weight %d is above %d", ErrInvalid, d.Weight, math.MaxInt32)
	}
	if d.Tunnel.Type == TunnelGUE && d.Tunnel.Port == 0 {
		return fmt.Errorf("%w: GUE tunnel without a port", ErrInvalid)
	}
	i, ok := ms.find(d.Address)
	switch {
	case kind == OpCreateDestination && ok:
		return ErrDestinationExists
	case kind == OpUpdateDestination && !ok:
		return ErrDestinationNotFound
	case ok:
		ms.dests[i].Destination = d
		return nil
	}
	if err := checkRealServerAddress(d.Address.Addr()); err != nil { // only new destinations
		return err
	}
	ms.insert(i, DestinationState{Destination: d})
	return nil
}

// serviceOf checks k and d as a table does before asking the kernel, then
// finds the service. m.mu is held.
func (m *Memory) serviceOf(k ServiceKey, d Destination) (*memService, error) {
	nk := k.Normalize()
	if err := checkKey(nk); err != nil {
		return nil, err
	}
	if err := checkDestination(d); err != nil {
		return nil, err
	}
	ms, ok := m.services[nk]
	if !ok {
		return nil, ErrServiceNotFound
	}
	return ms, nil
}

// DeleteDestination removes a destination from a service.
func (m *Memory) DeleteDestination(ctx context.Context, k ServiceKey, addr netip.AddrPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.begin(ctx, Op{Kind: OpDeleteDestination, Service: Service{Key: k}, Destination: Destination{Address: addr}})
	if err == nil {
		var ms *memService
		if ms, err = m.serviceOf(k, Destination{Address: addr}); err == nil {
			if i, ok := ms.find(normAddrPort(addr)); ok {
				ms.remove(i)
			} else {
				err = ErrDestinationNotFound
			}
		}
	}
	if err != nil {
		return fmt.Errorf("delete destination %s in %s: %w", addr, k, err)
	}
	return nil
}

func normAddrPort(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}

// checkScheduler is the kernel's check of a scheduler name: one it has,
// or "none" (a service that schedules no new connections).
func checkScheduler(name string) error {
	if name != "none" && !KnownScheduler(name) {
		return fmt.Errorf("%w %q", ErrUnknownScheduler, name)
	}
	return nil
}

// checkRealServerAddress is the kernel's check of a new destination's
// address (unmapped): IPv4 must be unicast (not 0.0.0.0, the broadcast
// address or multicast), IPv6 unicast and not link-local. The kernel lets
// a local address through either way; link-local IPv6 is only ever local
// on an interface, which the in-memory table has none of.
func checkRealServerAddress(a netip.Addr) error {
	bad := a.IsUnspecified() || a.IsMulticast()
	if a.Is4() {
		bad = bad || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
	} else {
		bad = bad || a.IsLinkLocalUnicast()
	}
	if bad {
		return fmt.Errorf("%w: %s cannot be a real server", ErrInvalid, a)
	}
	return nil
}
