//go:build linux

package guest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The admin overrides and the quorum of issue 5 on the real kernel: the
// write API and the maintenance directory take a real server out and put
// it back, as ipvsadm -Ln and the traffic through the VIP show.

// withDirectorKeys adds keys (TOML lines) to the [director] section of a
// config built by directorConfig.
func withDirectorKeys(cfg, keys string) string {
	head, rest, ok := strings.Cut(cfg, "[director]\n")
	if !ok {
		panic("withDirectorKeys: no [director] section")
	}
	return head + "[director]\n" + keys + "\n" + rest
}

// apiResult is what a write request answered.
type apiResult struct {
	code int
	body string
}

// postAPI makes a write API request with the given token ("" sends no
// Authorization header).
func postAPI(t *testing.T, token, path, body string) apiResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+metricsAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	t.Logf("POST %s: %d in %.0fms", path, resp.StatusCode, time.Since(start).Seconds()*1000)
	return apiResult{resp.StatusCode, string(b)}
}

// getStatus decodes GET /api/v1/status into doc.
func getStatus(t *testing.T, doc any) {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/api/v1/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(doc); err != nil {
		t.Fatalf("status: %v", err)
	}
}

// overrideOf returns the override the status API shows for a real server
// (kind and source; "" when none).
func overrideOf(t *testing.T, vs, rs string) (kind, source string) {
	t.Helper()
	var doc struct {
		VirtualServers []struct {
			Name        string `json:"name"`
			RealServers []struct {
				Address  string `json:"address"`
				Override *struct {
					Kind   string `json:"kind"`
					Source string `json:"source"`
				} `json:"override"`
			} `json:"real_servers"`
		} `json:"virtual_servers"`
	}
	getStatus(t, &doc)
	for _, v := range doc.VirtualServers {
		for _, r := range v.RealServers {
			if v.Name == vs && r.Address == rs && r.Override != nil {
				return r.Override.Kind, r.Override.Source
			}
		}
	}
	return "", ""
}

