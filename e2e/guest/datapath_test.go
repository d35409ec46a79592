//go:build linux

package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// 28. A data-path check (datapath = true) probes a DR real server the way
// IPVS delivers a client's packet: addressed to the VIP, sent to the real
// server's MAC address. rs3 holds the plain service's VIP on its lo but
// not the data-path service's, the classic DR misconfiguration: the
// data-path check takes it out while the plain check of the very same
// server keeps it in. With the VIP added it comes in and serves clients;
// with the VIP removed again it goes out again. The same for a TUN real
// server, probed inside IPIP.
func Test28DataPathDR(t *testing.T) {
	guest(t)
	b, tb := rs(3), rs(5)
	const dpVIP, plainVIP, tunVIP = "10.0.100.14", "10.0.100.15", "10.0.100.16"
	// The probe namespace's own address on rs5's segment, for TUN.
	const tunSource = "10.0.15.50"
	// The probe namespace's own address on rs3's segment (10.0.13.0/24).
	const source = "10.0.13.50"
	if err := b.ns.sh("ip addr add " + plainVIP + "/32 dev lo"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.ns.sh("ip addr del " + plainVIP + "/32 dev lo")
		b.ns.sh("ip addr del " + dpVIP + "/32 dev lo 2>/dev/null || true")
		tb.ns.sh("ip addr del " + tunVIP + "/32 dev lo 2>/dev/null || true")
	})
	d := startDirector(t, directorConfig("30s", "keep", fmt.Sprintf(`[[virtual_server]]
name = "datapath"
address = "%s:80"
scheduler = "rr"
forwarding = "dr"
  [virtual_server.check]
  type = "http"
  path = "/healthz"
  expect_body = "ok"
  datapath = true
  source = %q
%s
[[virtual_server]]
name = "plain"
address = "%s:80"
scheduler = "rr"
forwarding = "dr"
%s%s
[[virtual_server]]
name = "tun"
address = "%s:80"
scheduler = "rr"
forwarding = "tun"
  [virtual_server.check]
  type = "tcp"
  datapath = true
  source = %q
%s`, dpVIP, source, reals(b.addr4(80)+" 1"), plainVIP, httpCheck, reals(b.addr4(80)+" 1"),
		tunVIP, tunSource, reals(tb.addr4(80)+" 1"))))

	dp, plain := "TCP "+dpVIP+":80", "TCP "+plainVIP+":80"
	route := func(w int) string { return fmt.Sprintf("%s Route %d", b.addr4(80), w) }
	// The start (building the probe namespace included) gets a slack of
	// its own: under emulation on a busy host the director took 17s to
	// start and its first checks timed out (44s in all once).
	t.Cleanup(func() {
		// What the checks said, for the record of a passing run too.
		for _, line := range strings.Split(d.log.String(), "\n") {
			if strings.Contains(line, "real server") || strings.Contains(line, "datapath") {
				t.Log(line)
			}
		}
	})
	waitTable(t, upWithin()+4*slack, "the plain check keeps rs3 in", dests(plain, "rr", route(1)))
	waitLog(t, d, "virtual_server=datapath real_server="+b.addr4(80)+` from=unknown reason="datapath: no answer for VIP"`)
	waitTable(t, time.Second, "the data-path check keeps rs3 out", func(tb table) error {
		if err := dests(dp, "rr", route(0))(tb); err != nil {
			return err
		}
		return dests(plain, "rr", route(1))(tb)
	})
	served(t, "http://"+plainVIP+"/", 5, []string{"rs3"}, "rs3")

	// Nothing of the probe namespace shows in the director's own.
	if names := taggedLinks(t); len(names) > 0 {
		t.Errorf("links tagged director-datapath in the director's namespace: %v", names)
	}

	if err := b.ns.sh("ip addr add " + dpVIP + "/32 dev lo"); err != nil {
		t.Fatal(err)
	}
	waitTable(t, upWithin(), "with the VIP on its lo, the data-path check takes rs3 in", dests(dp, "rr", route(1)))
	served(t, "http://"+dpVIP+"/", 5, []string{"rs3"}, "rs3")

	if err := b.ns.sh("ip addr del " + dpVIP + "/32 dev lo"); err != nil {
		t.Fatal(err)
	}
	waitTable(t, downWithin(), "without it again, the data-path check takes rs3 out", func(tb table) error {
		if err := dests(dp, "rr", route(0))(tb); err != nil {
			return err
		}
		return dests(plain, "rr", route(1))(tb)
	})

	// TUN: the probe goes inside an IPIP packet to rs5, which takes it
	// off tunl0 only when it holds the VIP.
	t.Run("tun", func(t *testing.T) {
		tun := "TCP " + tunVIP + ":80"
		tunnel := func(w int) string { return fmt.Sprintf("%s Tunnel %d", tb.addr4(80), w) }
		waitLog(t, d, "virtual_server=tun real_server="+tb.addr4(80)+` from=unknown reason="datapath: no answer for VIP"`)
		waitTable(t, time.Second, "without the VIP, the data-path check keeps rs5 out", dests(tun, "rr", tunnel(0)))
		if err := tb.ns.sh("ip addr add " + tunVIP + "/32 dev lo"); err != nil {
			t.Fatal(err)
		}
		waitTable(t, upWithin(), "with the VIP on its lo, the data-path check takes rs5 in", dests(tun, "rr", tunnel(1)))
		served(t, "http://"+tunVIP+"/", 5, []string{"rs5"}, "rs5")
	})
}

// taggedLinks lists the links of the test's namespace (the director's)
// whose alias is the data path's tag.
func taggedLinks(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join("/sys/class/net", e.Name(), "ifalias"))
		if strings.TrimSpace(string(b)) == "director-datapath" {
			names = append(names, e.Name())
		}
	}
	return names
}
