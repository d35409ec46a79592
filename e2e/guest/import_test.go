//go:build linux

package guest

import (
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/logbuf"
)

// importCase is one keepalived.conf and the kernel table keepalived makes
// of it with the e2e backends healthy.
type importCase struct {
	name string
	conf string
	// want is what keepalived's table must come to before it is taken as
	// the reference: "ipvsadm -Sn" lines, the scheduler options left out
	// of the service lines.
	want []string
}

var importCases = []importCase{{
	// HTTP_GET over NAT with persistence, and a sorry server: the second
	// service's only real server fails its check (nothing listens on
	// 8081), so its sorry server takes the traffic.
	name: "http_get_sorry_server",
	conf: `global_defs {
   router_id e2e
}
virtual_server 10.0.100.30 80 {
    delay_loop 2
    lb_algo rr
    lb_kind NAT
    persistence_timeout 50
    protocol TCP
    real_server 10.0.11.2 80 {
        weight 2
        HTTP_GET {
            url {
              path /healthz
              status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
    real_server 10.0.12.2 80 {
        weight 3
        HTTP_GET {
            url {
              path /healthz
              status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
}
virtual_server 10.0.100.31 80 {
    delay_loop 2
    lb_algo wlc
    lb_kind NAT
    protocol TCP
    sorry_server 10.0.15.2 80
    real_server 10.0.14.2 80 {
        weight 1
        HTTP_GET {
            url {
              path /healthz
            }
            connect_port 8081
            connect_timeout 1
            retry 0
        }
    }
}
`,
	want: []string{
		"-A -t 10.0.100.30:80 -s rr -p 50",
		"-a -t 10.0.100.30:80 -r 10.0.11.2:80 -m -w 2",
		"-a -t 10.0.100.30:80 -r 10.0.12.2:80 -m -w 3",
		"-A -t 10.0.100.31:80 -s wlc",
		"-a -t 10.0.100.31:80 -r 10.0.15.2:80 -m -w 1",
	},
}, {
	// TCP_CHECK over DR on a virtual_server_group: an address range and a
	// firewall mark, one definition for three kernel services.
	name: "tcp_check_group",
	conf: `virtual_server_group web {
    10.0.100.32-33 80
    fwmark 30
}
virtual_server group web {
    delay_loop 2
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 10.0.11.2 80 {
        weight 4
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.0.13.2 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`,
	want: []string{
		"-A -t 10.0.100.32:80 -s wrr",
		"-a -t 10.0.100.32:80 -r 10.0.11.2:80 -g -w 4",
		"-a -t 10.0.100.32:80 -r 10.0.13.2:80 -g -w 1",
		"-A -t 10.0.100.33:80 -s wrr",
		"-a -t 10.0.100.33:80 -r 10.0.11.2:80 -g -w 4",
		"-a -t 10.0.100.33:80 -r 10.0.13.2:80 -g -w 1",
		"-A -f 30 -s wrr",
		"-a -f 30 -r 10.0.11.2:0 -g -w 4", // keepalived drops the port of a fwmark real server
		"-a -f 30 -r 10.0.13.2:0 -g -w 1",
	},
}, {
	// MISC_CHECK on a UDP service with one-packet scheduling and a real
	// server taken out at weight 0 rather than removed.
	name: "misc_check_udp",
	conf: `virtual_server 10.0.100.34 5353 {
    delay_loop 2
    lb_algo sh
    lb_kind NAT
    protocol UDP
    ops
    real_server 10.0.11.2 5353 {
        weight 5
        inhibit_on_failure
        MISC_CHECK {
            misc_path /bin/true
            misc_timeout 1
        }
    }
    real_server 10.0.12.2 5353 {
        weight 6
        inhibit_on_failure
        MISC_CHECK {
            misc_path /bin/true
            misc_timeout 1
        }
    }
}
`,
	want: []string{
		"-A -u 10.0.100.34:5353 -s sh -o",
		"-a -u 10.0.100.34:5353 -r 10.0.11.2:5353 -m -w 5",
		"-a -u 10.0.100.34:5353 -r 10.0.12.2:5353 -m -w 6",
	},
}, {
	// HTTP_GET with two url blocks, one a digest of the page each real
	// server serves ("rs1\n", "rs2\n"): the real servers' checkers differ,
	// so the second real server gets a check entry of its own; a wrong
	// one would leave it out of the director's table.
	name: "http_get_digests",
	conf: fmt.Sprintf(`virtual_server 10.0.100.35 80 {
    delay_loop 2
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 10.0.11.2 80 {
        weight 1
        HTTP_GET {
            url {
              path /
              digest %x
            }
            url {
              path /healthz
              status_code 200
            }
            connect_timeout 1
            delay_before_retry 1
        }
    }
    real_server 10.0.12.2 80 {
        weight 2
        HTTP_GET {
            url {
              path /
              digest %x
            }
            url {
              path /healthz
              status_code 200
            }
            connect_timeout 1
            delay_before_retry 1
        }
    }
}
`, md5.Sum([]byte("rs1\n")), md5.Sum([]byte("rs2\n"))),
	want: []string{
		"-A -t 10.0.100.35:80 -s rr",
		"-a -t 10.0.100.35:80 -r 10.0.11.2:80 -m -w 1",
		"-a -t 10.0.100.35:80 -r 10.0.12.2:80 -m -w 2",
	},
}}