// 15. Admin overrides through the write API: drain puts a server at
// weight 0 (its established connection goes on, new ones go elsewhere),
// enable gives it its configured weight back, disable deletes it; the
// kernel is changed by the time the request answers. A wrong or missing
// token is 401 and changes nothing. A drain survives a restart.
func Test15AdminAPI(t *testing.T) {
	guest(t)
	const vip = "10.0.100.52:80"
	const svc = "TCP " + vip
	const token = "e2e-token-0123456789abcdef"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDirector(t, withDirectorKeys(
		directorConfig("30s", "keep", webVS("web15", vip, "wrr", "",
			rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2", rs(3).addr4(80)+" 3")),
		fmt.Sprintf("api_token_file = %q\nstate_file = %q\n", tokenFile, filepath.Join(dir, "state.json"))))
	all := dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3))
	waitTable(t, upWithin(), "all three up", all)
	d.waitReady()
	rs2 := "/api/v1/servers/web15/" + rs(2).addr4(80) + "/"
	// now asserts the table as the request answered: no polling.
	now := func(what string, check func(table) error) {
		t.Helper()
		if err := check(mustTable(t)); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	expect := func(r apiResult, code int, what string) {
		t.Helper()
		if r.code != code {
			t.Fatalf("%s: status %d, want %d: %s", what, r.code, code, r.body)
		}
	}

	held := holdConns(t, vip, 6)
	if len(held["rs2"]) == 0 {
		t.Fatalf("no held connection landed on rs2: %v", held)
	}

	// Wrong and missing tokens: 401, nothing changes.
	before := mustTable(t).String()
	expect(postAPI(t, "not-the-token-0123456789", rs2+"disable", `{"reason": "intruder"}`), http.StatusUnauthorized, "wrong token")
	expect(postAPI(t, "", rs2+"drain", `{"reason": "intruder"}`), http.StatusUnauthorized, "no token")
	expect(postAPI(t, token[:len(token)-1], "/api/v1/servers/web15/"+rs(1).addr4(80)+"/disable", `{"reason": "intruder"}`),
		http.StatusUnauthorized, "token cut short")
	time.Sleep(2 * interval)
	if after := mustTable(t).String(); after != before {
		t.Errorf("refused requests changed the table:\nbefore %s\nafter  %s", before, after)
	}
	if kind, _ := overrideOf(t, "web15", rs(2).addr4(80)); kind != "" {
		t.Errorf("after refused requests rs2 has a %s override", kind)
	}

	// drain: weight 0, the held connections go on, new ones avoid it.
	r := postAPI(t, token, rs2+"drain", `{"reason": "e2e: kernel upgrade", "ttl": "1h"}`)
	expect(r, http.StatusOK, "drain")
	if !strings.Contains(r.body, `"kind": "drain"`) {
		t.Errorf("drain answer without the override: %s", r.body)
	}
	now("drained: rs2 at weight 0 when the request answered", dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 0), masq(rs(3), 3)))
	if c, ok := destConns(t, svc, rs(2).addr4(80)); !ok || c.active != len(held["rs2"]) {
		t.Errorf("drained rs2: ActiveConn %d (present %v), want its %d held connections", c.active, ok, len(held["rs2"]))
	}
	served(t, "http://10.0.100.52/", 24, []string{"rs1", "rs3"}, "rs1", "rs3")
	stillServed(t, "rs2 drained", held)
	if kind, source := overrideOf(t, "web15", rs(2).addr4(80)); kind != "drain" || source != "api" {
		t.Errorf("status API: rs2 override %q from %q, want drain from api", kind, source)
	}
	if v, ok := metric(t, "director_real_server_override", map[string]string{"virtual_server": "web15", "real_server": rs(2).addr4(80), "kind": "drain"}); !ok || v != 1 {
		t.Errorf("director_real_server_override{kind=drain} for rs2 = %v (found %v), want 1", v, ok)
	}
	// Checks pass meanwhile: the drain, not health, holds it at 0.
	time.Sleep(3 * interval)
	now("still drained while its checks pass", dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 0), masq(rs(3), 3)))

	// The drain survives a restart: from the state file, at the first
	// reconcile.
	if err := d.stop(); err != nil {
		t.Errorf("director exit on SIGTERM: %v", err)
	}
	d.start()
	d.waitReady()
	now("restarted: rs2 still drained", dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 0), masq(rs(3), 3)))
	time.Sleep(upWithin() - slack + interval) // long enough for rs2's checks to bring it up, were it not drained
	now("restarted, checks run: rs2 still drained", dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 0), masq(rs(3), 3)))
	stillServed(t, "across the restart", held)

	// enable: its configured weight back.
	expect(postAPI(t, token, rs2+"enable", `{"reason": "e2e: done"}`), http.StatusOK, "enable")
	now("enabled: rs2 back at weight 2 when the request answered", all)
	served(t, "http://10.0.100.52/", 24, []string{"rs1", "rs2", "rs3"}, "rs1", "rs2", "rs3")
	if kind, _ := overrideOf(t, "web15", rs(2).addr4(80)); kind != "" {
		t.Errorf("after enable rs2 still has a %s override", kind)
	}
	expect(postAPI(t, token, rs2+"enable", `{"reason": "again"}`), http.StatusConflict, "enable without an override")

	// disable: deleted from the table.
	delete(held, "rs2") // a delete cuts its connections
	expect(postAPI(t, token, rs2+"disable", `{"reason": "e2e: disk failing"}`), http.StatusOK, "disable")
	now("disabled: rs2 gone when the request answered", dests(svc, "wrr", masq(rs(1), 1), masq(rs(3), 3)))
	served(t, "http://10.0.100.52/", 24, []string{"rs1", "rs3"}, "rs1", "rs3")
	time.Sleep(2 * interval)
	now("still disabled while its checks pass", dests(svc, "wrr", masq(rs(1), 1), masq(rs(3), 3)))

	// A wrong token cannot end it either.
	expect(postAPI(t, "not-the-token-0123456789", rs2+"enable", `{"reason": "intruder"}`), http.StatusUnauthorized, "wrong token on enable")
	now("a refused enable changes nothing", dests(svc, "wrr", masq(rs(1), 1), masq(rs(3), 3)))

	expect(postAPI(t, token, rs2+"enable", `{"reason": "e2e: replaced"}`), http.StatusOK, "enable after disable")
	now("enabled after disable: rs2 back at weight 2", all)
	served(t, "http://10.0.100.52/", 24, []string{"rs1", "rs2", "rs3"}, "rs1", "rs2", "rs3")
	stillServed(t, "rs1 and rs3 throughout", held)
}

