// Package ipvstest is the contract of ipvs.Table as one list of cases,
// run against any implementation: the in-memory table in the unit tests
// of package ipvs, the kernel's (ipvs.Netlink, in a network namespace of
// its own) inside the e2e VM. A case is a list of calls with the error
// each must give (a sentinel of package ipvs, or none) and the table the
// implementation must read back after them, in the kernel's terms: what
// Linux stores and reports, not what was asked for.
//
// Two sentinels are not reached through a table's calls alone:
// ErrPermission needs a caller without CAP_NET_ADMIN, which only a
// target that has such a view (Target.Unprivileged) can offer, and
// ErrNotSupported is what opening the kernel's table fails with where
// the kernel has no IPVS (tested beside NewNetlink, not here).
package ipvstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// Target is an implementation of ipvs.Table under test.
type Target struct {
	// New returns an empty table of its own for one case.
	New func(t *testing.T) ipvs.Table
	// Unprivileged, when not nil, returns a view of tb whose calls are
	// made by a caller without CAP_NET_ADMIN. Cases that need it are
	// skipped for targets without one.
	Unprivileged func(t *testing.T, tb ipvs.Table) ipvs.Table
	// Parallel runs the cases at once. Not for the kernel's table: its
	// dump of one namespace's services resumes by an index counted over
	// every namespace's, so services changing in another namespace can
	// make a listing repeat or miss one (seen in the e2e VM).
	Parallel bool
}

// Case is one scenario of the contract: Steps run in order on a fresh
// table, or Func when the scenario is more than a list of calls.
type Case struct {
	Name  string
	Steps []Step
	Func  func(t *testing.T, tb ipvs.Table)
}

// Step is one call and what must come of it.
type Step struct {
	// Do is the call: a mutating operation, or a read (Services) when
	// its Kind is zero.
	Do ipvs.Op
	// Err is the error the call must wrap (errors.Is); nil means it
	// must succeed. A failed call must leave the table as it was.
	Err error
	// Want, when not nil, is what Services must read back after the
	// call, in any order (the runner checks the table's own order).
	Want []ipvs.ServiceState
	// Canceled makes the call with a context that is already done.
	Canceled bool
	// Unprivileged makes the call through the target's view without
	// CAP_NET_ADMIN.
	Unprivileged bool
}

// Run runs every case of Cases against target, each as a subtest with a
// table of its own.
func Run(t *testing.T, target Target) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			if target.Parallel {
				t.Parallel()
			}
			tb := target.New(t)
			if c.Func != nil {
				c.Func(t, tb)
				return
			}
			for i, s := range c.Steps {
				runStep(t, target, tb, i, s)
			}
		})
	}
}

// stepTimeout bounds one call: the kernel answers in microseconds, but
// an emulated VM on a busy machine can stall for a while.
const stepTimeout = 30 * time.Second

func runStep(t *testing.T, target Target, tb ipvs.Table, i int, s Step) {
	t.Helper()
	name := fmt.Sprintf("step %d (%s)", i+1, describe(s.Do))
	var before []ipvs.ServiceState
	if s.Err != nil {
		before = Read(t, tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	if s.Canceled {
		cctx, cancelNow := context.WithCancel(ctx)
		cancelNow()
		ctx = cctx
	}
	caller := tb
	if s.Unprivileged {
		if target.Unprivileged == nil {
			t.Skip("this table has no caller without CAP_NET_ADMIN")
		}
		caller = target.Unprivileged(t, tb)
	}
	err := Do(ctx, caller, s.Do)
	switch {
	case s.Err == nil && err != nil:
		t.Fatalf("%s: %v", name, err)
	case s.Err != nil && !errors.Is(err, s.Err):
		t.Fatalf("%s: got error %v, want one that wraps %q", name, err, s.Err)
	case s.Err != nil:
		// Errors say where: the service, and the destination if any.
		if s.Do.Kind != 0 && !strings.Contains(err.Error(), s.Do.Service.Key.String()) {
			t.Errorf("%s: error %q does not name the service %s", name, err, s.Do.Service.Key)
		}
		if isDestinationOp(s.Do.Kind) && !strings.Contains(err.Error(), s.Do.Destination.Address.String()) {
			t.Errorf("%s: error %q does not name the destination %s", name, err, s.Do.Destination.Address)
		}
		if after := Read(t, tb); Format(after) != Format(before) {
			t.Fatalf("%s failed (%v) but changed the table:\nbefore\n%s\nafter\n%s", name, err, Format(before), Format(after))
		}
	}
	if s.Want != nil {
		want := slices.Clone(s.Want)
		slices.SortFunc(want, func(a, b ipvs.ServiceState) int { return a.Key.Compare(b.Key) })
		for i := range want {
			want[i].Destinations = slices.Clone(want[i].Destinations)
			slices.SortFunc(want[i].Destinations, func(a, b ipvs.DestinationState) int { return a.Address.Compare(b.Address) })
		}
		if got := Read(t, tb); Format(got) != Format(want) {
			t.Fatalf("after %s the table reads back\n%s\nwant\n%s", name, Format(got), Format(want))
		}
	}
}

func isDestinationOp(k ipvs.OpKind) bool {
	return k == ipvs.OpCreateDestination || k == ipvs.OpUpdateDestination || k == ipvs.OpDeleteDestination
}

func describe(op ipvs.Op) string {
	if op.Kind == 0 {
		return "list services"
	}
	return op.String()
}

// Do makes the call op stands for; a zero Kind lists the services.
func Do(ctx context.Context, tb ipvs.Table, op ipvs.Op) error {
	switch op.Kind {
	case 0:
		_, err := tb.Services(ctx)
		return err
	case ipvs.OpCreateService:
		return tb.CreateService(ctx, op.Service)
	case ipvs.OpUpdateService:
		return tb.UpdateService(ctx, op.Service)
	case ipvs.OpDeleteService:
		return tb.DeleteService(ctx, op.Service.Key)
	case ipvs.OpCreateDestination:
		return tb.CreateDestination(ctx, op.Service.Key, op.Destination)
	case ipvs.OpUpdateDestination:
		return tb.UpdateDestination(ctx, op.Service.Key, op.Destination)
	case ipvs.OpDeleteDestination:
		return tb.DeleteDestination(ctx, op.Service.Key, op.Destination.Address)
	}
	return fmt.Errorf("ipvstest: no call for %s", op.Kind)
}

// Read lists the table, failing the test on error.
func Read(t *testing.T, tb ipvs.Table) []ipvs.ServiceState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	all, err := tb.Services(ctx)
	if err != nil {
		t.Fatalf("list services: %v", err)
	}
	if all == nil {
		t.Fatal("list services: nil, want an empty list for an empty table")
	}
	return all
}

// Format renders states one line per service and per destination,
// counters included, for comparison and for failure messages.
func Format(states []ipvs.ServiceState) string {
	if len(states) == 0 {
		return "  (empty)\n"
	}
	var b strings.Builder
	for _, s := range states {
		k := s.Key // every field: String leaves some out
		fmt.Fprintf(&b, "  %s %s %s mark %d scheduler %q persistence %s netmask /%d flags %#x counters %+v\n",
			k.Family, k.Protocol, k.Address, k.FWMark, s.Scheduler, s.Persistence, s.PersistenceNetmask, s.SchedulerFlags, s.Counters)
		for _, d := range s.Destinations {
			fmt.Fprintf(&b, "    -> %s %s weight %d tunnel %s counters %+v\n", d.Address, d.Forwarding, d.Weight, d.Tunnel, d.Counters)
		}
	}
	return b.String()
}
