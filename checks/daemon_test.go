package checks

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// The probers of real protocols are tested against Debian's own servers
// (unbound, mariadb, postgresql, slapd, freeradius), which each test starts
// on a loopback port from a temporary directory and stops at its cleanup.
// .ci/run installs them; elsewhere a test whose server is missing skips,
// except under CI=true, where it fails.

// daemonStartLimit bounds how long a server may take to start.
const daemonStartLimit = 30 * time.Second

// needBinary returns the path of the program name, searched in PATH and
// then in dirs (the sbin directories are often not in a user's PATH).
func needBinary(t *testing.T, name string, dirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range append(dirs, "/usr/sbin", "/sbin") {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; .ci/run must install it", name)
	}
	t.Skipf("%s is not installed (apt-get install it to run this test)", name)
	return ""
}

// freePort returns a loopback port that is free for both TCP and UDP
// right now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return 0
}

// syncBuffer collects a daemon's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runTool runs a setup command (initdb, slapadd) to completion, failing
// the test with its output if it fails.
func runTool(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	t.Logf("%s took %v", filepath.Base(cmd.Path), time.Since(start).Round(time.Millisecond))
}

// startDaemon starts cmd in the foreground, in a process group of its own,
// and waits until ready reports true. At cleanup the group gets SIGTERM,
// then SIGKILL if it is still there after a few seconds. The daemon's
// output is logged when the test fails.
func startDaemon(t *testing.T, cmd *exec.Cmd, ready func() bool) {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		// Whatever the daemon forked is gone with its group.
		syscall.Kill(-pgid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(cmd.Path), out)
		}
	})
	for deadline := time.Now().Add(daemonStartLimit); ; {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("%s exited while starting: %v\n%s", cmd, err, out)
		default:
		}
		if ready() {
			t.Logf("%s ready after %v", filepath.Base(cmd.Path), time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v:\n%s", cmd, daemonStartLimit, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeFile writes a test fixture, failing the test on error.
func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// wantResult wants res to succeed when reason is "", else to fail with it.
func wantResult(t *testing.T, res Result, reason string) {
	t.Helper()
	if reason == "" {
		wantOK(t, res)
	} else {
		wantReason(t, res, reason)
	}
}

// targetCase is one server a prober is tried against, with the timeout
// of the probe and the reason expected ("" for success).
type targetCase struct {
	name    string
	target  netip.AddrPort
	timeout time.Duration
	reason  string
}

// deadServers are the failures every TCP prober must name alike: nobody
// listening, and a listener that accepts and then says nothing.
func deadServers(t *testing.T) []targetCase {
	return []targetCase{
		{"refused", testutil.ClosedPort(t), 5 * time.Second, "refused"},
		{"silent after connect", testutil.HangingServer(t), 300 * time.Millisecond, "timeout"},
	}
}

// probeTargets probes each case with a check of type typ and opts. With
// noLeak, each probe must leave no goroutine behind (the servers must
// start none per connection).
func probeTargets(t *testing.T, typ string, opts Options, noLeak bool, cases []targetCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustNew(t, Spec{Type: typ, Target: tc.target, Options: opts})
			if noLeak {
				defer checkNoLeak(t)()
			}
			wantResult(t, probeWithin(t, p, tc.timeout), tc.reason)
		})
	}
}

// serverCert writes a certificate for db.test, 127.0.0.1 and ::1, signed
// by a new test CA, and its key (PKCS #8) into dir, for a server the test
// starts; caFile is what a check's ca_file names.
func serverCert(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	ca := testutil.TestCA(t)
	cert, err := ca.Issue("db.test", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	writeFile(t, caFile, string(ca.PEM), 0o644)
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})), 0o644)
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})), 0o600)
	return caFile, certFile, keyFile
}

// tlsCases are the TLS cases of a server that serves serverCert's
// certificate: trusted through ca_file, untrusted without it, the wrong
// name, and verification skipped. base holds the login.
func tlsCases[O any](caFile string, base O, withTLS func(O, TLSOptions) O) []struct {
	name   string
	opts   O
	reason string
} {
	return []struct {
		name   string
		opts   O
		reason string
	}{
		{"tls", withTLS(base, TLSOptions{CAFile: caFile}), ""},
		{"tls by name", withTLS(base, TLSOptions{CAFile: caFile, ServerName: "db.test"}), ""},
		{"tls untrusted", withTLS(base, TLSOptions{}), "tls: certificate signed by unknown authority"},
		{"tls wrong name", withTLS(base, TLSOptions{CAFile: caFile, ServerName: "other.test"}),
			"tls: certificate is valid for db.test, not other.test"},
		{"tls unverified", withTLS(base, TLSOptions{TLSSkipVerify: true, ServerName: "other.test"}), ""},
	}
}
