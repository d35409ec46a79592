//go:build linux

package guest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The director's kernel counters against two independent readers of the
// same kernel: Debian's prometheus-node-exporter (its ipvs collector reads
// /proc/net/ip_vs and /proc/net/ip_vs_stats) and ipvsadm --stats (netlink,
// libnl). node_exporter reports, per real server, active and inactive
// connections and the weight, and for the whole kernel connections,
// packets and bytes; ipvsadm reports connections, packets and bytes per
// service and per real server.

const nodeExporterAddr = "127.0.0.1:9100"

// scrape is a /metrics page: each series' value by its name (less a
// prefix) and chosen labels, as one key: `backend_weight{local_address=...}`.
type scrape map[string]float64

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// getScrape reads a /metrics page, keeping the series named by prefix;
// keep lists the labels that make the key (others are dropped, so that
// node_exporter's and the director's series of one destination meet).
func getScrape(url, prefix string, keep []string) (scrape, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := scrape{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sampleRE.FindStringSubmatch(sc.Text())
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		var key []string
		for _, k := range keep {
			if v, ok := labels[k]; ok {
				key = append(key, k+"="+v)
			}
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %v", url, sc.Text(), err)
		}
		out[strings.TrimPrefix(m[1], prefix)+"{"+strings.Join(key, ",")+"}"] = v
	}
	return out, sc.Err()
}

// destLabels are node_exporter's backend labels, which the director's
// series carry too.
var destLabels = []string{"local_address", "local_port", "local_mark", "proto", "remote_address", "remote_port"}

// ipvsadmStats reads `ipvsadm -Ln --stats --exact`: for each service
// ("TCP 10.0.100.1:80") and destination ("TCP 10.0.100.1:80 -> 10.0.11.2:80")
// its connections, packets in and out, bytes in and out.
func ipvsadmStats() (map[string][5]uint64, error) {
	out, err := exec.Command("ipvsadm", "-Ln", "--stats", "--exact").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ipvsadm -Ln --stats --exact: %v: %s", err, out)
	}
	stats := map[string][5]uint64{}
	svc := ""
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var key string
		var nums []string
		switch {
		case len(f) == 7 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM"):
			svc = f[0] + " " + f[1]
			key, nums = svc, f[2:]
		case len(f) == 7 && f[0] == "->" && svc != "":
			key, nums = svc+" -> "+f[1], f[2:]
		default:
			continue
		}
		var v [5]uint64
		for i, n := range nums {
			if v[i], err = strconv.ParseUint(n, 10, 64); err != nil {
				return nil, fmt.Errorf("ipvsadm line %q: %v", line, err)
			}
		}
		stats[key] = v
	}
	return stats, nil
}

// counterNames are the director's names for ipvsadm's five columns.
var counterNames = [5]string{"connections_total", "incoming_packets_total", "outgoing_packets_total", "incoming_bytes_total", "outgoing_bytes_total"}

// settled waits until node_exporter's kernel-wide totals stop moving: the
// kernel folds its per-CPU counters into what /proc and netlink show
// every 2 s, so a reading right after traffic can still change.
func settled(t *testing.T) scrape {
	t.Helper()
	var last scrape
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := getScrape("http://"+nodeExporterAddr+"/metrics", "node_ipvs_", destLabels)
		if err != nil {
			t.Fatal(err)
		}
		if last != nil && maps.Equal(cur, last) && len(cur) > 0 {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatalf("node_exporter's IPVS totals kept changing for 30 s after the traffic stopped: %v", cur)
		}
		last = cur
		time.Sleep(2100 * time.Millisecond) // just past the kernel's 2 s
	}
}

