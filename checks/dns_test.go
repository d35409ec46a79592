package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"github.com/miekg/dns"
)

// bigTXT is how many TXT records big.example.test has: enough that the
// answer does not fit in 512 bytes, so a UDP query without EDNS gets a
// truncated reply.
const bigTXT = 30

// startUnbound runs Debian's unbound on a loopback port, serving a local
// zone example.test (no recursion to the outside: the test has no
// network), and returns its address.
func startUnbound(t *testing.T) netip.AddrPort {
	t.Helper()
	bin := needBinary(t, "unbound")
	dir := t.TempDir()
	port := freePort(t)
	var data strings.Builder
	for _, rr := range []string{
		"example.test. 300 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 300",
		"example.test. 300 IN NS ns.example.test.",
		"ns.example.test. 300 IN A 192.0.2.53",
		"www.example.test. 300 IN A 192.0.2.80",
		"www.example.test. 300 IN AAAA 2001:db8::80",
	} {
		fmt.Fprintf(&data, "  local-data: %q\n", rr)
	}
	for i := range bigTXT {
		fmt.Fprintf(&data, "  local-data: 'big.example.test. 300 IN TXT \"record %02d of a long answer\"'\n", i)
	}
	conf := filepath.Join(dir, "unbound.conf")
	writeFile(t, conf, fmt.Sprintf(`server:
  interface: 127.0.0.1@%d
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  num-threads: 1
  local-zone: "example.test." static
%s
remote-control:
  control-enable: no
`, port, dir, data.String()), 0o644)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	startDaemon(t, exec.Command(bin, "-d", "-c", conf), func() bool {
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		c := dns.Client{Timeout: 200 * time.Millisecond}
		r, _, err := c.Exchange(m, addr.String())
		return err == nil && r.Rcode == dns.RcodeSuccess
	})
	return addr
}

func TestDNSUnbound(t *testing.T) {
	target := startUnbound(t)
	for _, tt := range []struct {
		name   string
		opts   DNSOptions
		reason string
	}{
		{"A over UDP", DNSOptions{QueryName: "www.example.test", QueryType: "A", ExpectAnswer: `\bA\s+192\.0\.2\.80$`}, ""},
		{"AAAA over TCP", DNSOptions{QueryName: "www.example.test.", QueryType: "aaaa", Transport: "tcp", ExpectAnswer: `2001:db8::80`}, ""},
		{"SOA, the default type", DNSOptions{QueryName: "Example.Test", ExpectAnswer: `SOA\s+ns\.example\.test\.`}, ""},
		{"without recursion", DNSOptions{QueryName: "www.example.test", QueryType: "A", NoRecursion: true}, ""},
		{"with EDNS", DNSOptions{QueryName: "www.example.test", QueryType: "A", EDNSSize: 1232}, ""},
		{"no such name", DNSOptions{QueryName: "nope.example.test", QueryType: "A"}, "rcode NXDOMAIN"},
		{"no such name expected", DNSOptions{QueryName: "nope.example.test", QueryType: "A", ExpectRcode: "nxdomain"}, ""},
		{"wrong answer", DNSOptions{QueryName: "www.example.test", QueryType: "A", ExpectAnswer: `192\.0\.2\.81`}, "answer mismatch"},
		{"empty answer, any expected", DNSOptions{QueryName: "www.example.test", QueryType: "MX"}, ""},
		{"empty answer, one record expected", DNSOptions{QueryName: "www.example.test", QueryType: "MX", ExpectAnswer: "."}, "answer mismatch"},
		// The last record is only in the full answer: the truncated UDP
		// reply must have been asked again over TCP.
		{"truncated, retried over TCP", DNSOptions{QueryName: "big.example.test", QueryType: "TXT",
			ExpectAnswer: fmt.Sprintf(`"record %02d of`, bigTXT-1)}, ""},
		{"big answer with EDNS", DNSOptions{QueryName: "big.example.test", QueryType: "TXT", EDNSSize: 4096,
			ExpectAnswer: fmt.Sprintf(`"record %02d of`, bigTXT-1)}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "dns", Target: target, Options: tt.opts}), 5*time.Second), tt.reason)
		})
	}
}

func TestDNSRefused(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			p := mustNew(t, Spec{Type: "dns", Target: testutil.ClosedPort(t), Options: DNSOptions{Transport: transport}})
			wantReason(t, probeWithin(t, p, 5*time.Second), "refused")
		})
	}
}

// silentUDP is a UDP socket that reads and never answers.
func silentUDP(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return testutil.AddrPort(t, pc.LocalAddr())
}

func TestDNSHanging(t *testing.T) {
	for _, tt := range []struct {
		name      string
		target    netip.AddrPort
		transport string
	}{
		{"udp", silentUDP(t), "udp"},
		{"tcp", testutil.HangingServer(t), "tcp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, Spec{Type: "dns", Target: tt.target, Options: DNSOptions{Transport: tt.transport}})
			done := checkNoLeak(t)
			wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout")
			done()
		})
	}
}

// dnsTestServer serves handle over UDP and TCP on one loopback port with
// miekg/dns's server, for the failure modes unbound will not produce on
// demand. handle learns the transport from the writer's address.
func dnsTestServer(t *testing.T, handle dns.HandlerFunc) netip.AddrPort {
	t.Helper()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := testutil.ListenAt(t, addr)
	serveDNS(t, &dns.Server{PacketConn: pc, Handler: handle})
	serveDNS(t, &dns.Server{Listener: l, Handler: handle})
	return netip.MustParseAddrPort(addr)
}

