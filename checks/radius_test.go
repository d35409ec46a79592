package checks

import (
	"crypto/hmac"
	"crypto/md5"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

const radiusSecret = "testing123"

// startFreeRADIUS runs Debian's FreeRADIUS in the foreground from a
// minimal configuration in a temp dir: one client (127.0.0.1, secret
// testing123), PAP against a users file where probe has the password
// "s3cret" and blocked is always rejected.
func startFreeRADIUS(t *testing.T) netip.AddrPort {
	t.Helper()
	bin := needBinary(t, "freeradius")
	dir := t.TempDir()
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "dictionary"), "$INCLUDE /usr/share/freeradius/dictionary\n", 0o644)
	writeFile(t, filepath.Join(dir, "users"), "probe Cleartext-Password := \"s3cret\"\nblocked Auth-Type := Reject\n", 0o644)
	writeFile(t, filepath.Join(dir, "radiusd.conf"), fmt.Sprintf(`prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = %[1]s
sbindir = /usr/sbin
logdir = %[1]s
raddbdir = %[1]s
radacctdir = %[1]s
name = freeradius
confdir = %[1]s
modconfdir = %[1]s
run_dir = %[1]s
db_dir = %[1]s
libdir = /usr/lib/freeradius
pidfile = %[1]s/radiusd.pid
max_request_time = 5
cleanup_delay = 0
max_requests = 256
hostname_lookups = no
log {
  destination = stdout
}
security {
  allow_core_dumps = no
  reject_delay = 0
  status_server = no
}
thread pool {
  start_servers = 1
  max_servers = 2
  min_spare_servers = 1
  max_spare_servers = 2
}
client local {
  ipaddr = 127.0.0.1
  secret = %[3]s
}
modules {
  pap {
  }
  files {
    filename = %[1]s/users
  }
}
server default {
  listen {
    type = auth
    ipaddr = 127.0.0.1
    port = %[2]d
  }
  authorize {
    files
    pap
  }
  authenticate {
    Auth-Type PAP {
      pap
    }
  }
}
`, dir, port, radiusSecret), 0o644)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	secret := secretFile(t, radiusSecret)
	ready := mustNew(t, Spec{Type: "radius", Target: addr, Options: RADIUSOptions{SecretFile: secret, RejectIsUp: true}})
	startDaemon(t, exec.Command(bin, "-f", "-l", "stdout", "-d", dir), func() bool {
		return probeWithin(t, ready, 300*time.Millisecond).OK
	})
	return addr
}

func TestRADIUS(t *testing.T) {
	target := startFreeRADIUS(t)
	secret := secretFile(t, radiusSecret+"\n")
	wrongSecret := secretFile(t, "not-the-secret")
	password := secretFile(t, "s3cret")
	wrong := secretFile(t, "not-it")
	for _, tt := range []struct {
		name    string
		opts    RADIUSOptions
		timeout time.Duration
		reason  string
	}{
		{"accepted", RADIUSOptions{SecretFile: secret, Login: "probe", PasswordFile: password}, 5 * time.Second, ""},
		{"wrong password", RADIUSOptions{SecretFile: secret, Login: "probe", PasswordFile: wrong}, 5 * time.Second, "rejected"},
		{"wrong password, reject is up", RADIUSOptions{SecretFile: secret, Login: "probe", PasswordFile: wrong, RejectIsUp: true}, 5 * time.Second, ""},
		{"unknown user", RADIUSOptions{SecretFile: secret, Login: "nobody", PasswordFile: password}, 5 * time.Second, "rejected"},
		{"user rejected", RADIUSOptions{SecretFile: secret, Login: "blocked", PasswordFile: password}, 5 * time.Second, "rejected"},
		{"default user, reject is up", RADIUSOptions{SecretFile: secret, RejectIsUp: true}, 5 * time.Second, ""},
		// FreeRADIUS drops a request whose Message-Authenticator does not
		// verify: a wrong secret looks like silence.
		{"wrong secret", RADIUSOptions{SecretFile: wrongSecret, Login: "probe", PasswordFile: password, RejectIsUp: true}, time.Second, "timeout"},
		{"secret file gone", RADIUSOptions{SecretFile: secret + ".gone"}, time.Second,
			"error: secret_file: cannot read " + secret + ".gone: no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "radius", Target: target, Options: tt.opts}), tt.timeout), tt.reason)
		})
	}
}