// 18. The director's kernel statistics equal node_exporter's and
// ipvsadm's for the same kernel, read after the traffic stopped.
func Test18CountersMatchNodeExporter(t *testing.T) {
	guest(t)
	bin, err := exec.LookPath("node_exporter")
	if err != nil {
		t.Fatalf("node_exporter (Debian's prometheus-node-exporter) is not in the guest: %v", err)
	}
	ne := exec.Command(bin, "--web.listen-address="+nodeExporterAddr, "--collector.disable-defaults", "--collector.ipvs", "--log.level=warn")
	ne.Stdout, ne.Stderr = os.Stderr, os.Stderr
	if err := ne.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ne.Process.Signal(syscall.SIGTERM); ne.Wait() })
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if _, err := getScrape("http://"+nodeExporterAddr+"/metrics", "node_ipvs_", nil); err == nil {
			break
		} else if time.Since(start) > slack {
			t.Fatalf("node_exporter did not answer within %v: %v", slack, err)
		}
	}

	const vip1, vip2 = "10.0.100.18:80", "10.0.100.19:80"
	d := startDirector(t, directorConfig("30s", "keep",
		webVS("counters1", vip1, "wrr", "", rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2"),
		webVS("counters2", vip2, "rr", "", rs(3).addr4(80)+" 1")))
	waitTable(t, upWithin(), "both services up", func(tb table) error {
		if err := dests("TCP "+vip1, "wrr", masq(rs(1), 1), masq(rs(2), 2))(tb); err != nil {
			return err
		}
		return dests("TCP "+vip2, "rr", masq(rs(3), 1))(tb)
	})
	d.waitReady()

	before := settled(t)
	beforeDirector, err := getScrape("http://"+metricsAddr+"/metrics", "director_ipvs_service_", destLabels)
	if err != nil {
		t.Fatal(err)
	}
	const n1, n2 = 20, 8
	served(t, "http://10.0.100.18/", n1, []string{"rs1", "rs2"}, "rs1", "rs2")
	served(t, "http://10.0.100.19/", n2, []string{"rs3"}, "rs3")

	// Read the three views of one settled kernel; if node_exporter's
	// totals moved while the others were read, read again.
	var node, dir scrape
	var adm map[string][5]uint64
	for attempt := 0; ; attempt++ {
		node = settled(t)
		if dir, err = getScrape("http://"+metricsAddr+"/metrics", "director_ipvs_", destLabels); err != nil {
			t.Fatal(err)
		}
		if adm, err = ipvsadmStats(); err != nil {
			t.Fatal(err)
		}
		again, err := getScrape("http://"+nodeExporterAddr+"/metrics", "node_ipvs_", destLabels)
		if err != nil {
			t.Fatal(err)
		}
		if maps.Equal(again, node) {
			break
		}
		if attempt == 3 {
			t.Fatalf("node_exporter's reading changed while the director and ipvsadm were read, 4 times:\n%v\n%v", sorted(node), sorted(again))
		}
	}

	// Per real server: active and inactive connections and the weight,
	// node_exporter's and the director's, series for series.
	nodeDests, dirDests := scrape{}, scrape{}
	for k, v := range node {
		if strings.HasPrefix(k, "backend_") {
			nodeDests[k] = v
		}
	}
	for _, name := range []string{"connections_active", "connections_inactive", "weight"} {
		for k, v := range dir {
			if strings.HasPrefix(k, "backend_"+name+"{") {
				dirDests[k] = v
			}
		}
	}
	if len(nodeDests) != 9 || !maps.Equal(nodeDests, dirDests) {
		t.Errorf("per real server, node_exporter and the director differ (want 3 series for each of 3 real servers):\nnode_exporter: %v\ndirector:      %v",
			sorted(nodeDests), sorted(dirDests))
	}

	// Kernel-wide: what node_exporter counted since before the traffic
	// is what the director's services counted. (Earlier scenarios'
	// services are gone, with their counts; the kernel's totals keep them.)
	for _, c := range counterNames {
		var dirDelta float64
		for k, v := range dir {
			if strings.HasPrefix(k, "service_"+c+"{") {
				dirDelta += v - beforeDirector[strings.TrimPrefix(k, "service_")]
			}
		}
		nodeDelta := node[c+"{}"] - before[c+"{}"]
		if nodeDelta != dirDelta || nodeDelta <= 0 {
			t.Errorf("%s since before the traffic: node_exporter %v, the director's services %v", c, nodeDelta, dirDelta)
		}
	}
	// The client may open a connection more than it sends requests (a
	// kept-alive one the server closed is dialled again); never fewer.
	if got := node["connections_total{}"] - before["connections_total{}"]; got < float64(n1+n2) || got > float64(n1+n2)+2 {
		t.Errorf("node_exporter counted %v new connections, want the %d requests made (one connection each, a retried dial or two at most)", got, n1+n2)
	}

	// Per service and per real server: connections, packets and bytes,
	// ipvsadm's and the director's.
	checked := 0
	for key, want := range adm {
		var prefix, labels string
		svc, dest, isDest := strings.Cut(key, " -> ")
		proto, addr, _ := strings.Cut(svc, " ")
		host, port, _ := strings.Cut(addr, ":")
		if isDest {
			rhost, rport, _ := strings.Cut(dest, ":")
			prefix = "backend_"
			labels = fmt.Sprintf("{local_address=%s,local_port=%s,local_mark=,proto=%s,remote_address=%s,remote_port=%s}", host, port, proto, rhost, rport)
		} else {
			prefix = "service_"
			labels = fmt.Sprintf("{local_address=%s,local_port=%s,local_mark=,proto=%s}", host, port, proto)
		}
		for i, c := range counterNames {
			got, ok := dir[prefix+c+labels]
			if !ok || got != float64(want[i]) {
				t.Errorf("%s %s: ipvsadm %d, the director %v (present %v)", key, c, want[i], got, ok)
			}
			checked++
		}
	}
	if checked != 5*5 { // 2 services, 3 real servers
		t.Errorf("compared %d counters with ipvsadm, want 25 (ipvsadm: %v)", checked, adm)
	}
	t.Logf("kernel counters agree: node_exporter %v; ipvsadm %v", sorted(node), adm)
}

func sorted(s scrape) string {
	keys := slices.Sorted(maps.Keys(s))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s %v", k, s[k])
	}
	return b.String()
}