// 16. The maintenance directory: a file named after a real server takes
// it out of every virtual server (empty: a drain, weight 0), or, in a
// subdirectory named after a virtual server, out of that one only
// ("disable: ..." deletes it); removing the file brings it back.
func Test16MaintenanceDir(t *testing.T) {
	guest(t)
	const vipA, vipB = "10.0.100.53:80", "10.0.100.54:80"
	maint := filepath.Join(t.TempDir(), "maintenance")
	if err := os.Mkdir(maint, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDirector(t, withDirectorKeys(
		directorConfig("30s", "keep",
			webVS("web16", vipA, "rr", "", rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 1"),
			webVS("web16b", vipB, "rr", "", rs(2).addr4(80)+" 1", rs(3).addr4(80)+" 1")),
		fmt.Sprintf("maintenance_dir = %q\n", maint)))
	both := func(a, b func(table) error) func(table) error {
		return func(tb table) error {
			if err := a(tb); err != nil {
				return err
			}
			return b(tb)
		}
	}
	normal := both(dests("TCP "+vipA, "rr", masq(rs(1), 1), masq(rs(2), 1)), dests("TCP "+vipB, "rr", masq(rs(2), 1), masq(rs(3), 1)))
	waitTable(t, upWithin(), "both services up", normal)
	d.waitReady()
	// The directory is read every second.
	within := 2*time.Second + slack

	// rs2, every port, in every virtual server: an empty file, a drain.
	file := filepath.Join(maint, rs(2).ip4.String())
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitTable(t, within, "maintenance file "+rs(2).ip4.String()+": rs2 at weight 0 in both services",
		both(dests("TCP "+vipA, "rr", masq(rs(1), 1), masq(rs(2), 0)), dests("TCP "+vipB, "rr", masq(rs(2), 0), masq(rs(3), 1))))
	served(t, "http://10.0.100.53/", 10, []string{"rs1"}, "rs1")
	served(t, "http://10.0.100.54/", 10, []string{"rs3"}, "rs3")
	if kind, source := overrideOf(t, "web16b", rs(2).addr4(80)); kind != "drain" || source != "maintenance_dir" {
		t.Errorf("status API: rs2 in web16b override %q from %q, want drain from maintenance_dir", kind, source)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitTable(t, within, "maintenance file removed: rs2 back in both", normal)
	served(t, "http://10.0.100.53/", 10, []string{"rs1", "rs2"}, "rs1", "rs2")

	// rs2:80 in web16 only, disabled: deleted there, untouched in web16b.
	if err := os.Mkdir(filepath.Join(maint, "web16"), 0o755); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(maint, "web16", rs(2).addr4(80))
	if err := os.WriteFile(file, []byte("disable: e2e disk swap\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitTable(t, within, "maintenance file web16/"+rs(2).addr4(80)+": rs2 deleted from web16 only",
		both(dests("TCP "+vipA, "rr", masq(rs(1), 1)), dests("TCP "+vipB, "rr", masq(rs(2), 1), masq(rs(3), 1))))
	served(t, "http://10.0.100.53/", 10, []string{"rs1"}, "rs1")
	served(t, "http://10.0.100.54/", 10, []string{"rs2", "rs3"}, "rs2", "rs3")
	if v, ok := metric(t, "director_real_server_override", map[string]string{"virtual_server": "web16", "real_server": rs(2).addr4(80), "kind": "disable"}); !ok || v != 1 {
		t.Errorf("director_real_server_override{kind=disable} for rs2 in web16 = %v (found %v), want 1", v, ok)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitTable(t, within, "maintenance file removed: rs2 back in web16", normal)
	served(t, "http://10.0.100.53/", 10, []string{"rs1", "rs2"}, "rs1", "rs2")
}

// 17. Quorum with a fallback: below quorum - hysteresis the fallback takes
// the new connections and the real servers still up get weight 0; the
// real servers come back only at quorum + hysteresis.
func Test17Quorum(t *testing.T) {
	guest(t)
	const vip = "10.0.100.55:80"
	const svc = "TCP " + vip
	sorry := rs(6)
	// Weights 1, 2, 3 (6 in all); quorum 4 with hysteresis 1: lost below
	// 3, regained at 5.
	startDirector(t, directorConfig("30s", "keep",
		webVS("web17", vip, "wrr", fmt.Sprintf("fallback = %q\nquorum = 4\nhysteresis = 1\n", sorry.addr4(80)),
			rs(1).addr4(80)+" 1", rs(2).addr4(80)+" 2", rs(3).addr4(80)+" 3")))
	waitTable(t, upWithin(), "all up, no fallback", dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3)))
	quorumUp := func(want float64) {
		t.Helper()
		if v, ok := metric(t, "director_virtual_server_quorum_up", map[string]string{"virtual_server": "web17"}); !ok || v != want {
			t.Errorf("director_virtual_server_quorum_up = %v (found %v), want %v", v, ok, want)
		}
	}
	upMetric := func(b *backend) float64 {
		v, _ := metric(t, "director_real_server_up", map[string]string{"virtual_server": "web17", "real_server": b.addr4(80)})
		return v
	}

	// rs3 down: healthy weight 3, not below 4 - 1: quorum holds.
	rs(3).stopHTTP()
	waitTable(t, downWithin(), "rs3 down, healthy weight 3: quorum holds",
		dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 0)))
	quorumUp(1)
	served(t, "http://10.0.100.55/", 12, []string{"rs1", "rs2"}, "rs1", "rs2")

	// rs2 down too: healthy weight 1: quorum lost, the fallback serves and
	// rs1, still up, gets weight 0.
	rs(2).stopHTTP()
	waitTable(t, downWithin(), "rs2 down too, healthy weight 1: fallback in, rs1 at 0",
		dests(svc, "wrr", masq(rs(1), 0), masq(rs(2), 0), masq(rs(3), 0), masq(sorry, 1)))
	quorumUp(0)
	if upMetric(rs(1)) != 1 {
		t.Errorf("rs1 is not up: its weight 0 must be the quorum's doing")
	}
	served(t, "http://10.0.100.55/", 10, []string{sorry.name}, sorry.name)

	// rs2 back: healthy weight 3, below 4 + 1: still the fallback.
	if err := rs(2).startHTTP(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(upWithin()); upMetric(rs(2)) != 1; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rs2 not up within %v", upWithin())
		}
	}
	time.Sleep(interval) // a reconcile after the transition, were it wrong
	waitTable(t, 0, "rs2 up again, healthy weight 3: hysteresis keeps the fallback",
		dests(svc, "wrr", masq(rs(1), 0), masq(rs(2), 0), masq(rs(3), 0), masq(sorry, 1)))
	quorumUp(0)
	served(t, "http://10.0.100.55/", 10, []string{sorry.name}, sorry.name)

	// rs3 back: healthy weight 6: quorum regained, the fallback leaves.
	if err := rs(3).startHTTP(); err != nil {
		t.Fatal(err)
	}
	waitTable(t, upWithin(), "rs3 up again, healthy weight 6: real servers back, fallback out",
		dests(svc, "wrr", masq(rs(1), 1), masq(rs(2), 2), masq(rs(3), 3)))
	quorumUp(1)
	served(t, "http://10.0.100.55/", 12, []string{"rs1", "rs2", "rs3"}, "rs1", "rs2", "rs3")
}
