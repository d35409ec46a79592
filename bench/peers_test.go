package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func peerTestOptions(kind string) Options {
	return Options{Kind: kind, N: 5, VirtualServers: 2, Interval: time.Second, Timeout: 500 * time.Millisecond,
		Rise: 2, Fall: 3, Port: 18080}
}

// TestLdirectordConfig checks the generated ldirectord.cf against the
// director's bench config: same services and real servers, same kind of
// check, and the settings peer mode depends on. Where ldirectord is
// installed, ldirectord itself parses it.
func TestLdirectordConfig(t *testing.T) {
	for _, kind := range []string{"tcp", "http"} {
		o := peerTestOptions(kind)
		cfg, note, err := LdirectordConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"checkinterval=1\n", "checktimeout=1\n", "negotiatetimeout=1\n", "failurecount=3\n",
			"fork=no\n", "quiescent=yes\n", "supervised=yes\n",
			"virtual=198.18.0.0:80\n", "virtual=198.18.0.1:80\n",
			"\treal=127.1.0.1:18080 masq 100\n", "\treal=127.1.0.3:18080 masq 100\n", "\treal=127.1.0.5:18080 masq 100\n",
			"\treal=127.1.0.2:18080 masq 100\n", "\treal=127.1.0.4:18080 masq 100\n"}
		if kind == "http" {
			want = append(want, "\tservice=http\n\tchecktype=negotiate\n\trequest=\"/\"\n")
		} else {
			want = append(want, "\tchecktype=connect\n")
		}
		for _, w := range want {
			if !strings.Contains(cfg, w) {
				t.Errorf("%s: ldirectord.cf lacks %q:\n%s", kind, w, cfg)
			}
		}
		if strings.Count(cfg, "\treal=") != o.N {
			t.Errorf("%s: want %d real servers:\n%s", kind, o.N, cfg)
		}
		if !strings.Contains(note, "timeout 1s") {
			t.Errorf("note %q does not say the timeout differs", note)
		}
		validateLdirectord(t, cfg)
	}
	o := peerTestOptions("tcp")
	o.Interval = 1500 * time.Millisecond
	if _, _, err := LdirectordConfig(o); err == nil {
		t.Error("an interval of 1.5s was accepted; ldirectord takes whole seconds")
	}
}

func validateLdirectord(t *testing.T, cfg string) {
	t.Helper()
	bin, err := lookPeer("ldirectord")
	if err != nil {
		return
	}
	path := filepath.Join(t.TempDir(), "ldirectord.cf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// "status" parses the config, finds no running instance and exits 3.
	out, err := exec.CommandContext(ctx, bin, path, "status").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "stopped") {
		t.Errorf("ldirectord %s status: %v\n%s", path, err, out)
	}
}

func TestKeepalivedConfig(t *testing.T) {
	for _, kind := range []string{"tcp", "http"} {
		o := peerTestOptions(kind)
		cfg, _, err := KeepalivedConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"virtual_server 198.18.0.0 80 {\n    delay_loop 1\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n",
			"virtual_server 198.18.0.1 80 {", "real_server 127.1.0.5 18080 {\n        weight 100\n        inhibit_on_failure\n",
			"connect_timeout 0.5\n            retry 2\n            delay_before_retry 1\n"}
		if kind == "http" {
			want = append(want, "HTTP_GET {\n            url {\n                path /\n                status_code 200\n            }\n")
		} else {
			want = append(want, "TCP_CHECK {\n")
		}
		for _, w := range want {
			if !strings.Contains(cfg, w) {
				t.Errorf("%s: keepalived.conf lacks %q:\n%s", kind, w, cfg)
			}
		}
		if strings.Count(cfg, "real_server ") != o.N || strings.Count(cfg, "{") != strings.Count(cfg, "}") {
			t.Errorf("%s: want %d real servers and balanced braces:\n%s", kind, o.N, cfg)
		}
		validateKeepalived(t, cfg)
	}
}

func validateKeepalived(t *testing.T, cfg string) {
	t.Helper()
	bin, err := lookPeer("keepalived")
	if err != nil {
		return
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-t", "-l", "-f", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("keepalived -t %s: %v\n%s", path, err, out)
	}
}

func TestParsePeers(t *testing.T) {
	if p, err := ParsePeers(" ldirectord, keepalived ,"); err != nil || len(p) != 2 {
		t.Errorf("got %q, %v", p, err)
	}
	if p, err := ParsePeers(""); err != nil || p != nil {
		t.Errorf("empty: got %q, %v", p, err)
	}
	if _, err := ParsePeers("haproxy"); err == nil {
		t.Error("an unknown peer was accepted")
	}
}

func TestTreeCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 5 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, n, err := treeCPU(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("treeCPU saw %d processes under sh, want 2 (sh and its sleep)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
