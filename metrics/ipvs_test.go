package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsdirector/director/ipvs"
)

// failingTable is a table whose reads fail, as netlink does when the
// kernel has no IPVS or the director lacks CAP_NET_ADMIN.
type failingTable struct{ ipvs.Table }

func (failingTable) Services(context.Context) ([]ipvs.ServiceState, error) {
	return nil, errors.New("netlink receive: no such file or directory")
}

func TestIPVSCollectorExportsKernelCounters(t *testing.T) {
	ctx := context.Background()
	mem := ipvs.NewMemory()
	web := ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.10:80"))
	mail := ipvs.FWMarkKey(ipvs.IPv4, 10)
	rs1 := netip.MustParseAddrPort("10.0.0.11:8080")
	rs2 := netip.MustParseAddrPort("10.0.0.21:25")
	for _, err := range []error{
		mem.CreateService(ctx, ipvs.Service{Key: web, Scheduler: "wrr"}),
		mem.CreateDestination(ctx, web, ipvs.Destination{Address: rs1, Weight: 100}),
		mem.CreateService(ctx, ipvs.Service{Key: mail, Scheduler: "rr"}),
		mem.CreateDestination(ctx, mail, ipvs.Destination{Address: rs2, Weight: 1, Forwarding: ipvs.DR}),
		mem.SetCounters(web, netip.AddrPort{}, ipvs.Counters{Connections: 7, PacketsIn: 70, PacketsOut: 60, BytesIn: 7000, BytesOut: 90000}),
		mem.SetCounters(web, rs1, ipvs.Counters{Connections: 5, PacketsIn: 50, PacketsOut: 40, BytesIn: 5000, BytesOut: 80000, ActiveConns: 3, InactiveConns: 2, PersistentConns: 1}),
		mem.SetCounters(mail, rs2, ipvs.Counters{Connections: 4, ActiveConns: 1}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Only "web" is the director's; the fwmark service was added by hand.
	names := func() map[ipvs.ServiceKey]string { return map[ipvs.ServiceKey]string{web: "web"} }
	c := NewIPVSCollector(mem, names, time.Second, slog.New(slog.DiscardHandler))

	want := `
# HELP director_ipvs_up 1 when the last scrape read the IPVS table, 0 when the read failed.
# TYPE director_ipvs_up gauge
director_ipvs_up 1
# HELP director_ipvs_scrape_errors_total Scrapes whose read of the IPVS table failed.
# TYPE director_ipvs_scrape_errors_total counter
director_ipvs_scrape_errors_total 0
# HELP director_ipvs_service_connections_total Connections the kernel scheduled for the virtual service.
# TYPE director_ipvs_service_connections_total counter
director_ipvs_service_connections_total{local_address="",local_mark="0000000A",local_port="0",proto="FWM",virtual_server=""} 0
director_ipvs_service_connections_total{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",virtual_server="web"} 7
# HELP director_ipvs_service_outgoing_bytes_total Bytes out of the virtual service.
# TYPE director_ipvs_service_outgoing_bytes_total counter
director_ipvs_service_outgoing_bytes_total{local_address="",local_mark="0000000A",local_port="0",proto="FWM",virtual_server=""} 0
director_ipvs_service_outgoing_bytes_total{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",virtual_server="web"} 90000
# HELP director_ipvs_backend_connections_active Active (established) connections to the real server.
# TYPE director_ipvs_backend_connections_active gauge
director_ipvs_backend_connections_active{local_address="",local_mark="0000000A",local_port="0",proto="FWM",real_server="10.0.0.21:25",remote_address="10.0.0.21",remote_port="25",virtual_server=""} 1
director_ipvs_backend_connections_active{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",real_server="10.0.0.11:8080",remote_address="10.0.0.11",remote_port="8080",virtual_server="web"} 3
# HELP director_ipvs_backend_connections_inactive Inactive connections (closing, or not yet established) to the real server.
# TYPE director_ipvs_backend_connections_inactive gauge
director_ipvs_backend_connections_inactive{local_address="",local_mark="0000000A",local_port="0",proto="FWM",real_server="10.0.0.21:25",remote_address="10.0.0.21",remote_port="25",virtual_server=""} 0
director_ipvs_backend_connections_inactive{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",real_server="10.0.0.11:8080",remote_address="10.0.0.11",remote_port="8080",virtual_server="web"} 2
# HELP director_ipvs_backend_incoming_bytes_total Bytes to the real server.
# TYPE director_ipvs_backend_incoming_bytes_total counter
director_ipvs_backend_incoming_bytes_total{local_address="",local_mark="0000000A",local_port="0",proto="FWM",real_server="10.0.0.21:25",remote_address="10.0.0.21",remote_port="25",virtual_server=""} 0
director_ipvs_backend_incoming_bytes_total{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",real_server="10.0.0.11:8080",remote_address="10.0.0.11",remote_port="8080",virtual_server="web"} 5000
# HELP director_ipvs_backend_weight The real server's weight in the kernel table.
# TYPE director_ipvs_backend_weight gauge
director_ipvs_backend_weight{local_address="",local_mark="0000000A",local_port="0",proto="FWM",real_server="10.0.0.21:25",remote_address="10.0.0.21",remote_port="25",virtual_server=""} 1
director_ipvs_backend_weight{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",real_server="10.0.0.11:8080",remote_address="10.0.0.11",remote_port="8080",virtual_server="web"} 100
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"director_ipvs_up", "director_ipvs_scrape_errors_total",
		"director_ipvs_service_connections_total", "director_ipvs_service_outgoing_bytes_total",
		"director_ipvs_backend_connections_active", "director_ipvs_backend_connections_inactive",
		"director_ipvs_backend_incoming_bytes_total", "director_ipvs_backend_weight"); err != nil {
		t.Error(err)
	}

	// Counters are read at scrape time: a change in the table shows at once.
	if err := mem.SetCounters(web, rs1, ipvs.Counters{Connections: 9, ActiveConns: 8}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "director_ipvs_backend_connections_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "real_server" && l.GetValue() == rs1.String() && m.Counter.GetValue() != 9 {
					t.Errorf("after SetCounters: connections_total = %v, want 9", m.Counter.GetValue())
				}
			}
		}
	}
}

func TestIPVSCollectorReportsReadErrorsAsMetrics(t *testing.T) {
	c := NewIPVSCollector(failingTable{}, nil, time.Second, slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	for range 2 {
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("a failed table read must not fail the scrape: %v", err)
		}
	}
	want := `
# HELP director_ipvs_up 1 when the last scrape read the IPVS table, 0 when the read failed.
# TYPE director_ipvs_up gauge
director_ipvs_up 0
# HELP director_ipvs_scrape_errors_total Scrapes whose read of the IPVS table failed.
# TYPE director_ipvs_scrape_errors_total counter
director_ipvs_scrape_errors_total 3
`
	// The third scrape is GatherAndCompare's own.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "director_ipvs_up", "director_ipvs_scrape_errors_total"); err != nil {
		t.Error(err)
	}
}

// TestIPVSCollectorServicesOnly: kernel_stats = "services" keeps the
// per-service counters and leaves out every per-real-server series.
func TestIPVSCollectorServicesOnly(t *testing.T) {
	ctx := context.Background()
	mem := ipvs.NewMemory()
	web := ipvs.AddressKey(ipvs.TCP, netip.MustParseAddrPort("192.0.2.10:80"))
	if err := mem.CreateService(ctx, ipvs.Service{Key: web, Scheduler: "wrr"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80)
		if err := mem.CreateDestination(ctx, web, ipvs.Destination{Address: rs, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	c := NewIPVSCollector(mem, nil, time.Second, slog.New(slog.DiscardHandler))
	full := testutil.CollectAndCount(c)
	c.ServicesOnly = true
	if got, want := testutil.CollectAndCount(c), full-3*9; got != want {
		t.Fatalf("services only: %d series, want %d (all %d minus 9 per real server)", got, want, full)
	}
	if n := testutil.CollectAndCount(c, "director_ipvs_backend_weight"); n != 0 {
		t.Fatalf("services only still exports %d backend weights", n)
	}
	if n := testutil.CollectAndCount(c, "director_ipvs_service_connections_total"); n != 1 {
		t.Fatalf("services only exports %d service connection series, want 1", n)
	}
}
