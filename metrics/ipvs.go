package metrics

import (
	"context"
	"fmt"
	"log/slog"
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

	up, scrapeErrors, scrapeDuration *prometheus.Desc

	svcConns, svcPktsIn, svcPktsOut, svcBytesIn, svcBytesOut *prometheus.Desc

	beConns, bePktsIn, bePktsOut, beBytesIn, beBytesOut *prometheus.Desc
	beActive, beInactive, bePersistent, beWeight        *prometheus.Desc
}

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
	svc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("director_ipvs_service_"+name, help, svcLabels, nil)
	}
	be := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("director_ipvs_backend_"+name, help, beLabels, nil)
	}
	return &IPVSCollector{
		table: t, names: names, timeout: timeout, log: log,
		up: prometheus.NewDesc("director_ipvs_up",
			"1 when the last scrape read the IPVS table, 0 when the read failed.", nil, nil),
		scrapeErrors: prometheus.NewDesc("director_ipvs_scrape_errors_total",
			"Scrapes whose read of the IPVS table failed.", nil, nil),
		scrapeDuration: prometheus.NewDesc("director_ipvs_scrape_duration_seconds",
			"Time the scrape's read of the IPVS table took.", nil, nil),

		svcConns:    svc("connections_total", "Connections the kernel scheduled for the virtual service."),
		svcPktsIn:   svc("incoming_packets_total", "Packets into the virtual service."),
		svcPktsOut:  svc("outgoing_packets_total", "Packets out of the virtual service."),
		svcBytesIn:  svc("incoming_bytes_total", "Bytes into the virtual service."),
		svcBytesOut: svc("outgoing_bytes_total", "Bytes out of the virtual service."),

		beConns:      be("connections_total", "Connections the kernel scheduled to the real server."),
		bePktsIn:     be("incoming_packets_total", "Packets to the real server."),
		bePktsOut:    be("outgoing_packets_total", "Packets from the real server."),
		beBytesIn:    be("incoming_bytes_total", "Bytes to the real server."),
		beBytesOut:   be("outgoing_bytes_total", "Bytes from the real server."),
		beActive:     be("connections_active", "Active (established) connections to the real server."),
		beInactive:   be("connections_inactive", "Inactive connections (closing, or not yet established) to the real server."),
		bePersistent: be("connections_persistent", "Persistence templates pointing at the real server."),
		beWeight:     be("weight", "The real server's weight in the kernel table."),
	}
}

// Describe sends every descriptor.
func (c *IPVSCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.up, c.scrapeErrors, c.scrapeDuration,
		c.svcConns, c.svcPktsIn, c.svcPktsOut, c.svcBytesIn, c.svcBytesOut,
		c.beConns, c.bePktsIn, c.bePktsOut, c.beBytesIn, c.beBytesOut,
		c.beActive, c.beInactive, c.bePersistent, c.beWeight,
	} {
		ch <- d
	}
}

// Collect reads the table and sends one set of metrics per service and
// per destination.
func (c *IPVSCollector) Collect(ch chan<- prometheus.Metric) {
	// The Collector interface has no context: the timeout keeps a wedged
	// netlink socket from holding the scrape past Prometheus's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	services, err := c.table.Services(ctx)
	ch <- prometheus.MustNewConstMetric(c.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds())
	if err != nil {
		n := c.errors.Add(1)
		c.log.Warn("metrics: reading the IPVS table for kernel statistics failed; director_ipvs_up is 0", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		ch <- prometheus.MustNewConstMetric(c.scrapeErrors, prometheus.CounterValue, float64(n))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.scrapeErrors, prometheus.CounterValue, float64(c.errors.Load()))

	var names map[ipvs.ServiceKey]string
	if c.names != nil {
		names = c.names()
	}
	counter := func(d *prometheus.Desc, v uint64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels []string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range services {
		key := s.Key.Normalize()
		sl := append([]string{names[key]}, serviceLabels(key)...)
		counter(c.svcConns, s.Counters.Connections, sl)
		counter(c.svcPktsIn, s.Counters.PacketsIn, sl)
		counter(c.svcPktsOut, s.Counters.PacketsOut, sl)
		counter(c.svcBytesIn, s.Counters.BytesIn, sl)
		counter(c.svcBytesOut, s.Counters.BytesOut, sl)
		if c.ServicesOnly {
			continue
		}
		for _, d := range s.Destinations {
			bl := []string{sl[0], d.Address.String()}
			bl = append(bl, sl[1:]...)
			bl = append(bl, d.Address.Addr().String(), strconv.Itoa(int(d.Address.Port())))
			counter(c.beConns, d.Counters.Connections, bl)
			counter(c.bePktsIn, d.Counters.PacketsIn, bl)
			counter(c.bePktsOut, d.Counters.PacketsOut, bl)
			counter(c.beBytesIn, d.Counters.BytesIn, bl)
			counter(c.beBytesOut, d.Counters.BytesOut, bl)
			gauge(c.beActive, float64(d.Counters.ActiveConns), bl)
			gauge(c.beInactive, float64(d.Counters.InactiveConns), bl)
			gauge(c.bePersistent, float64(d.Counters.PersistentConns), bl)
			gauge(c.beWeight, float64(d.Weight), bl)
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
