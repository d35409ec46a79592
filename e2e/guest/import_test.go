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
	if _, err := exec.LookPath("keepalived"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no keepalived in the guest")
		}
		t.Skip("no keepalived in the guest (the e2e suite fetches it with apt)")
	}
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
			klog := &logbuf.Buffer{}
			ka := exec.Command("keepalived", "-C", "-n", "-l", "-D", "-f", conf,
				"-p", filepath.Join(dir, "keepalived.pid"), "-c", filepath.Join(dir, "checkers.pid"))
			ka.Stdout, ka.Stderr = klog, klog
			if err := ka.Start(); err != nil {
				t.Fatal(err)
			}
			kdone := make(chan struct{})
			go func() { ka.Wait(); close(kdone) }()
			stopKA := func() {
				select {
				case <-kdone:
					return
				default:
				}
				ka.Process.Signal(syscall.SIGTERM)
				select {
				case <-kdone:
				case <-time.After(20 * time.Second):
					ka.Process.Kill()
					<-kdone
					t.Errorf("keepalived did not stop within 20s of SIGTERM")
				}
			}
			t.Cleanup(func() {
				stopKA()
				if t.Failed() {
					t.Logf("keepalived log:\n%s", tailLines(klog.String(), 200))
				}
			})
			reference := waitSave(t, 30*time.Second+slack, "keepalived's table", tc.want)
			// Settled: the same a check round later.
			time.Sleep(3 * time.Second)
			if again, err := ipvsadmSave(); err != nil || !slices.Equal(again, reference) {
				t.Fatalf("keepalived's table changed: %v\n%s", err, strings.Join(again, "\n"))
			}
			stopKA()
			if err := rootNS.sh("ipvsadm -C"); err != nil {
				t.Fatal(err)
			}

			// The director on the imported config.
			out := filepath.Join(dir, "director.toml")
			imp := exec.Command(os.Getenv("DIRECTOR_BIN"), "import", "-from", "keepalived", "-o", out, conf)
			report, err := imp.CombinedOutput()
			t.Logf("director import:\n%s", report)
			if err != nil {
				t.Fatalf("director import: %v", err)
			}
			cfg, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			startDirector(t, string(cfg))
			waitSave(t, 30*time.Second+slack, "the director's table on the imported config", reference)
			time.Sleep(3 * time.Second)
			if again, err := ipvsadmSave(); err != nil || !slices.Equal(again, reference) {
				t.Fatalf("the director's table changed: %v\n%s", err, strings.Join(again, "\n"))
			}
		})
	}
}
