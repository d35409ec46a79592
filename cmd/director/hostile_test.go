package main

// Hostile input at the level of the binary (issue 10): files that are not
// what the config says they are.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// TestStateFileDirectoryIsAConfigError: a state_file that names a
// directory (here one holding the operator's maintenance files) is refused
// by check, by run and on reload, and is never moved or touched.
func TestStateFileDirectoryIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	keep := filepath.Join(stateDir, "maintenance", "web")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("10.0.0.11:8080 replacing a disk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := `[director]
listen = "%s"
state_file = "%s"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "%s"
`
	backend := okBackend(t)
	listen := testutil.ClosedPort(t).String()
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(tmpl, listen, stateDir, backend))
	want := cfg + ":3: director.state_file: " + stateDir + " is a directory, not a regular file"

	var out, errOut bytes.Buffer
	if code := realMain([]string{"check", "-config", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), want) {
		t.Errorf("check: exit %d, stderr %q; want 1 and %q", code, errOut.String(), want)
	}
	// Without the check, run starts: the deadline ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	run, err := exec.CommandContext(ctx, binary, "run", "-dry-run", "-config", cfg).CombinedOutput()
	cancel()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(run), want) {
		t.Errorf("run: %v; want exit 1 and %q in:\n%s", err, want, run)
	}
	untouched := func() {
		t.Helper()
		if data, err := os.ReadFile(keep); err != nil || !strings.Contains(string(data), "replacing a disk") {
			t.Fatalf("the directory's content is gone: %v", err)
		}
		if _, err := os.Stat(stateDir + ".corrupt"); err == nil {
			t.Fatalf("the directory was moved to %s.corrupt", stateDir)
		}
	}
	untouched()

	// Running with a good state file, a reload that points it at the
	// directory is refused.
	testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(tmpl, listen, filepath.Join(dir, "state.json"), backend))
	d := startDaemon(t, "run", "-dry-run", "-config", cfg)
	d.waitStarted()
	testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(tmpl, listen, stateDir, backend))
	d.signal(syscall.SIGHUP)
	d.waitLog(`config reload failed.*is a directory, not a regular file`)
	d.stop()
	untouched()
}

// TestConnectionFloodKeepsProbes runs the director with the open-file
// limit at 200 and opens 400 idle connections to its listener: the
// listener's cap (a quarter of the limit) keeps them from taking the
// descriptors the probes need, so the backend stays up throughout, and
// the director serves again once the flood ends.
func TestConnectionFloodKeepsProbes(t *testing.T) {
	const nofile, flood = 200, 400
	backend := okBackend(t)
	listen := testutil.ClosedPort(t).String()
	cfg := testutil.WriteFile(t, t.TempDir(), "director.toml", fmt.Sprintf(`[director]
listen = "%s"

[defaults.check]
interval = "200ms"
timeout = "150ms"
fall = 1

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "%s"
  weight = 100
`, listen, backend))
	// ulimit sets the hard limit too, so Go cannot raise it again.
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), binary, "run", "-dry-run", "-config", cfg)
	d := startDaemonCmd(t, cmd)
	d.waitStarted()
	d.waitLog(`weight 0 -> 100`)
	if !strings.Contains(d.logText(), `connection cap" max_connections=50 open_file_limit=200`) {
		t.Errorf("the cap is not 50, a quarter of the open-file limit:\n%s", d.logText())
	}
	mark := len(d.logText())

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatalf("dialing the listener: %v", err)
		}
		conns = append(conns, c)
	}
	// Hold them for 15 check rounds, under the listener's 5 s header
	// timeout, and watch the director's descriptors meanwhile.
	peak := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, len(fds))
	}
	t.Logf("peak open descriptors during the flood: %d (limit %d)", peak, nofile)
	if peak > nofile*3/4 {
		t.Errorf("%d descriptors open during the flood: the listener is not capped", peak)
	}
	log := d.logText()[mark:]
	for _, bad := range []string{"real server down", "too many open files"} {
		if strings.Contains(log, bad) {
			t.Errorf("during the flood the log says %q:\n%s", bad, log)
		}
	}
	if !strings.Contains(log, "HTTP listener full") {
		t.Errorf("the full listener was not logged:\n%s", log)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// The flood's connections wait in the accept queue until each is
	// accepted and sees its peer gone; then the director answers again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz unreachable after the flood: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.stop()
}