// needProgram skips the test when the guest has no program name (how it
// gets there: how), and fails it under CI=true, where it must be there.
func needProgram(t *testing.T, name, how string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no %s in the guest", name)
		}
		t.Skipf("no %s in the guest (%s)", name, how)
	}
}

// runDaemon starts cmd (keepalived, ldirectord), its output kept for the
// log of a failed test, and returns stop, which sends SIGTERM and waits
// (killing it after 30s) and also runs at cleanup, and exited, which says
// whether it has exited.
func runDaemon(t *testing.T, cmd *exec.Cmd) (stop func(), exited func() bool) {
	t.Helper()
	name := filepath.Base(cmd.Path)
	out := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	exited = func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	stop = func() {
		if exited() {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 30s of SIGTERM", name)
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tailLines(out.String(), 200))
		}
	})
	return stop, exited
}

// ipvsadmSave returns the table as ipvsadm -Sn prints it, lines sorted.
func ipvsadmSave() ([]string, error) {
	out, err := exec.Command("ipvsadm", "-Sn").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ipvsadm -Sn: %v: %s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines, nil
}

// waitSave polls ipvsadm -Sn until it holds exactly want (sorted) and
// returns it.
func waitSave(t *testing.T, within time.Duration, what string, want []string) []string {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	start := time.Now()
	var got []string
	for {
		var err error
		got, err = ipvsadmSave()
		if err == nil && slices.Equal(got, want) {
			t.Logf("%s: after %.2fs", what, time.Since(start).Seconds())
			return got
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v (err %v)\ngot:\n%s\nwant:\n%s", what, within, err, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// 30. director import, proven on the kernel: Debian's keepalived (checker
// only) runs a config with healthy backends and its table is saved with
// ipvsadm -Sn; keepalived stops; the director runs what director import
// made of the same file; the table is the same, line for line: services,
// schedulers and flags, persistence, destinations, forwarding, weights.
// HTTP_GET (with digests that differ per real server), TCP_CHECK,
// MISC_CHECK, a virtual_server_group (range and fwmark) and a sorry
// server are among the configs.
func Test30ImportKeepalived(t *testing.T) {
	guest(t)
	needProgram(t, "keepalived", "the e2e suite fetches it with apt")
	for _, tc := range importCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := cleanSlate(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			conf := filepath.Join(dir, "keepalived.conf")
			if err := os.WriteFile(conf, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}

			// keepalived's table.
			stopKA, _ := runDaemon(t, exec.Command("keepalived", "-C", "-n", "-l", "-D", "-f", conf,
				"-p", filepath.Join(dir, "keepalived.pid"), "-c", filepath.Join(dir, "checkers.pid")))
			reference := waitSave(t, 30*time.Second+slack, "keepalived's table", tc.want)
			// Settled: the same a check round later.
			stillSaved(t, 3*time.Second, "keepalived's table", reference)
			stopKA()
			if err := rootNS.sh("ipvsadm -C"); err != nil {
				t.Fatal(err)
			}
			directorImported(t, "keepalived", conf, reference)
		})
	}
}

// stillSaved fails unless ipvsadm -Sn still gives reference after wait.
func stillSaved(t *testing.T, wait time.Duration, what string, reference []string) {
	t.Helper()
	time.Sleep(wait)
	if again, err := ipvsadmSave(); err != nil || !slices.Equal(again, reference) {
		t.Fatalf("%s changed: %v\n%s", what, err, strings.Join(again, "\n"))
	}
}

// directorImported imports conf (format from) with director import, has
// director check accept it, runs the director on it and waits for the
// table to be reference and stay so; it returns the import's report.
func directorImported(t *testing.T, from, conf string, reference []string) string {
	t.Helper()
	out := filepath.Join(filepath.Dir(conf), "director.toml")
	report, err := exec.Command(os.Getenv("DIRECTOR_BIN"), "import", "-from", from, "-o", out, conf).CombinedOutput()
	t.Logf("director import:\n%s", report)
	if err != nil {
		t.Fatalf("director import: %v", err)
	}
	if chk, err := exec.Command(os.Getenv("DIRECTOR_BIN"), "check", "-config", out).CombinedOutput(); err != nil {
		t.Fatalf("director check on the imported config: %v\n%s", err, chk)
	}
	cfg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("imported config:\n%s", cfg)
		}
	})
	start := time.Now()
	startDirector(t, string(cfg))
	waitSave(t, 30*time.Second+slack, "the director's table on the imported config", reference)
	stillSaved(t, 3*time.Second, "the director's table", reference)
	t.Logf("director: started and settled in %.1fs", time.Since(start).Seconds())
	return string(report)
}

