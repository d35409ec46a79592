package main

import (
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/bgptest"
	"github.com/lvsdirector/director/internal/testutil"
)

// Under -dry-run the director decides as it would, shows the VIP as
// announced and logs each announce and withdraw, but sends its router
// nothing: a director whose table is only in memory must not draw
// traffic. On SIGTERM it withdraws first and keeps running for
// withdraw_grace. (The real session is proven in e2e/guest/bgp_test.go
// and announcer's tests.)
func TestRunDryRunAnnouncesNothing(t *testing.T) {
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
	d.waitLog(`msg="VIP announced" vip=192.0.2.10 cause=healthy`)
	d.waitLog(`msg="dry-run: would announce \(nothing sent\)" announcer=bgp prefix=192.0.2.10/32`)
	_, _, body := testutil.Get(t, "http://"+listen+"/metrics")
	if !strings.Contains(body, `director_vip_announced{vip="192.0.2.10"} 1`) {
		t.Errorf("/metrics lacks director_vip_announced 1")
	}
	time.Sleep(3 * time.Second) // a session would be up by now (connect retry 2s)
	if got := router.RIB(t); len(got) != 0 || router.Updates() != 0 {
		t.Errorf("a dry run sent the router %d updates: %v", router.Updates(), got)
	}

	var out, errOut strings.Builder
	if code := realMain([]string{"status", "-addr", listen}, &out, &errOut); code != 0 {
		t.Fatalf("director status = %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Announced VIPs:", "192.0.2.10/32", "announced"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("director status lacks %q:\n%s", want, out.String())
		}
	}

	d.signal(syscall.SIGTERM)
	d.waitLog(`msg="dry-run: would withdraw \(nothing sent\)" announcer=bgp prefix=192.0.2.10/32`)
	withdrawn := time.Now()
	d.waitExit()
	if took := time.Since(withdrawn); took < 900*time.Millisecond {
		t.Errorf("the director exited %s after the withdraw, want withdraw_grace (1s) in between", took)
	}
	if !strings.Contains(d.logText(), `msg="every VIP withdrawn; waiting for the routers to move traffic away"`) {
		t.Errorf("no withdraw line in the log:\n%s", d.logText())
	}
}
