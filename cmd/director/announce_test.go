package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/bgptest"
	"github.com/lvsdirector/director/internal/testutil"
)

// The director announces a healthy VIP to its router over BGP and, on
// SIGTERM, withdraws it first and keeps running for withdraw_grace before
// it stops: the router has moved traffic away before anything else stops.
func TestRunAnnouncesAndWithdrawsFirstOnSIGTERM(t *testing.T) {
	router := bgptest.Start(t, slog.New(slog.DiscardHandler))
	backend := okBackend(t)
	cfg := testutil.WriteFile(t, t.TempDir(), "director.toml", fmt.Sprintf(`[director]
listen = "%s"

[announce]
withdraw_grace = "1s"

[bgp]
asn = %d
router_id = "10.255.0.2"
  [[bgp.peer]]
  address = "127.0.0.1"
  port = %d
  asn = %d

[defaults.check]
interval = "200ms"
timeout = "100ms"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
announce = true
  [[virtual_server.real_server]]
  address = "%s"
`, testutil.ClosedPort(t).String(), bgptest.PeerASN, router.Port, bgptest.RouterASN, backend))
	d := startDaemon(t, "run", "-dry-run", "-config", cfg)
	listen := d.waitStarted()
	vip := netip.MustParsePrefix("192.0.2.10/32")
	router.WaitRIB(t, "announced", vip)
	d.waitLog(`msg="VIP announced" vip=192.0.2.10 cause=healthy`)
	_, _, body := testutil.Get(t, "http://"+listen+"/metrics")
	for _, want := range []string{`director_bgp_peer_established{peer="127.0.0.1"} 1`, `director_vip_announced{vip="192.0.2.10"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	var out, errOut strings.Builder
	if code := realMain([]string{"status", "-addr", listen}, &out, &errOut); code != 0 {
		t.Fatalf("director status = %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Announced VIPs:", "192.0.2.10/32", "announced", "bgp peer 127.0.0.1 AS65000 established"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("director status lacks %q:\n%s", want, out.String())
		}
	}

	sent := time.Now()
	d.signal(syscall.SIGTERM)
	withdrawn := router.WaitRIB(t, "withdrawn on SIGTERM")
	d.waitExit()
	exited := time.Now()
	if took := withdrawn.Sub(sent); took > time.Second {
		t.Errorf("the router saw the withdraw %s after SIGTERM, want under 1s", took)
	} else {
		t.Logf("withdraw seen by the router %s after SIGTERM; exit %s after the withdraw", took.Round(time.Millisecond), exited.Sub(withdrawn).Round(time.Millisecond))
	}
	if exited.Sub(withdrawn) < 900*time.Millisecond {
		t.Errorf("the director exited %s after the withdraw, want withdraw_grace (1s) in between", exited.Sub(withdrawn))
	}
	if !strings.Contains(d.logText(), `msg="every VIP withdrawn; waiting for the routers to move traffic away"`) {
		t.Errorf("no withdraw line in the log:\n%s", d.logText())
	}
}
