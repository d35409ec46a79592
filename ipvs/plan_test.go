package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	vip   = netip.MustParseAddrPort("192.0.2.10:80")
	vip2  = netip.MustParseAddrPort("192.0.2.11:443")
	vip6  = netip.MustParseAddrPort("[2001:db8::10]:80")
	web   = AddressKey(TCP, vip)
	tls   = AddressKey(TCP, vip2)
	web6  = AddressKey(TCP, vip6)
	mark4 = FWMarkKey(IPv4, 10)
	mark6 = FWMarkKey(IPv6, 10)
)

func rs(s string, w uint32) Destination {
	return Destination{Address: netip.MustParseAddrPort(s), Weight: w}
}

func desiredSvc(k ServiceKey, sched string, ds ...Destination) DesiredService {
	return DesiredService{Service: Service{Key: k, Scheduler: sched}, Destinations: ds}
}

// stateOf turns a desired table into what a table reads back.
func stateOf(ds ...DesiredService) []ServiceState {
	var out []ServiceState
	for _, d := range ds {
		st := ServiceState{Service: d.Service.Normalize()}
		for _, x := range d.Destinations {
			st.Destinations = append(st.Destinations, DestinationState{Destination: x})
		}
		out = append(out, st)
	}
	return out
}

func opStrings(ops []Op) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.String()
	}
	return out
}

