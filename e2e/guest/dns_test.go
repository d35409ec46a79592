//go:build linux

package guest

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsName is the name the backends' DNS servers answer for, with a TXT
// record holding the backend's name.
const dnsName = "svc.e2e.test."

// dnsBackend is a DNS server on UDP port 53 in a backend's namespace,
// written with miekg/dns: TXT <backend name> for dnsName, SERVFAIL for
// everything while failing is set.
type dnsBackend struct {
	failing atomic.Bool
	srv     *dns.Server
}

func startDNSBackend(t *testing.T, b *backend) *dnsBackend {
	t.Helper()
	var pc net.PacketConn
	if err := b.ns.do(func() (err error) { pc, err = net.ListenPacket("udp", ":53"); return err }); err != nil {
		t.Fatalf("%s: listen udp :53: %v", b.name, err)
	}
	d := &dnsBackend{}
	d.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg).SetReply(q)
		switch {
		case d.failing.Load():
			r.Rcode = dns.RcodeServerFailure
		case q.Question[0].Name == dnsName && q.Question[0].Qtype == dns.TypeTXT:
			r.Authoritative = true
			r.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: dnsName, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 0}, Txt: []string{b.name}}}
		default:
			r.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(r)
	})}
	started, done := make(chan struct{}), make(chan struct{})
	d.srv.NotifyStartedFunc = func() { close(started) }
	go func() { defer close(done); d.srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { d.srv.Shutdown(); <-done })
	return d
}

// dnsQuery asks addr for dnsName's TXT record from the client namespace,
// from a fresh socket (a new IPVS connection), and returns the backend
// name in the answer.
func dnsQuery(addr string) (string, error) {
	var name string
	err := cl.ns.do(func() error {
		m := new(dns.Msg)
		m.SetQuestion(dnsName, dns.TypeTXT)
		c := dns.Client{Timeout: 5 * time.Second}
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			return fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		txt, ok := r.Answer[0].(*dns.TXT)
		if !ok || len(txt.Txt) != 1 {
			return fmt.Errorf("answer %v", r.Answer[0])
		}
		name = txt.Txt[0]
		return nil
	})
	return name, err
}

// queried sends n queries through the VIP and checks who answered, as
// served does for HTTP.
func queried(t *testing.T, addr string, n int, allowed []string, mustSee ...string) {
	t.Helper()
	counts := map[string]int{}
	var errs []string
	for range n {
		name, err := dnsQuery(addr)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		counts[name]++
	}
	checkServed(t, "dns "+addr, n, counts, errs, allowed, mustSee)
}

// 19. A UDP DNS virtual service with a dns check: a backend answering
// SERVFAIL is taken out (weight 0) and queries go to the other; one whose
// server is gone (ICMP port unreachable) too; both come back when they
// answer again.
func Test19DNSCheck(t *testing.T) {
	guest(t)
	rs1, rs2 := startDNSBackend(t, rs(1)), startDNSBackend(t, rs(2))
	startDirector(t, directorConfig("30s", "keep", fmt.Sprintf(`[[virtual_server]]
name = "dns"
address = "10.0.100.53:53"
protocol = "udp"
scheduler = "rr"
  [virtual_server.check]
  type = "dns"
  query_name = %q
  query_type = "TXT"
  expect_answer = "\\bTXT\\s+\"rs[0-9]\"$"
%s`, dnsName, reals(rs(1).addr4(53)+" 1", rs(2).addr4(53)+" 1"))))
	const vip = "10.0.100.53:53"
	udp := func(b *backend, w int) string { return fmt.Sprintf("%s Masq %d", b.addr4(53), w) }
	waitTable(t, upWithin(), "both DNS backends up", dests("UDP "+vip, "rr", udp(rs(1), 1), udp(rs(2), 1)))
	queried(t, vip, 10, []string{"rs1", "rs2"}, "rs1", "rs2")

	t.Run("servfail", func(t *testing.T) {
		rs1.failing.Store(true)
		waitTable(t, downWithin(), "rs1 answers SERVFAIL: down", dests("UDP "+vip, "rr", udp(rs(1), 0), udp(rs(2), 1)))
		labels := map[string]string{"virtual_server": "dns", "real_server": rs(1).addr4(53), "reason": "status"}
		if v, ok := metric(t, "director_check_failures_total", labels); !ok || v < float64(fall) {
			t.Errorf("failures of rs1 counted as status: %v (found %v), want at least %d", v, ok, fall)
		}
		queried(t, vip, 10, []string{"rs2"}, "rs2")
		rs1.failing.Store(false)
		waitTable(t, upWithin(), "rs1 answers again: up", dests("UDP "+vip, "rr", udp(rs(1), 1), udp(rs(2), 1)))
		queried(t, vip, 10, []string{"rs1", "rs2"}, "rs1", "rs2")
	})
	t.Run("no server", func(t *testing.T) {
		rs2.srv.Shutdown()
		waitTable(t, downWithin(), "rs2's DNS server gone: down", dests("UDP "+vip, "rr", udp(rs(1), 1), udp(rs(2), 0)))
		labels := map[string]string{"virtual_server": "dns", "real_server": rs(2).addr4(53), "reason": "refused"}
		if v, ok := metric(t, "director_check_failures_total", labels); !ok || v < 1 {
			t.Errorf("failures of rs2 counted as refused: %v (found %v), want at least 1", v, ok)
		}
		queried(t, vip, 10, []string{"rs1"}, "rs1")
	})
}