// serveDNS runs srv until the test's cleanup. It returns once srv serves:
// a Shutdown before that would not stop it.
func serveDNS(t *testing.T, srv *dns.Server) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
}

func overTCP(w dns.ResponseWriter) bool { _, ok := w.RemoteAddr().(*net.TCPAddr); return ok }

func TestDNSFailureModes(t *testing.T) {
	a := func(q *dns.Msg, ip string) dns.RR {
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + ip)
		return rr
	}
	for _, tt := range []struct {
		name   string
		handle dns.HandlerFunc
		opts   DNSOptions
		reason string
	}{
		{"SERVFAIL", func(w dns.ResponseWriter, q *dns.Msg) {
			w.WriteMsg(new(dns.Msg).SetRcode(q, dns.RcodeServerFailure))
		}, DNSOptions{QueryName: "a.test", QueryType: "A"}, "rcode SERVFAIL"},
		{"REFUSED expected", func(w dns.ResponseWriter, q *dns.Msg) {
			w.WriteMsg(new(dns.Msg).SetRcode(q, dns.RcodeRefused))
		}, DNSOptions{ExpectRcode: "REFUSED"}, ""},
		{"NXDOMAIN", func(w dns.ResponseWriter, q *dns.Msg) {
			w.WriteMsg(new(dns.Msg).SetRcode(q, dns.RcodeNameError))
		}, DNSOptions{QueryName: "a.test", QueryType: "A"}, "rcode NXDOMAIN"},
		// Truncated over UDP, the real answer only over TCP.
		{"truncated", func(w dns.ResponseWriter, q *dns.Msg) {
			r := new(dns.Msg).SetReply(q)
			if overTCP(w) {
				r.Answer = []dns.RR{a(q, "192.0.2.7")}
			} else {
				r.Truncated = true
			}
			w.WriteMsg(r)
		}, DNSOptions{QueryName: "a.test", QueryType: "A", ExpectAnswer: `192\.0\.2\.7`}, ""},
		// A stray reply (another ID) first, then the reply: the stray is
		// skipped.
		{"stray reply", func(w dns.ResponseWriter, q *dns.Msg) {
			stray := new(dns.Msg).SetReply(q)
			stray.Id ^= 1
			stray.Answer = []dns.RR{a(q, "192.0.2.66")}
			w.WriteMsg(stray)
			r := new(dns.Msg).SetReply(q)
			r.Answer = []dns.RR{a(q, "192.0.2.7")}
			w.WriteMsg(r)
		}, DNSOptions{QueryName: "a.test", QueryType: "A", ExpectAnswer: `192\.0\.2\.7$`}, ""},
		{"garbage reply", func(w dns.ResponseWriter, q *dns.Msg) {
			w.Write([]byte("not a dns message"))
		}, DNSOptions{}, "error: malformed reply"},
		{"the query's flags reach the server", func(w dns.ResponseWriter, q *dns.Msg) {
			r := new(dns.Msg).SetReply(q)
			opt := q.IsEdns0()
			if q.RecursionDesired || opt == nil || opt.UDPSize() != 1400 {
				r.Rcode = dns.RcodeFormatError
			}
			w.WriteMsg(r)
		}, DNSOptions{NoRecursion: true, EDNSSize: 1400}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := dnsTestServer(t, tt.handle)
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "dns", Target: target, Options: tt.opts}), 2*time.Second), tt.reason)
		})
	}

	// Truncated over UDP and nobody on TCP: the retry's failure is the
	// check's.
	pc, err := net.ListenPacket("udp", testutil.ClosedPort(t).String())
	if err != nil {
		t.Fatal(err)
	}
	serveDNS(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg).SetReply(q)
		r.Truncated = true
		w.WriteMsg(r)
	})})
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "dns", Target: testutil.AddrPort(t, pc.LocalAddr())}), 2*time.Second), "refused")
}

func TestDNSCancel(t *testing.T) {
	p := mustNew(t, Spec{Type: "dns", Target: silentUDP(t)})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	res := p.Probe(ctx)
	if time.Since(start) > time.Second {
		t.Errorf("a cancelled probe took %v", time.Since(start))
	}
	wantReason(t, res, "canceled")
}

// Options written out at their defaults, or in another case, are the
// options left out.
func TestDNSKeyDefaults(t *testing.T) {
	base := Spec{Type: "dns", Target: tgt}
	for _, o := range []DNSOptions{
		{QueryName: "."}, {QueryType: "soa"}, {Transport: "UDP"}, {ExpectRcode: "noerror"},
	} {
		s := base
		s.Options = o
		if s.Key() != base.Key() {
			t.Errorf("%+v: key differs from the defaults'", o)
		}
	}
	a := Spec{Type: "dns", Target: tgt, Options: DNSOptions{QueryName: "WWW.Example.com"}}
	b := Spec{Type: "dns", Target: tgt, Options: DNSOptions{QueryName: "www.example.com."}}
	if a.Key() != b.Key() {
		t.Error("query names differing only in case and the final dot give different keys")
	}
	if got := (Spec{Type: "dns", Target: tgt, Options: DNSOptions{QueryName: "www.example.com", QueryType: "a", Transport: "tcp"}}).String(); got != "dns+tcp "+tgt.String()+" www.example.com. A" {
		t.Errorf("String() = %q", got)
	}
}