func TestPlan(t *testing.T) {
	base := desiredSvc(web, "wlc", rs("10.0.0.1:8080", 100), rs("10.0.0.2:8080", 100))
	tests := []struct {
		name    string
		desired []DesiredService
		actual  []ServiceState
		retired []ServiceKey
		want    []string
	}{
		{
			name:    "empty to full",
			desired: []DesiredService{base},
			want: []string{
				"add service tcp 192.0.2.10:80 scheduler wlc",
				"add destination 10.0.0.1:8080 in tcp 192.0.2.10:80 forwarding nat weight 100",
				"add destination 10.0.0.2:8080 in tcp 192.0.2.10:80 forwarding nat weight 100",
			},
		},
		{
			name:    "unchanged",
			desired: []DesiredService{base},
			actual:  stateOf(base),
		},
		{
			name: "a tunnel's encapsulation is set, and changed like a weight",
			desired: []DesiredService{desiredSvc(web, "wlc",
				Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 1, Forwarding: TUN, Tunnel: Tunnel{Type: TunnelGUE, Port: 6080, Flags: TunnelCsum}},
				Destination{Address: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 1, Forwarding: TUN, Tunnel: Tunnel{Type: TunnelGRE}})},
			actual: stateOf(desiredSvc(web, "wlc",
				Destination{Address: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 1, Forwarding: TUN})),
			want: []string{
				"add destination 10.0.0.2:80 in tcp 192.0.2.10:80 forwarding tun weight 1 tunnel gre",
				"edit destination 10.0.0.1:80 in tcp 192.0.2.10:80 tunnel ipip -> gue port 6080 csum",
			},
		},
		{
			name:    "mh: a destination added below existing ones has them added again after it",
			desired: []DesiredService{desiredSvc(web, "mh", rs("10.0.0.1:8080", 1), rs("10.0.0.2:8080", 1), rs("10.0.0.3:8080", 0), rs("10.0.0.4:8080", 1))},
			actual:  stateOf(desiredSvc(web, "mh", rs("10.0.0.1:8080", 1), rs("10.0.0.3:8080", 1), rs("10.0.0.4:8080", 1))),
			want: []string{
				"delete destination 10.0.0.3:8080 in tcp 192.0.2.10:80",
				"delete destination 10.0.0.4:8080 in tcp 192.0.2.10:80",
				"add destination 10.0.0.2:8080 in tcp 192.0.2.10:80 forwarding nat weight 1",
				"add destination 10.0.0.3:8080 in tcp 192.0.2.10:80 forwarding nat weight 0",
				"add destination 10.0.0.4:8080 in tcp 192.0.2.10:80 forwarding nat weight 1",
			},
		},
		{
			name:    "mh: a destination added above every existing one is only added",
			desired: []DesiredService{desiredSvc(web, "mh", rs("10.0.0.1:8080", 1), rs("10.0.0.2:8080", 1))},
			actual:  stateOf(desiredSvc(web, "mh", rs("10.0.0.1:8080", 1))),
			want:    []string{"add destination 10.0.0.2:8080 in tcp 192.0.2.10:80 forwarding nat weight 1"},
		},
		{
			name:    "other schedulers: added where the kernel puts it",
			desired: []DesiredService{desiredSvc(web, "wlc", rs("10.0.0.1:8080", 1), rs("10.0.0.2:8080", 1))},
			actual:  stateOf(desiredSvc(web, "wlc", rs("10.0.0.2:8080", 1))),
			want:    []string{"add destination 10.0.0.1:8080 in tcp 192.0.2.10:80 forwarding nat weight 1"},
		},
		{
			name:    "one-packet scheduling change",
			desired: []DesiredService{{Service: Service{Key: web, Scheduler: "wlc", OnePacket: true}, Destinations: base.Destinations}},
			actual:  stateOf(base),
			want:    []string{"edit service tcp 192.0.2.10:80 ops false -> true"},
		},

		{
			name:    "unchanged with defaults filled in by the table",
			desired: []DesiredService{desiredSvc(web, "", rs("10.0.0.1:8080", 1))},
			actual:  stateOf(DesiredService{Service: Service{Key: web, Scheduler: "wlc", PersistenceNetmask: 32}, Destinations: []Destination{rs("10.0.0.1:8080", 1)}}),
		},
		{
			name:    "weight change",
			desired: []DesiredService{desiredSvc(web, "wlc", rs("10.0.0.1:8080", 0), rs("10.0.0.2:8080", 100))},
			actual:  stateOf(base),
			want:    []string{"edit destination 10.0.0.1:8080 in tcp 192.0.2.10:80 weight 100 -> 0"},
		},
		{
			name: "forwarding change",
			desired: []DesiredService{{Service: base.Service, Destinations: []Destination{
				{Address: netip.MustParseAddrPort("10.0.0.1:8080"), Weight: 100, Forwarding: DR}, rs("10.0.0.2:8080", 100)}}},
			actual: stateOf(base),
			want:   []string{"edit destination 10.0.0.1:8080 in tcp 192.0.2.10:80 forwarding nat -> dr"},
		},
		{
			name:    "kernel reports a local destination as local",
			desired: []DesiredService{desiredSvc(web, "wlc", Destination{Address: netip.MustParseAddrPort("127.0.0.1:8080"), Weight: 1, Forwarding: DR})},
			actual:  stateOf(desiredSvc(web, "wlc", Destination{Address: netip.MustParseAddrPort("127.0.0.1:8080"), Weight: 1, Forwarding: Local})),
		},
		{
			name:    "scheduler change",
			desired: []DesiredService{desiredSvc(web, "rr", base.Destinations...)},
			actual:  stateOf(base),
			want:    []string{"edit service tcp 192.0.2.10:80 scheduler wlc -> rr"},
		},
		{
			name: "persistence, netmask and flags change",
			desired: []DesiredService{{Service: Service{Key: web, Scheduler: "sh", Persistence: 300 * time.Second, PersistenceNetmask: 24, SchedulerFlags: SHFallback | SHPort},
				Destinations: base.Destinations}},
			actual: stateOf(desiredSvc(web, "sh", base.Destinations...)),
			want:   []string{"edit service tcp 192.0.2.10:80 persistent off -> 300s netmask /32 -> /24 flags none -> sh-fallback,sh-port"},
		},
		{
			name:    "persistence rounds up to whole seconds",
			desired: []DesiredService{{Service: Service{Key: web, Persistence: 1500 * time.Millisecond}}},
			actual:  stateOf(DesiredService{Service: Service{Key: web, Persistence: 2 * time.Second}}),
		},
		{
			name:    "destination removed",
			desired: []DesiredService{desiredSvc(web, "wlc", rs("10.0.0.2:8080", 100))},
			actual:  stateOf(base),
			want:    []string{"delete destination 10.0.0.1:8080 in tcp 192.0.2.10:80"},
		},
		{
			name:    "foreign service untouched",
			desired: []DesiredService{base},
			actual:  stateOf(base, desiredSvc(tls, "rr", rs("10.9.9.9:443", 1))),
		},
		{
			name:    "foreign destination inside a managed service deleted",
			desired: []DesiredService{base},
			actual:  stateOf(desiredSvc(web, "wlc", rs("10.0.0.1:8080", 100), rs("10.0.0.2:8080", 100), rs("10.9.9.9:8080", 5))),
			want:    []string{"delete destination 10.9.9.9:8080 in tcp 192.0.2.10:80"},
		},
		{
			name:    "retired service deleted, missing retired ignored, desired wins over retired",
			desired: []DesiredService{base},
			actual:  stateOf(base, desiredSvc(tls, "rr", rs("10.9.9.9:443", 1))),
			retired: []ServiceKey{tls, web6, web},
			want:    []string{"delete service tcp 192.0.2.11:443"},
		},
		{
			name: "fwmark and ipv6",
			desired: []DesiredService{
				desiredSvc(mark6, "rr", rs("[2001:db8::1]:0", 1)),
				desiredSvc(web6, "rr", rs("[2001:db8::1]:80", 1)),
				desiredSvc(mark4, "rr", rs("10.0.0.1:0", 1)),
			},
			actual: stateOf(desiredSvc(mark4, "rr", rs("10.0.0.2:0", 1))),
			want: []string{
				"add service tcp [2001:db8::10]:80 scheduler rr",
				"add service fwmark 10 ipv6 scheduler rr",
				"delete destination 10.0.0.2:0 in fwmark 10 ipv4",
				"add destination 10.0.0.1:0 in fwmark 10 ipv4 forwarding nat weight 1",
				"add destination [2001:db8::1]:80 in tcp [2001:db8::10]:80 forwarding nat weight 1",
				"add destination [2001:db8::1]:0 in fwmark 10 ipv6 forwarding nat weight 1",
			},
		},
		{
			name: "order: services, then per service deletes creates updates, then retired",
			desired: []DesiredService{
				desiredSvc(tls, "wlc", rs("10.0.1.3:443", 1), rs("10.0.1.1:443", 2)),
				desiredSvc(web, "rr", rs("10.0.0.3:8080", 1), rs("10.0.0.1:8080", 1)),
			},
			actual:  stateOf(base, desiredSvc(web6, "rr")),
			retired: []ServiceKey{web6},
			want: []string{
				"edit service tcp 192.0.2.10:80 scheduler wlc -> rr",
				"add service tcp 192.0.2.11:443 scheduler wlc",
				"delete destination 10.0.0.2:8080 in tcp 192.0.2.10:80",
				"add destination 10.0.0.3:8080 in tcp 192.0.2.10:80 forwarding nat weight 1",
				"edit destination 10.0.0.1:8080 in tcp 192.0.2.10:80 weight 100 -> 1",
				"add destination 10.0.1.1:443 in tcp 192.0.2.11:443 forwarding nat weight 2",
				"add destination 10.0.1.3:443 in tcp 192.0.2.11:443 forwarding nat weight 1",
				"delete service tcp [2001:db8::10]:80",
			},
		},
		{
			name:    "duplicates: first wins",
			desired: []DesiredService{desiredSvc(web, "rr", rs("10.0.0.1:8080", 1), rs("10.0.0.1:8080", 2)), desiredSvc(web, "wlc")},
			want: []string{
				"add service tcp 192.0.2.10:80 scheduler rr",
				"add destination 10.0.0.1:8080 in tcp 192.0.2.10:80 forwarding nat weight 1",
			},
		},
		{
			name:    "ipv4-mapped addresses are the same as ipv4",
			desired: []DesiredService{desiredSvc(ServiceKey{Protocol: TCP, Address: netip.MustParseAddrPort("[::ffff:192.0.2.10]:80")}, "wlc", rs("[::ffff:10.0.0.1]:8080", 100), rs("10.0.0.2:8080", 100))},
			actual:  stateOf(base),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := opStrings(Plan(tt.desired, tt.actual, tt.retired))
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestPlanDoesNotModifyInputs(t *testing.T) {
	desired := []DesiredService{desiredSvc(web, "", rs("10.0.0.2:80", 1), rs("10.0.0.1:80", 1)), desiredSvc(mark4, "rr")}
	actual := stateOf(desiredSvc(web, "wlc", rs("10.0.0.3:80", 1)))
	before := fmt.Sprint(desired, actual)
	Plan(desired, actual, nil)
	if after := fmt.Sprint(desired, actual); after != before {
		t.Errorf("inputs changed:\n%s\n%s", before, after)
	}
}

func TestOpStrings(t *testing.T) {
	s := Service{Key: web, Scheduler: "wlc", Persistence: 5 * time.Minute, PersistenceNetmask: 24}
	d := rs("10.0.0.11:8080", 0)
	for _, tt := range []struct {
		op   Op
		want string
	}{
		{Op{Kind: OpCreateService, Service: s}, "add service tcp 192.0.2.10:80 scheduler wlc persistent 300s netmask /24"},
		{Op{Kind: OpUpdateService, Service: s}, "edit service tcp 192.0.2.10:80 scheduler wlc persistent 300s netmask /24"},
		{Op{Kind: OpDeleteService, Service: Service{Key: mark6}}, "delete service fwmark 10 ipv6"},
		{Op{Kind: OpUpdateDestination, Service: s, Destination: d, OldDestination: &Destination{Address: d.Address, Weight: 100}}, "edit destination 10.0.0.11:8080 in tcp 192.0.2.10:80 weight 100 -> 0"},
		{Op{Kind: OpUpdateDestination, Service: s, Destination: d}, "edit destination 10.0.0.11:8080 in tcp 192.0.2.10:80 forwarding nat weight 0"},
		{Op{Kind: OpDeleteDestination, Service: s, Destination: d}, "delete destination 10.0.0.11:8080 in tcp 192.0.2.10:80"},
		{Op{Kind: OpCreateService, Service: Service{Key: mark4, Scheduler: "mh", SchedulerFlags: MHPort}}, "add service fwmark 10 ipv4 scheduler mh flags mh-port"},
		{Op{Kind: OpCreateService, Service: Service{Key: web, Scheduler: "rr", OnePacket: true}}, "add service tcp 192.0.2.10:80 scheduler rr ops"},
	} {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
	kinds := map[OpKind]string{
		OpCreateService: "create_service", OpUpdateService: "update_service",
		OpCreateDestination: "create_destination", OpUpdateDestination: "update_destination",
		OpDeleteDestination: "delete_destination", OpDeleteService: "delete_service",
	}
	for k, want := range kinds {
		if k.String() != want {
			t.Errorf("%d: got %q, want %q", k, k.String(), want)
		}
	}
}

// sample is a desired table exercising every kind of service.
func sample() []DesiredService {
	return []DesiredService{
		{Service: Service{Key: web, Scheduler: "wlc", Persistence: time.Minute, PersistenceNetmask: 24},
			Destinations: []Destination{rs("10.0.0.1:8080", 100), rs("10.0.0.2:8080", 50)}},
		{Service: Service{Key: AddressKey(UDP, netip.MustParseAddrPort("192.0.2.10:53")), Scheduler: "rr"},
			Destinations: []Destination{{Address: netip.MustParseAddrPort("10.0.0.1:53"), Weight: 1, Forwarding: DR}}},
		{Service: Service{Key: web6, Scheduler: "sh", SchedulerFlags: SHFallback},
			Destinations: []Destination{
				{Address: netip.MustParseAddrPort("[2001:db8::1]:80"), Weight: 1, Forwarding: NAT},
				{Address: netip.MustParseAddrPort("10.0.0.3:80"), Weight: 1, Forwarding: TUN},
			}},
		{Service: Service{Key: mark4, Scheduler: "wrr"},
			Destinations: []Destination{{Address: netip.MustParseAddrPort("10.0.0.1:0"), Weight: 3, Forwarding: TUN}}},
	}
}

func mustReconcile(t *testing.T, tb Table, desired []DesiredService, retired []ServiceKey) Report {
	t.Helper()
	r, err := Reconcile(context.Background(), tb, desired, retired)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return r
}

func TestReconcileConverges(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	if err := m.CreateService(ctx, Service{Key: tls, Scheduler: "rr"}); err != nil { // by hand
		t.Fatal(err)
	}
	r := mustReconcile(t, m, sample(), nil)
	if len(r.Errors) != 0 || len(r.Ops) != 10 || r.Applied() != 10 {
		t.Fatalf("first reconcile: %d ops, %d applied, errors %v", len(r.Ops), r.Applied(), r.Errors)
	}
	if len(r.Actual) != 1 || r.Actual[0].Key != tls {
		t.Errorf("actual before applying: %+v", r.Actual)
	}
	r = mustReconcile(t, m, sample(), nil)
	if len(r.Ops) != 0 {
		t.Fatalf("second reconcile planned %q", opStrings(r.Ops))
	}
	got, _ := m.Services(ctx)
	if len(got) != 5 {
		t.Fatalf("services: %d", len(got))
	}

	// Change a weight, drop a service (retired), the hand-made one stays.
	d := sample()
	d[0].Destinations[1].Weight = 0
	retired := []ServiceKey{d[3].Key}
	d = d[:3]
	m.ResetHistory()
	r = mustReconcile(t, m, d, retired)
	want := []string{
		"edit destination 10.0.0.2:8080 in tcp 192.0.2.10:80 weight 50 -> 0",
		"delete service fwmark 10 ipv4",
	}
	if !reflect.DeepEqual(opStrings(r.Ops), want) || len(r.Errors) != 0 || m.Ops() != 2 {
		t.Fatalf("got %q (errors %v, %d calls), want %q", opStrings(r.Ops), r.Errors, m.Ops(), want)
	}
	if r = mustReconcile(t, m, d, retired); len(r.Ops) != 0 {
		t.Fatalf("planned %q", opStrings(r.Ops))
	}
	got, _ = m.Services(ctx)
	if len(got) != 4 || got[1].Key != tls {
		t.Errorf("table: %+v", got)
	}
}

func TestReconcileFailureIsReportedAndFixedNextTime(t *testing.T) {
	m := NewMemory()
	boom := errors.New("boom")
	m.FailNext(OpCreateDestination, boom)
	r := mustReconcile(t, m, sample(), nil)
	if len(r.Errors) != 1 || !errors.Is(r.Errors[0], boom) || r.Applied() != len(r.Ops)-1 {
		t.Fatalf("errors %v, applied %d of %d", r.Errors, r.Applied(), len(r.Ops))
	}
	var oe *OpError
	if !errors.As(r.Errors[0], &oe) || oe.Op.Kind != OpCreateDestination ||
		!strings.Contains(r.Errors[0].Error(), "add destination 10.0.0.1:8080 in tcp 192.0.2.10:80") {
		t.Errorf("error does not say which op failed: %v", r.Errors[0])
	}
	r = mustReconcile(t, m, sample(), nil)
	if want := []string{"add destination 10.0.0.1:8080 in tcp 192.0.2.10:80 forwarding nat weight 100"}; !reflect.DeepEqual(opStrings(r.Ops), want) || len(r.Errors) != 0 {
		t.Fatalf("got %q, errors %v", opStrings(r.Ops), r.Errors)
	}
	if r = mustReconcile(t, m, sample(), nil); len(r.Ops) != 0 {
		t.Fatalf("planned %q", opStrings(r.Ops))
	}
}

func TestApplySkipsDestinationsOfFailedService(t *testing.T) {
	m := NewMemory()
	d := []DesiredService{desiredSvc(web, "nope", rs("10.0.0.1:80", 1), rs("10.0.0.2:80", 1)), desiredSvc(tls, "rr", rs("10.0.0.1:443", 1))}
	r := mustReconcile(t, m, d, nil)
	if len(r.Errors) != 3 || !errors.Is(r.Errors[0], ErrUnknownScheduler) || !errors.Is(r.Errors[1], ErrSkipped) || !errors.Is(r.Errors[2], ErrSkipped) {
		t.Fatalf("errors: %v", r.Errors)
	}
	if r.Applied() != 2 {
		t.Errorf("applied %d", r.Applied())
	}
	got, _ := m.Services(context.Background())
	if len(got) != 1 || got[0].Key != tls || len(got[0].Destinations) != 1 {
		t.Errorf("table: %+v", got)
	}
}

func TestApplyRaces(t *testing.T) {
	ctx := context.Background()
	s := Service{Key: web, Scheduler: "rr"}
	d := rs("10.0.0.1:80", 5)

	t.Run("create finds service exists: update", func(t *testing.T) {
		m := NewMemory()
		m.CreateService(ctx, Service{Key: web, Scheduler: "wlc"})
		if errs := Apply(ctx, m, []Op{{Kind: OpCreateService, Service: s}}); errs != nil {
			t.Fatal(errs)
		}
		got, _ := m.Services(ctx)
		if got[0].Scheduler != "rr" {
			t.Errorf("scheduler %q", got[0].Scheduler)
		}
	})
	t.Run("update finds service missing: create", func(t *testing.T) {
		m := NewMemory()
		if errs := Apply(ctx, m, []Op{{Kind: OpUpdateService, Service: s}}); errs != nil {
			t.Fatal(errs)
		}
		if got, _ := m.Services(ctx); len(got) != 1 {
			t.Errorf("services %+v", got)
		}
	})
	t.Run("create finds destination exists: update", func(t *testing.T) {
		m := NewMemory()
		m.CreateService(ctx, s)
		m.CreateDestination(ctx, web, rs("10.0.0.1:80", 1))
		if errs := Apply(ctx, m, []Op{{Kind: OpCreateDestination, Service: s, Destination: d}}); errs != nil {
			t.Fatal(errs)
		}
		if got, _ := m.Services(ctx); got[0].Destinations[0].Weight != 5 {
			t.Errorf("destinations %+v", got[0].Destinations)
		}
	})
	t.Run("update finds destination missing: create", func(t *testing.T) {
		m := NewMemory()
		m.CreateService(ctx, s)
		if errs := Apply(ctx, m, []Op{{Kind: OpUpdateDestination, Service: s, Destination: d}}); errs != nil {
			t.Fatal(errs)
		}
		if got, _ := m.Services(ctx); len(got[0].Destinations) != 1 {
			t.Errorf("destinations %+v", got[0].Destinations)
		}
	})
	t.Run("deletes of missing things succeed", func(t *testing.T) {
		m := NewMemory()
		m.CreateService(ctx, s)
		errs := Apply(ctx, m, []Op{
			{Kind: OpDeleteDestination, Service: s, Destination: d},
			{Kind: OpDeleteDestination, Service: Service{Key: tls}, Destination: d},
			{Kind: OpDeleteService, Service: Service{Key: tls}},
		})
		if errs != nil {
			t.Fatal(errs)
		}
	})
	t.Run("other errors are reported", func(t *testing.T) {
		m := NewMemory()
		errs := Apply(ctx, m, []Op{{Kind: OpCreateDestination, Service: s, Destination: d}})
		if len(errs) != 1 || !errors.Is(errs[0], ErrServiceNotFound) {
			t.Fatal(errs)
		}
	})
}

func TestApplyStopsWhenContextEnds(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	m.SetFail(func(Op) error {
		if calls++; calls == 2 {
			cancel()
		}
		return nil
	})
	ops := Plan(sample(), nil, nil)
	errs := Apply(ctx, m, ops)
	var se *StoppedError
	if len(errs) != 1 || !errors.As(errs[0], &se) || se.Remaining != len(ops)-2 || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("errors %v", errs)
	}
	if r := (Report{Ops: ops, Errors: errs}); r.Applied() != 2 {
		t.Errorf("applied %d", r.Applied())
	}
}

func TestReconcileReadFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := NewMemory()
	if _, err := Reconcile(ctx, m, sample(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if m.Ops() != 0 {
		t.Errorf("%d operations after a failed read", m.Ops())
	}
}

func bigTable(n int) []DesiredService {
	var out []DesiredService
	for s := 0; s < n/100; s++ {
		ds := DesiredService{Service: Service{Key: AddressKey(TCP, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(s >> 8), byte(s)}), 80)), Scheduler: "wlc"}}
		for i := 0; i < 100; i++ {
			ds.Destinations = append(ds.Destinations, Destination{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), byte(i)}), 8080), Weight: 1})
		}
		out = append(out, ds)
	}
	return out
}

func TestPlanBigTableUnchanged(t *testing.T) {
	d := bigTable(10000)
	if ops := Plan(d, stateOf(d...), nil); len(ops) != 0 {
		t.Fatalf("%d ops", len(ops))
	}
}

func BenchmarkPlanUnchanged10k(b *testing.B) {
	d := bigTable(10000)
	a := stateOf(d...)
	b.ReportAllocs()
	for b.Loop() {
		if ops := Plan(d, a, nil); len(ops) != 0 {
			b.Fatal(len(ops))
		}
	}
}
