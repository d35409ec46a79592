package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsdirector/director/ipvs"
)

// IPVSCollector reads the IPVS table's counters at scrape time and
// exports them as const metrics: nothing is cached between scrapes, so
// the numbers are the kernel's own. A failed read never fails the scrape;
// it shows as director_ipvs_up 0 and a bump of
// director_ipvs_scrape_errors_total.
//
// Labels: ours (virtual_server, real_server) so the director's own metrics
// join on them, and node_exporter's IPVS collector's (local_address,
// local_port, local_mark, proto, remote_address, remote_port, same
// spelling and values) so dashboards built on node_ipvs_* can join too.
type IPVSCollector struct {
	// ServicesOnly leaves out the per-real-server series (kernel_stats =
	// "services"): at thousands of real servers they are most of a scrape.
	ServicesOnly bool

	table   ipvs.Table
	names   func() map[ipvs.ServiceKey]string
	timeout time.Duration
	log     *slog.Logger
	errors  atomic.Uint64

	families [ipvsFamCount]family
}

// The kernel families, in exposition order.
const (
	ipvsUp = iota
	ipvsScrapeErrors
	ipvsScrapeDuration
	svcConns
	svcPktsIn
	svcPktsOut
	svcBytesIn
	svcBytesOut
	beConns
	bePktsIn
	bePktsOut
	beBytesIn
	beBytesOut
	beActive
	beInactive
	bePersistent
	beWeight
	ipvsFamCount
)

var (
	svcLabels = []string{"virtual_server", "local_address", "local_port", "local_mark", "proto"}
	beLabels  = []string{"virtual_server", "real_server", "local_address", "local_port", "local_mark", "proto", "remote_address", "remote_port"}
)