// ldirectordConf is the ldirectord.cf of Test31: the options real files
// use over the e2e backends. Checks are short enough for the VM;
// ldirectord runs in the foreground (supervised), one check at a time
// (fork = no). Few real servers: under emulation ldirectord takes seconds
// for each one at start (ipvsadm, run three times per change). Every real
// server is written with its port: ldirectord
// 4.12 never restores a quiesced gate or ipip real server written
// without one (it looks for port 0 where ipvsadm put the virtual port).
// cleanstop=no spares the VM ldirectord's removing its entries one by one
// on stop: the test flushes the table.
const ldirectordConf = `checktimeout=2
negotiatetimeout=2
checkinterval=3
failurecount=1
fork=no
supervised=yes
autoreload=no
cleanstop=no
quiescent=yes

# NAT, weighted round robin, persistence, an HTTP check with request and
# receive
virtual=10.0.100.40:80
	real=10.0.11.2:80 masq 3
	real=10.0.14.2:80 masq 5
	service=http
	request="healthz"
	receive="ok"
	checktype=negotiate
	scheduler=wrr
	persistent=30
	netmask=255.255.255.0
	protocol=tcp

# DR, round robin, a connect check, down servers removed
virtual=10.0.100.41:80
	real=10.0.13.2:80 gate 2
	real=10.0.14.2:80 gate 4
	checktype=connect
	scheduler=rr
	quiescent=no

# TUN, weighted least connections, connect checks on another port
virtual=10.0.100.42:8443
	real=10.0.14.2:8443 ipip 2
	real=10.0.15.2:8443 ipip 3
	checktype=connect
	checkport=443
	scheduler=wlc

# source hashing and a masq fallback
virtual=10.0.100.43:80
	real=10.0.14.2:80 masq 1
	fallback=10.0.16.2:80 masq
	service=http
	request="/healthz"
	receive="ok"
	scheduler=sh

# ldirectord's defaults: scheduler wrr, a fallback forwarded by gate on
# the virtual port
virtual=10.0.100.44:80
	real=10.0.14.2:80 gate 2
	fallback=10.0.16.2
	checktype=connect
	quiescent=no

# UDP
virtual=10.0.100.45:5353
	real=10.0.11.2:5353 masq 4
	protocol=udp
	checktype=connect
	scheduler=sh

# a firewall mark; its real servers keep their port in the table
virtual=1
	real=10.0.12.2:80 gate 1
	real=10.0.14.2:80 gate 3
	protocol=fwm
	checktype=connect
	scheduler=wrr
	quiescent=no
`

// ldirectordIgnored is how many of ldirectordConf's options the import
// reports as not the director's job (ldirectord's own process: fork,
// supervised); every other one must be converted exactly.
const ldirectordIgnored = 2

// ldirectordUp is the table ldirectord makes of ldirectordConf with every
// backend healthy: "ipvsadm -Sn" lines.
var ldirectordUp = []string{
	"-A -t 10.0.100.40:80 -s wrr -p 30 -M 255.255.255.0",
	"-a -t 10.0.100.40:80 -r 10.0.11.2:80 -m -w 3",
	"-a -t 10.0.100.40:80 -r 10.0.14.2:80 -m -w 5",
	"-A -t 10.0.100.41:80 -s rr",
	"-a -t 10.0.100.41:80 -r 10.0.13.2:80 -g -w 2",
	"-a -t 10.0.100.41:80 -r 10.0.14.2:80 -g -w 4",
	"-A -t 10.0.100.42:8443 -s wlc",
	"-a -t 10.0.100.42:8443 -r 10.0.14.2:8443 -i -w 2 --tun-type ipip",
	"-a -t 10.0.100.42:8443 -r 10.0.15.2:8443 -i -w 3 --tun-type ipip",
	"-A -t 10.0.100.43:80 -s sh",
	"-a -t 10.0.100.43:80 -r 10.0.14.2:80 -m -w 1",
	"-A -t 10.0.100.44:80 -s wrr",
	"-a -t 10.0.100.44:80 -r 10.0.14.2:80 -g -w 2",
	"-A -u 10.0.100.45:5353 -s sh",
	"-a -u 10.0.100.45:5353 -r 10.0.11.2:5353 -m -w 4",
	"-A -f 1 -s wrr",
	"-a -f 1 -r 10.0.12.2:80 -g -w 1",
	"-a -f 1 -r 10.0.14.2:80 -g -w 3",
}

