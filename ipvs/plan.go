package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// OpKind is the kind of one kernel operation in a plan.
type OpKind uint8

const (
	OpCreateService OpKind = iota + 1
	OpUpdateService
	OpCreateDestination
	OpUpdateDestination
	OpDeleteDestination
	OpDeleteService
)

// String names the kind in snake case, for logs and metric labels:
// "create_service", "update_service", "create_destination",
// "update_destination", "delete_destination", "delete_service".
func (k OpKind) String() string {
	switch k {
	case OpCreateService:
		return "create_service"
	case OpUpdateService:
		return "update_service"
	case OpCreateDestination:
		return "create_destination"
	case OpUpdateDestination:
		return "update_destination"
	case OpDeleteDestination:
		return "delete_destination"
	case OpDeleteService:
		return "delete_service"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one kernel operation. Destination is set for destination operations.
type Op struct {
	Kind        OpKind
	Service     Service
	Destination Destination
	// OldService is the service as it was, for OpUpdateService (nil when
	// unknown). OldDestination likewise for OpUpdateDestination. They are
	// only used to describe the change.
	OldService     *Service
	OldDestination *Destination
}

// String describes the operation on one line, in ipvsadm's words:
//
//	add service tcp 192.0.2.10:80 scheduler wlc
//	edit service tcp 192.0.2.10:80 scheduler rr -> wlc
//	add destination 10.0.0.11:8080 in tcp 192.0.2.10:80 forwarding nat weight 100
//	edit destination 10.0.0.11:8080 in tcp 192.0.2.10:80 weight 100 -> 0
//	delete destination 10.0.0.11:8080 in tcp 192.0.2.10:80
//	delete service tcp 192.0.2.10:80
func (o Op) String() string {
	var b strings.Builder
	k := o.Service.Key
	switch o.Kind {
	case OpCreateService:
		fmt.Fprintf(&b, "add service %s", k)
		writeServiceSettings(&b, o.Service)
	case OpUpdateService:
		fmt.Fprintf(&b, "edit service %s", k)
		if o.OldService == nil {
			writeServiceSettings(&b, o.Service)
			break
		}
		old, s := o.OldService.Normalize(), o.Service.Normalize()
		if old.Scheduler != s.Scheduler {
			fmt.Fprintf(&b, " scheduler %s -> %s", old.Scheduler, s.Scheduler)
		}
		if old.Persistence != s.Persistence {
			fmt.Fprintf(&b, " persistent %s -> %s", persistenceText(old), persistenceText(s))
		}
		if old.PersistenceNetmask != s.PersistenceNetmask {
			fmt.Fprintf(&b, " netmask /%d -> /%d", old.PersistenceNetmask, s.PersistenceNetmask)
		}
		if old.SchedulerFlags != s.SchedulerFlags {
			fmt.Fprintf(&b, " flags %s -> %s", flagsText(old), flagsText(s))
		}
		if old.OnePacket != s.OnePacket {
			fmt.Fprintf(&b, " ops %v -> %v", old.OnePacket, s.OnePacket)
		}
	case OpDeleteService:
		fmt.Fprintf(&b, "delete service %s", k)
	case OpCreateDestination:
		fmt.Fprintf(&b, "add destination %s in %s forwarding %s weight %d", o.Destination.Address, k, o.Destination.Forwarding, o.Destination.Weight)
		if o.Destination.Tunnel != (Tunnel{}) {
			fmt.Fprintf(&b, " tunnel %s", o.Destination.Tunnel)
		}
	case OpUpdateDestination:
		d := o.Destination
		fmt.Fprintf(&b, "edit destination %s in %s", d.Address, k)
		if o.OldDestination == nil {
			fmt.Fprintf(&b, " forwarding %s weight %d", d.Forwarding, d.Weight)
			break
		}
		if old := o.OldDestination; old.Forwarding != d.Forwarding {
			fmt.Fprintf(&b, " forwarding %s -> %s", old.Forwarding, d.Forwarding)
		}
		if old := o.OldDestination; old.Weight != d.Weight {
			fmt.Fprintf(&b, " weight %d -> %d", old.Weight, d.Weight)
		}
		if old := o.OldDestination; old.Tunnel != d.Tunnel {
			fmt.Fprintf(&b, " tunnel %s -> %s", old.Tunnel, d.Tunnel)
		}
	case OpDeleteDestination:
		fmt.Fprintf(&b, "delete destination %s in %s", o.Destination.Address, k)
	default:
		fmt.Fprintf(&b, "%s %s", o.Kind, k)
	}
	return b.String()
}

func writeServiceSettings(b *strings.Builder, s Service) {
	s = s.Normalize()
	fmt.Fprintf(b, " scheduler %s", s.Scheduler)
	if s.Persistence > 0 {
		fmt.Fprintf(b, " persistent %s", persistenceText(s))
		if s.PersistenceNetmask != s.Key.Bits() {
			fmt.Fprintf(b, " netmask /%d", s.PersistenceNetmask)
		}
	}
	if s.SchedulerFlags != 0 {
		fmt.Fprintf(b, " flags %s", flagsText(s))
	}
	if s.OnePacket {
		b.WriteString(" ops")
	}
}

func persistenceText(s Service) string {
	if s.Persistence <= 0 {
		return "off"
	}
	return fmt.Sprintf("%ds", persistenceSeconds(s.Persistence))
}

func flagsText(s Service) string {
	if s.SchedulerFlags == 0 {
		return "none"
	}
	names := [3]string{"flag-1", "flag-2", "flag-3"}
	switch s.Scheduler {
	case "sh":
		names = [3]string{"sh-fallback", "sh-port", "flag-3"}
	case "mh":
		names = [3]string{"mh-fallback", "mh-port", "flag-3"}
	}
	var out []string
	for i, n := range names {
		if s.SchedulerFlags&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// DesiredService is a service as the director wants it, with its full set
// of destinations: anything else in that kernel service is removed.
type DesiredService struct {
	Service
	Destinations []Destination
}

// Plan returns the operations that make actual match desired. It is pure.
//
// Only services in desired and in retired are touched: a desired service
// missing from actual is created, one whose scheduler, persistence,
// persistence netmask, scheduler flags or one-packet scheduling differ is updated; inside a
// desired service, destinations not desired are deleted, missing ones
// created, ones whose weight or forwarding differ updated. A retired
// service still in actual (and not desired) is deleted. Anything else in
// actual, such as services created by hand, is left alone.
//
// Comparisons are made on normalized values (see Service.Normalize), and a
// destination the kernel reports as Local (its address is local to the
// director) matches any desired forwarding. When a key or destination
// appears more than once in desired, the first one counts.
//
// The order is deterministic: service creates and updates (by key), then
// for each desired service (by key) its destination deletes, creates and
// updates (each by address), then deletes of retired services (by key).
//
// Maglev (mh) services get their destinations in one canonical order:
// the kernel builds the lookup table walking the destination list, which
// keeps the order they were added in, so two directors with the same set
// pick the same real server for a flow only if they added them in the
// same order. Destinations are created by address; a destination added
// to a live mh service below existing ones has those deleted and created
// again after it (the kernel takes them back from its trash with their
// connections; their packets are dropped for the moment in between).
func Plan(desired []DesiredService, actual []ServiceState, retired []ServiceKey) []Op {
	have := make(map[ServiceKey]*ServiceState, len(actual))
	for i := range actual {
		k := actual[i].Key.Normalize()
		if _, dup := have[k]; !dup {
			have[k] = &actual[i]
		}
	}

	want := make([]DesiredService, 0, len(desired))
	wanted := make(map[ServiceKey]bool, len(desired))
	for _, ds := range desired {
		ds.Service = ds.Service.Normalize()
		if wanted[ds.Key] {
			continue
		}
		wanted[ds.Key] = true
		want = append(want, ds)
	}
	slices.SortFunc(want, func(a, b DesiredService) int { return a.Key.Compare(b.Key) })

	var svcOps, destOps []Op
	for _, ds := range want {
		s := ds.Service
		dests := normDestinations(ds.Destinations)
		cur, ok := have[s.Key]
		if !ok {
			svcOps = append(svcOps, Op{Kind: OpCreateService, Service: s})
			for _, d := range dests {
				destOps = append(destOps, Op{Kind: OpCreateDestination, Service: s, Destination: d})
			}
			continue
		}
		if old := cur.Service.Normalize(); !sameService(old, s) {
			svcOps = append(svcOps, Op{Kind: OpUpdateService, Service: s, OldService: &old})
		}

		got := make(map[netip.AddrPort]Destination, len(cur.Destinations))
		for _, d := range cur.Destinations {
			got[normAddrPort(d.Address)] = d.Destination
		}
		wantAddr := make(map[netip.AddrPort]bool, len(dests))
		for _, d := range dests {
			wantAddr[d.Address] = true
		}
		var deletes []Destination
		for a, d := range got {
			if !wantAddr[a] {
				d.Address = a
				deletes = append(deletes, d)
			}
		}
		readd := map[netip.AddrPort]bool{}
		if s.Scheduler == "mh" {
			readd = reorderMH(dests, got)
			for _, d := range dests {
				if readd[d.Address] {
					g := got[d.Address]
					g.Address = d.Address
					deletes = append(deletes, g)
				}
			}
		}
		slices.SortFunc(deletes, func(a, b Destination) int { return a.Address.Compare(b.Address) })
		for _, d := range deletes {
			destOps = append(destOps, Op{Kind: OpDeleteDestination, Service: s, Destination: d})
		}
		for _, d := range dests {
			if _, ok := got[d.Address]; !ok || readd[d.Address] {
				destOps = append(destOps, Op{Kind: OpCreateDestination, Service: s, Destination: d})
			}
		}
		for _, d := range dests {
			if old, ok := got[d.Address]; ok && !readd[d.Address] && !sameDestination(old, d) {
				old.Address = d.Address
				destOps = append(destOps, Op{Kind: OpUpdateDestination, Service: s, Destination: d, OldDestination: &old})
			}
		}
	}

	var retOps []Op
	gone := make(map[ServiceKey]bool, len(retired))
	for _, k := range retired {
		k = k.Normalize()
		if wanted[k] || gone[k] {
			continue
		}
		if cur, ok := have[k]; ok {
			gone[k] = true
			retOps = append(retOps, Op{Kind: OpDeleteService, Service: cur.Service.Normalize()})
		}
	}
	slices.SortFunc(retOps, func(a, b Op) int { return a.Service.Key.Compare(b.Service.Key) })

	ops := make([]Op, 0, len(svcOps)+len(destOps)+len(retOps))
	ops = append(ops, svcOps...)
	ops = append(ops, destOps...)
	return append(ops, retOps...)
}

// reorderMH returns the destinations of a live mh service that must be
// deleted and created again so that the list stays in address order:
// those kept (in got and in dests) above the lowest one being added.
func reorderMH(dests []Destination, got map[netip.AddrPort]Destination) map[netip.AddrPort]bool {
	var lowest netip.AddrPort
	for _, d := range dests { // sorted: the first new one is the lowest
		if _, ok := got[d.Address]; !ok {
			lowest = d.Address
			break
		}
	}
	out := map[netip.AddrPort]bool{}
	if !lowest.IsValid() {
		return out
	}
	for _, d := range dests {
		if _, ok := got[d.Address]; ok && d.Address.Compare(lowest) > 0 {
			out[d.Address] = true
		}
	}
	return out
}

// normDestinations returns ds with addresses normalized, the first of
// duplicates kept, sorted by address.
func normDestinations(ds []Destination) []Destination {
	out := make([]Destination, 0, len(ds))
	for _, d := range ds {
		d.Address = normAddrPort(d.Address)
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b Destination) int { return a.Address.Compare(b.Address) })
	return slices.CompactFunc(out, func(a, b Destination) bool { return a.Address == b.Address })
}

func sameService(a, b Service) bool {
	return a.Scheduler == b.Scheduler && a.Persistence == b.Persistence &&
		a.PersistenceNetmask == b.PersistenceNetmask && a.SchedulerFlags == b.SchedulerFlags && a.OnePacket == b.OnePacket
}

// sameDestination compares an actual destination with a desired one. The
// kernel reports destinations whose address is local as Local whatever
// was configured, so Local matches anything.
func sameDestination(got, want Destination) bool {
	return got.Weight == want.Weight && (got.Forwarding == want.Forwarding || got.Forwarding == Local) && got.Tunnel == want.Tunnel
}

// ErrSkipped is the cause of an OpError for a destination operation that
// Apply did not attempt because creating its service had failed.
var ErrSkipped = errors.New("ipvs: skipped because its service could not be created")

// OpError is an error from one operation of a plan.
type OpError struct {
	Op  Op
	Err error
}

func (e *OpError) Error() string { return e.Op.String() + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// StoppedError says Apply stopped early because its context ended.
type StoppedError struct {
	Remaining, Total int // operations not attempted, of all
	Err              error
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("ipvs: %d of %d operations not applied: %v", e.Remaining, e.Total, e.Err)
}
func (e *StoppedError) Unwrap() error { return e.Err }

// Apply carries out ops in order against t. It keeps going after a
// failure and returns one *OpError per failed operation (nil when all
// succeeded). It tolerates tables changed behind its back: a create that
// finds the entry exists becomes an update, an update that finds it
// missing becomes a create, a delete of something already gone succeeds.
// Destination operations of a service whose creation failed are skipped
// (ErrSkipped). When ctx ends, Apply stops and adds one error saying how
// many operations were not attempted (*StoppedError).
func Apply(ctx context.Context, t Table, ops []Op) []error {
	var errs []error
	var failed map[ServiceKey]bool
	for i, op := range ops {
		if err := ctx.Err(); err != nil {
			errs = append(errs, &StoppedError{Remaining: len(ops) - i, Total: len(ops), Err: err})
			break
		}
		k := op.Service.Key.Normalize()
		if failed[k] && (op.Kind == OpCreateDestination || op.Kind == OpUpdateDestination || op.Kind == OpDeleteDestination) {
			errs = append(errs, &OpError{Op: op, Err: ErrSkipped})
			continue
		}
		if err := applyOp(ctx, t, op); err != nil {
			errs = append(errs, &OpError{Op: op, Err: err})
			if op.Kind == OpCreateService {
				if failed == nil {
					failed = make(map[ServiceKey]bool)
				}
				failed[k] = true
			}
		}
	}
	return errs
}

func applyOp(ctx context.Context, t Table, op Op) error {
	k := op.Service.Key
	switch op.Kind {
	case OpCreateService:
		err := t.CreateService(ctx, op.Service)
		if errors.Is(err, ErrServiceExists) {
			err = t.UpdateService(ctx, op.Service)
		}
		return err
	case OpUpdateService:
		err := t.UpdateService(ctx, op.Service)
		if errors.Is(err, ErrServiceNotFound) {
			err = t.CreateService(ctx, op.Service)
		}
		return err
	case OpDeleteService:
		err := t.DeleteService(ctx, k)
		if errors.Is(err, ErrServiceNotFound) {
			err = nil
		}
		return err
	case OpCreateDestination:
		err := t.CreateDestination(ctx, k, op.Destination)
		if errors.Is(err, ErrDestinationExists) {
			err = t.UpdateDestination(ctx, k, op.Destination)
		}
		return err
	case OpUpdateDestination:
		err := t.UpdateDestination(ctx, k, op.Destination)
		if errors.Is(err, ErrDestinationNotFound) {
			err = t.CreateDestination(ctx, k, op.Destination)
		}
		return err
	case OpDeleteDestination:
		err := t.DeleteDestination(ctx, k, op.Destination.Address)
		if errors.Is(err, ErrDestinationNotFound) || errors.Is(err, ErrServiceNotFound) {
			err = nil
		}
		return err
	}
	return fmt.Errorf("%w: unknown operation %s", ErrInvalid, op.Kind)
}

// Report is the outcome of one Reconcile.
type Report struct {
	Ops    []Op           // the plan
	Errors []error        // from Apply: one per failed operation
	Actual []ServiceState // the table as read before applying
}

// Applied is the number of operations that succeeded.
func (r Report) Applied() int {
	n := len(r.Ops)
	for _, err := range r.Errors {
		var oe *OpError
		var se *StoppedError
		switch {
		case errors.As(err, &oe):
			n--
		case errors.As(err, &se):
			n -= se.Remaining
		}
	}
	if n < 0 {
		n = 0
	}
	return n
}

// Reconcile reads t, plans the operations that make it match desired (and
// remove retired services), and applies them. The error is non-nil only
// when the table could not be read, and then nothing was applied; failed
// operations are listed in Report.Errors.
func Reconcile(ctx context.Context, t Table, desired []DesiredService, retired []ServiceKey) (Report, error) {
	actual, err := t.Services(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read ipvs table: %w", err)
	}
	ops := Plan(desired, actual, retired)
	return Report{Ops: ops, Errors: Apply(ctx, t, ops), Actual: actual}, nil
}