// radiusTestServer answers each request on a loopback UDP port with what
// answer returns for it (the nth request, counting from 1), for the
// failure modes FreeRADIUS will not produce on demand. It checks the
// request's Message-Authenticator and fails the test if it is wrong.
func radiusTestServer(t *testing.T, answer func(req *radius.Packet, n int) [][]byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var count atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, radius.MaxPacketLength)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := radius.Parse(buf[:n], []byte(radiusSecret))
			if err != nil {
				t.Errorf("test server: %v", err)
				continue
			}
			if ma := rfc2869.MessageAuthenticator_Get(req); len(ma) != md5.Size {
				t.Errorf("request without a Message-Authenticator")
			} else {
				// Verify it over the packet with its value zeroed.
				zeroed := append([]byte(nil), buf[:n]...)
				for i := 20; i+2 <= len(zeroed) && zeroed[i+1] >= 2; i += int(zeroed[i+1]) {
					if zeroed[i] == byte(rfc2869.MessageAuthenticator_Type) && i+18 <= len(zeroed) {
						clear(zeroed[i+2 : i+18])
					}
				}
				mac := hmac.New(md5.New, []byte(radiusSecret))
				mac.Write(zeroed)
				if !hmac.Equal(mac.Sum(nil), ma) {
					t.Errorf("the request's Message-Authenticator does not verify")
				}
			}
			for _, b := range answer(req, int(count.Add(1))) {
				pc.WriteTo(b, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return testutil.AddrPort(t, pc.LocalAddr())
}

// reply encodes a response of code to req, signed with secret.
func reply(t *testing.T, req *radius.Packet, code radius.Code, secret string) []byte {
	r := req.Response(code)
	r.Secret = []byte(secret)
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRADIUSFailureModes(t *testing.T) {
	secret := secretFile(t, radiusSecret)
	for _, tt := range []struct {
		name   string
		answer func(req *radius.Packet, n int) [][]byte
		opts   RADIUSOptions
		reason string
	}{
		{"the request as sent", func(req *radius.Packet, n int) [][]byte {
			if rfc2865.UserName_GetString(req) != "alice" || rfc2865.UserPassword_GetString(req) != "pw" ||
				rfc2865.NASIdentifier_GetString(req) != UserAgent {
				return [][]byte{reply(t, req, radius.CodeAccessReject, radiusSecret)}
			}
			return [][]byte{reply(t, req, radius.CodeAccessAccept, radiusSecret)}
		}, RADIUSOptions{SecretFile: secret, Login: "alice", PasswordFile: secretFile(t, "pw\n")}, ""},
		{"signed with another secret", func(req *radius.Packet, n int) [][]byte {
			return [][]byte{reply(t, req, radius.CodeAccessAccept, "other")}
		}, RADIUSOptions{SecretFile: secret}, "auth failed: secret mismatch"},
		{"challenge", func(req *radius.Packet, n int) [][]byte {
			return [][]byte{reply(t, req, radius.CodeAccessChallenge, radiusSecret)}
		}, RADIUSOptions{SecretFile: secret, RejectIsUp: true}, "error: radius Access-Challenge"},
		{"a stray reply first", func(req *radius.Packet, n int) [][]byte {
			stray := req.Response(radius.CodeAccessReject)
			stray.Identifier++
			b, _ := stray.Encode()
			return [][]byte{b, []byte("garbage"), reply(t, req, radius.CodeAccessAccept, radiusSecret)}
		}, RADIUSOptions{SecretFile: secret}, ""},
		// The first two requests are lost: the third, sent before the
		// timeout, is answered.
		{"retransmitted", func(req *radius.Packet, n int) [][]byte {
			if n < radiusSends {
				return nil
			}
			return [][]byte{reply(t, req, radius.CodeAccessAccept, radiusSecret)}
		}, RADIUSOptions{SecretFile: secret}, ""},
		{"silence", func(*radius.Packet, int) [][]byte { return nil }, RADIUSOptions{SecretFile: secret}, "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := radiusTestServer(t, tt.answer)
			p := mustNew(t, Spec{Type: "radius", Target: target, Options: tt.opts})
			done := checkNoLeak(t)
			wantResult(t, probeWithin(t, p, 900*time.Millisecond), tt.reason)
			done()
		})
	}
	// Nobody on the port: the ICMP port unreachable is "refused".
	p := mustNew(t, Spec{Type: "radius", Target: testutil.ClosedPort(t), Options: RADIUSOptions{SecretFile: secret}})
	wantReason(t, probeWithin(t, p, 2*time.Second), "refused")
}