// ldirectordDown is ldirectord's table once rs4's port 80 is closed: rs4
// quiesced (weight 0) where quiescent = yes, removed where no; the
// fallback (rs6) in where nothing is left (beside the quiesced rs4 in
// .43); rs4's TUN service, checked on 443, unchanged.
var ldirectordDown = []string{
	"-A -t 10.0.100.40:80 -s wrr -p 30 -M 255.255.255.0",
	"-a -t 10.0.100.40:80 -r 10.0.11.2:80 -m -w 3",
	"-a -t 10.0.100.40:80 -r 10.0.14.2:80 -m -w 0",
	"-A -t 10.0.100.41:80 -s rr",
	"-a -t 10.0.100.41:80 -r 10.0.13.2:80 -g -w 2",
	"-A -t 10.0.100.42:8443 -s wlc",
	"-a -t 10.0.100.42:8443 -r 10.0.14.2:8443 -i -w 2 --tun-type ipip",
	"-a -t 10.0.100.42:8443 -r 10.0.15.2:8443 -i -w 3 --tun-type ipip",
	"-A -t 10.0.100.43:80 -s sh",
	"-a -t 10.0.100.43:80 -r 10.0.14.2:80 -m -w 0",
	"-a -t 10.0.100.43:80 -r 10.0.16.2:80 -m -w 1",
	"-A -t 10.0.100.44:80 -s wrr",
	"-a -t 10.0.100.44:80 -r 10.0.16.2:80 -g -w 1",
	"-A -u 10.0.100.45:5353 -s sh",
	"-a -u 10.0.100.45:5353 -r 10.0.11.2:5353 -m -w 4",
	"-A -f 1 -s wrr",
	"-a -f 1 -r 10.0.12.2:80 -g -w 1",
}

// ldOptions counts an ldirectord.cf's options: its lines that are not
// blank or comments.
func ldOptions(conf string) int {
	n := 0
	for _, l := range strings.Split(conf, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// 31. director import from ldirectord, proven on the kernel: Debian's
// ldirectord (the perl program, driving ipvsadm) runs ldirectordConf with
// every backend healthy; once its table is complete, rs4's port 80 is
// closed, and its settled table is saved with ipvsadm -Sn; ldirectord
// stops and the table is flushed; the director runs what director import
// made of the same file (which director check accepts, every option
// converted exactly but ldirectord's own process options), rs4 still
// down; the table is the same, line for line: quiesced (weight 0) and
// removed servers, fallbacks, weights, forwarding, persistence.
func Test31ImportLdirectord(t *testing.T) {
	guest(t)
	needProgram(t, "ldirectord", "the e2e suite fetches it and perl with apt")
	t.Cleanup(func() { rs(4).startHTTP() })
	dir := t.TempDir()
	conf := filepath.Join(dir, "ldirectord.cf")
	if err := os.WriteFile(conf, []byte(ldirectordConf), 0o644); err != nil {
		t.Fatal(err)
	}

	// ldirectord's table.
	start := time.Now()
	ld := exec.Command("ldirectord", conf, "start")
	ld.Dir = dir
	stopLD, ldExited := runDaemon(t, ld)
	// ldirectord is slow under emulation: perl loads LWP and re-executes
	// itself once, and each change runs ipvsadm three times.
	waitSave(t, 240*time.Second+slack, "ldirectord's table, every backend up", ldirectordUp)
	rs(4).stopHTTP()
	reference := waitSave(t, 120*time.Second+slack, "ldirectord's table, rs4's port 80 closed", ldirectordDown)
	// Settled: the same after more than a check round.
	stillSaved(t, 5*time.Second, "ldirectord's table", reference)
	if ldExited() {
		t.Fatalf("ldirectord exited")
	}
	stopLD()
	t.Logf("ldirectord: started, settled twice and stopped in %.1fs", time.Since(start).Seconds())
	if err := rootNS.sh("ipvsadm -C"); err != nil {
		t.Fatal(err)
	}

	// The director on the imported config, rs4 still down.
	report := directorImported(t, "ldirectord", conf, reference)
	n := ldOptions(ldirectordConf)
	summary := fmt.Sprintf("%d options: %d exact, 0 approximate, %d not converted (%d of them not the director's job)",
		n, n-ldirectordIgnored, ldirectordIgnored, ldirectordIgnored)
	if !strings.HasSuffix(report, "\n"+summary+"\n") {
		t.Errorf("the import's report does not end in %q", summary)
	}
}