// TestTokenRevocation: emptying or removing api_token_file turns the write
// API off within a poll (403), without a reload and without making one
// fail; a new token works at once and the old one no longer does; a FIFO
// in its place is refused on reload without hanging anything.
func TestTokenRevocation(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	const first, second = "first-token-0123456789", "second-token-0123456789"
	if err := os.WriteFile(token, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := testutil.ClosedPort(t).String()
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(`[director]
listen = "%s"
api_token_file = "%s"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [[virtual_server.real_server]]
  address = "%s"
`, listen, token, okBackend(t)))
	d := startDaemon(t, "run", "-dry-run", "-config", cfg)
	d.waitStarted()

	// Clearing a panic that is not on: 409 when the token is accepted.
	post := func(tok string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+listen+"/api/v1/virtual_servers/web/panic/clear", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitCode := func(what, tok string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code := post(tok)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: POST answers %d, want %d\n%s", what, code, want, d.logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitCode("at start", first, http.StatusConflict)

	os.WriteFile(token, nil, 0o600)
	waitCode("token file emptied", first, http.StatusForbidden)
	d.waitLog(`API token gone: the write API is off`)

	os.WriteFile(token, []byte(second), 0o600)
	waitCode("new token", second, http.StatusConflict)
	if code := post(first); code != http.StatusUnauthorized {
		t.Errorf("the old token after a new one: %d, want 401", code)
	}

	os.Remove(token)
	waitCode("token file removed", second, http.StatusForbidden)
	mark := len(d.logText())
	d.signal(syscall.SIGHUP)
	d.waitLog(`API token|reload`) // the reload ran
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(d.logText()[mark:], "config reload failed") {
		t.Errorf("a reload with the token file gone failed:\n%s", d.logText()[mark:])
	}

	// A FIFO nobody writes to: the poll and the reload refuse it at once.
	if err := syscall.Mkfifo(token, 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	d.waitLog(`config reload failed.*named pipe \(FIFO\)`)
	waitCode("a FIFO", second, http.StatusForbidden)
	if code, _, _ := testutil.Get(t, "http://"+listen+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d with a FIFO as token file", code)
	}
	d.stop()
}

// TestBoundedConfigRefusedOnReload: a reload of a config nested too deep,
// or larger than -max-config-bytes, is refused at once and the running
// config stays; check refuses both as well.
func TestBoundedConfigRefusedOnReload(t *testing.T) {
	dir := t.TempDir()
	listen := testutil.ClosedPort(t).String()
	good := fmt.Sprintf(`[director]
listen = "%s"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
scheduler = "wrr"
  [[virtual_server.real_server]]
  address = "%s"
`, listen, okBackend(t))
	cfg := testutil.WriteFile(t, dir, "director.toml", good)
	const maxBytes = "65536"
	d := startDaemon(t, "run", "-dry-run", "-max-config-bytes", maxBytes, "-config", cfg)
	d.waitStarted()

	deep := good + "x = " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n"
	big := good + "# " + strings.Repeat("padding ", 9000) + "\n"
	for _, tc := range []struct{ name, text, want string }{
		{"nested 20,000 deep", deep, `arrays and tables nested more than 32 deep`},
		{"over -max-config-bytes", big, `larger than 65536 bytes, the most a config file may be`},
	} {
		testutil.WriteFile(t, dir, "director.toml", tc.text)
		var out, errOut bytes.Buffer
		if code := realMain([]string{"check", "-max-config-bytes", maxBytes, "-config", cfg}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%s: check exit %d, stderr %q; want 1 and %q", tc.name, code, errOut.String(), tc.want)
		}
		d.signal(syscall.SIGHUP)
		d.waitLog(`config reload failed.*` + tc.want)
	}
	_, _, status := testutil.Get(t, "http://"+listen+"/api/v1/status")
	if !strings.Contains(status, `"scheduler": "wrr"`) {
		t.Errorf("the running config changed:\n%s", status)
	}
	d.stop()
}