// NewIPVSCollector returns a collector over t. names maps the services the
// director manages to their config names (the virtual_server label; ""
// for services in the table that the director does not manage); it may be
// nil. Each scrape reads the table once, bounded by timeout.
func NewIPVSCollector(t ipvs.Table, names func() map[ipvs.ServiceKey]string, timeout time.Duration, log *slog.Logger) *IPVSCollector {
	if log == nil {
		log = slog.Default()
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	c := &IPVSCollector{table: t, names: names, timeout: timeout, log: log}
	f := func(i int, name, help string, counter bool, labels []string) {
		c.families[i] = newFamily(name, help, counter, labels)
	}
	f(ipvsUp, "director_ipvs_up", "1 when the last scrape read the IPVS table, 0 when the read failed.", false, nil)
	f(ipvsScrapeErrors, "director_ipvs_scrape_errors_total", "Scrapes whose read of the IPVS table failed.", true, nil)
	f(ipvsScrapeDuration, "director_ipvs_scrape_duration_seconds", "Time the scrape's read of the IPVS table took.", false, nil)
	f(svcConns, "director_ipvs_service_connections_total", "Connections the kernel scheduled for the virtual service.", true, svcLabels)
	f(svcPktsIn, "director_ipvs_service_incoming_packets_total", "Packets into the virtual service.", true, svcLabels)
	f(svcPktsOut, "director_ipvs_service_outgoing_packets_total", "Packets out of the virtual service.", true, svcLabels)
	f(svcBytesIn, "director_ipvs_service_incoming_bytes_total", "Bytes into the virtual service.", true, svcLabels)
	f(svcBytesOut, "director_ipvs_service_outgoing_bytes_total", "Bytes out of the virtual service.", true, svcLabels)
	f(beConns, "director_ipvs_backend_connections_total", "Connections the kernel scheduled to the real server.", true, beLabels)
	f(bePktsIn, "director_ipvs_backend_incoming_packets_total", "Packets to the real server.", true, beLabels)
	f(bePktsOut, "director_ipvs_backend_outgoing_packets_total", "Packets from the real server.", true, beLabels)
	f(beBytesIn, "director_ipvs_backend_incoming_bytes_total", "Bytes to the real server.", true, beLabels)
	f(beBytesOut, "director_ipvs_backend_outgoing_bytes_total", "Bytes from the real server.", true, beLabels)
	f(beActive, "director_ipvs_backend_connections_active", "Active (established) connections to the real server.", false, beLabels)
	f(beInactive, "director_ipvs_backend_connections_inactive", "Inactive connections (closing, or not yet established) to the real server.", false, beLabels)
	f(bePersistent, "director_ipvs_backend_connections_persistent", "Persistence templates pointing at the real server.", false, beLabels)
	f(beWeight, "director_ipvs_backend_weight", "The real server's weight in the kernel table.", false, beLabels)
	return c
}

// Describe sends every descriptor.
func (c *IPVSCollector) Describe(ch chan<- *prometheus.Desc) {
	for i := range c.families {
		ch <- c.families[i].desc
	}
}

// Collect reads the table and sends one set of metrics per service and
// per destination.
func (c *IPVSCollector) Collect(ch chan<- prometheus.Metric) {
	c.each(func(f *family, values []string, v float64) { ch <- f.metric(v, values) })
}

// writeText reads the table and writes its families in the text format,
// sample by sample, without building them in memory first.
func (c *IPVSCollector) writeText(w io.Writer, want func(family string) bool) error {
	t := newTextWriter(w)
	if !slices.ContainsFunc(c.families[:], func(f family) bool { return want(f.name) }) {
		return t.flush() // none asked for: the table is not read
	}
	var last *family
	c.each(func(f *family, values []string, v float64) {
		if !want(f.name) {
			return
		}
		if f != last {
			t.begin()
			last = f
		}
		t.sample(f, values, v)
	})
	return t.flush()
}

// each reads the table once and calls emit for every sample, family by
// family (the text format wants a family's samples together).
func (c *IPVSCollector) each(emit func(f *family, values []string, v float64)) {
	// The Collector interface has no context: the timeout keeps a wedged
	// netlink socket from holding the scrape past Prometheus's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	services, err := c.table.Services(ctx)
	emit(&c.families[ipvsScrapeDuration], nil, time.Since(start).Seconds())
	if err != nil {
		n := c.errors.Add(1)
		c.log.Warn("metrics: reading the IPVS table for kernel statistics failed; director_ipvs_up is 0", "err", err)
		emit(&c.families[ipvsUp], nil, 0)
		emit(&c.families[ipvsScrapeErrors], nil, float64(n))
		return
	}
	emit(&c.families[ipvsUp], nil, 1)
	emit(&c.families[ipvsScrapeErrors], nil, float64(c.errors.Load()))

	var names map[ipvs.ServiceKey]string
	if c.names != nil {
		names = c.names()
	}
	svcValues := func(s ipvs.ServiceState) []string {
		key := s.Key.Normalize()
		return append([]string{names[key]}, serviceLabels(key)...)
	}
	svcFams := []struct {
		fam int
		v   func(ipvs.Counters) uint64
	}{
		{svcConns, func(c ipvs.Counters) uint64 { return c.Connections }},
		{svcPktsIn, func(c ipvs.Counters) uint64 { return c.PacketsIn }},
		{svcPktsOut, func(c ipvs.Counters) uint64 { return c.PacketsOut }},
		{svcBytesIn, func(c ipvs.Counters) uint64 { return c.BytesIn }},
		{svcBytesOut, func(c ipvs.Counters) uint64 { return c.BytesOut }},
	}
	for _, sf := range svcFams {
		for _, s := range services {
			emit(&c.families[sf.fam], svcValues(s), float64(sf.v(s.Counters)))
		}
	}
	if c.ServicesOnly {
		return
	}
	beFams := []struct {
		fam int
		v   func(ipvs.DestinationState) float64
	}{
		{beConns, func(d ipvs.DestinationState) float64 { return float64(d.Counters.Connections) }},
		{bePktsIn, func(d ipvs.DestinationState) float64 { return float64(d.Counters.PacketsIn) }},
		{bePktsOut, func(d ipvs.DestinationState) float64 { return float64(d.Counters.PacketsOut) }},
		{beBytesIn, func(d ipvs.DestinationState) float64 { return float64(d.Counters.BytesIn) }},
		{beBytesOut, func(d ipvs.DestinationState) float64 { return float64(d.Counters.BytesOut) }},
		{beActive, func(d ipvs.DestinationState) float64 { return float64(d.Counters.ActiveConns) }},
		{beInactive, func(d ipvs.DestinationState) float64 { return float64(d.Counters.InactiveConns) }},
		{bePersistent, func(d ipvs.DestinationState) float64 { return float64(d.Counters.PersistentConns) }},
		{beWeight, func(d ipvs.DestinationState) float64 { return float64(d.Weight) }},
	}
	values := make([]string, 0, len(beLabels))
	for _, bf := range beFams {
		for _, s := range services {
			sl := svcValues(s)
			for _, d := range s.Destinations {
				values = append(values[:0], sl[0], d.Address.String())
				values = append(values, sl[1:]...)
				values = append(values, d.Address.Addr().String(), strconv.Itoa(int(d.Address.Port())))
				emit(&c.families[bf.fam], values, bf.v(d))
			}
		}
	}
}

// serviceLabels are node_exporter's labels for a service: local_address,
// local_port, local_mark, proto, with its values: node_exporter reads
// /proc/net/ip_vs, so a fwmark service has an empty address, port "0",
// proto "FWM" and the mark as the 8-digit upper-case hex that file shows;
// an address service has local_mark "" and an upper-case protocol.
func serviceLabels(k ipvs.ServiceKey) []string {
	if k.FWMark != 0 {
		return []string{"", "0", fmt.Sprintf("%08X", k.FWMark), "FWM"}
	}
	return []string{k.Address.Addr().String(), strconv.Itoa(int(k.Address.Port())), "", strings.ToUpper(k.Protocol.String())}
}
