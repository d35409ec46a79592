package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

// protocolKinds are the kinds whose backends this file provides: dns
// (miekg/dns, UDP), radius (layeh.com/radius, UDP) and grpc (grpc-go's own
// health service) answered in process with the libraries the probers'
// tests use; mysql, postgresql and ldap by Debian's mariadbd, postgres and
// slapd (daemons.go), one daemon per backends process behind one counting
// TCP forwarder per real server address.
var protocolKinds = []string{"dns", "grpc", "radius", "mysql", "postgresql", "ldap"}

func protocolKind(k string) bool { return slices.Contains(protocolKinds, k) }

// daemonKind says the kind's backend is a Debian daemon.
func daemonKind(k string) bool { return k == "mysql" || k == "postgresql" || k == "ldap" }

// What the backends answer and the checks ask for.
const (
	benchDNSName      = "bench.test."
	benchRADIUSSecret = "bench-secret"
	benchLogin        = "probe"
	benchPassword     = "s3cret"
	benchLDAPBase     = "ou=people,dc=example,dc=test"
	benchLDAPBindDN   = "cn=probe," + benchLDAPBase
)

// protocolOptions are the check options of a protocol kind; files the
// options name (secrets, passwords) are written into dir.
func protocolOptions(kind, dir string) (string, error) {
	password := filepath.Join(dir, "bench-password")
	secret := filepath.Join(dir, "bench-radius-secret")
	for path, content := range map[string]string{password: benchPassword + "\n", secret: benchRADIUSSecret + "\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	switch kind {
	case "dns":
		return fmt.Sprintf("  query_name = %q\n  query_type = \"A\"\n  expect_answer = '\\bA\\s+127\\.0\\.0\\.1$'\n", benchDNSName), nil
	case "grpc":
		return "", nil // the server's overall health, service ""
	case "radius":
		return fmt.Sprintf("  secret_file = %q\n  login = %q\n  password_file = %q\n", secret, benchLogin, password), nil
	case "mysql", "postgresql":
		// ldirectord's behaviour: log in, run a query that must return a row.
		return fmt.Sprintf("  login = %q\n  password_file = %q\n  database = \"app\"\n  query = \"SELECT x FROM ok\"\n", benchLogin, password), nil
	case "ldap":
		return fmt.Sprintf("  bind_dn = %q\n  password_file = %q\n  search_base = %q\n  search_filter = \"(cn=probe)\"\n",
			benchLDAPBindDN, password, benchLDAPBase), nil
	}
	return "", fmt.Errorf("bench: no options for kind %q", kind)
}

// startProtocol starts the backend of a protocol kind on address a.
func (b *Backends) startProtocol(kind string, a netip.AddrPort) error {
	switch kind {
	case "dns", "radius":
		pc, err := net.ListenPacket("udp", a.String())
		if err != nil {
			return err
		}
		b.pcs = append(b.pcs, pc)
		if kind == "dns" {
			b.wg.Go(func() { b.serveDNS(pc) })
		} else {
			b.wg.Go(func() { b.serveRADIUS(pc) })
		}
		return nil
	}
	ln, err := net.Listen("tcp", a.String())
	if err != nil {
		return err
	}
	b.addrs = append(b.addrs, a)
	b.lns = append(b.lns, ln)
	if kind == "grpc" {
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer()) // SERVING for ""
		b.stops = append(b.stops, srv.Stop)
		b.wg.Go(func() { srv.Serve(countingListener{ln, &b.count}) })
		return nil
	}
	d, err := b.daemon(kind)
	if err != nil {
		ln.Close()
		return err
	}
	b.wg.Go(func() { b.forward(ln, d.addr, a.Addr()) })
	return nil
}

// daemon returns the backends process's daemon of kind, starting it on
// first use.
func (b *Backends) daemon(kind string) (*daemon, error) {
	if d := b.daemons[kind]; d != nil {
		return d, nil
	}
	d, err := startDaemon(kind)
	if err != nil {
		return nil, err
	}
	if b.daemons == nil {
		b.daemons = map[string]*daemon{}
	}
	b.daemons[kind] = d
	b.stops = append(b.stops, d.stop)
	return d, nil
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Uint64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serveDNS answers A 127.0.0.1 for benchDNSName, NXDOMAIN for other names.
func (b *Backends) serveDNS(pc net.PacketConn) {
	buf := make([]byte, 4096)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		b.count.Add(1)
		q := new(dns.Msg)
		if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
			continue
		}
		r := new(dns.Msg).SetReply(q)
		r.Authoritative = true
		if qq := q.Question[0]; strings.EqualFold(qq.Name, benchDNSName) && qq.Qtype == dns.TypeA {
			r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: benchDNSName, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(127, 0, 0, 1)}}
		} else {
			r.Rcode = dns.RcodeNameError
		}
		if out, err := r.Pack(); err == nil {
			pc.WriteTo(out, from)
		}
	}
}

// serveRADIUS answers each Access-Request signed with the bench secret:
// Access-Accept for the bench password, else Access-Reject (a request
// that does not verify gets nothing, as from a real server).
func (b *Backends) serveRADIUS(pc net.PacketConn) {
	buf := make([]byte, radius.MaxPacketLength)
	secret := []byte(benchRADIUSSecret)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		b.count.Add(1)
		req, err := radius.Parse(buf[:n], secret)
		if err != nil || req.Code != radius.CodeAccessRequest {
			continue
		}
		code := radius.CodeAccessReject
		if rfc2865.UserPassword_GetString(req) == benchPassword {
			code = radius.CodeAccessAccept
		}
		if out, err := req.Response(code).Encode(); err == nil {
			pc.WriteTo(out, from)
		}
	}
}

// forward relays each connection accepted on ln to the daemon at to,
// from the backend's own address (from): one source address per real
// server keeps each one's TIME_WAIT sockets in a port space of its own.
func (b *Backends) forward(ln net.Listener, to netip.AddrPort, from netip.Addr) {
	dialer := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), Timeout: 5 * time.Second}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.count.Add(1)
		go relay(c, dialer, to)
	}
}

// relay copies both ways until both sides are done, for at most a
// minute.
func relay(c net.Conn, dialer net.Dialer, to netip.AddrPort) {
	defer c.Close()
	s, err := dialer.Dial("tcp", to.String())
	if err != nil {
		return
	}
	defer s.Close()
	dl := time.Now().Add(time.Minute)
	c.SetDeadline(dl)
	s.SetDeadline(dl)
	done := make(chan struct{})
	go func() {
		io.Copy(s, c)
		s.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, s)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// KindRow is one kind's figures in a RunKinds table.
type KindRow struct {
	Kind     string       `json:"kind"`
	N        int          `json:"n"`
	Director CheckerStats `json:"director"`
	Failed   string       `json:"failed,omitempty"` // why the run gave no figures
}

// KindsReport is a table of CPU per check, one harness run per kind.
type KindsReport struct {
	Interval string    `json:"interval"`
	Timeout  string    `json:"timeout"`
	Rows     []KindRow `json:"rows"`
}

// RunKinds runs the harness once per kind, each with its own backends and
// its own director: N real servers every o.Interval, exec a tenth of N
// (one fork per check), or the count a kind names ("mysql:200"). A kind
// whose run fails gets a row saying why, and the next one runs. o.Kind,
// o.Groups, o.Floor and o.Storm are ignored.
func RunKinds(ctx context.Context, o Options, kinds []string) (*KindsReport, error) {
	type run struct {
		kind string
		n    int
	}
	var runs []run
	for _, spec := range kinds {
		k, count, hasCount := strings.Cut(spec, ":")
		n, err := strconv.Atoi(count)
		switch {
		case !knownKind(k):
			return nil, fmt.Errorf("bench: kind %q: want one of %s", k, strings.Join(Kinds, ", "))
		case hasCount && (err != nil || n < 1):
			return nil, fmt.Errorf("bench: %q: want kind:count with a positive count", spec)
		case !hasCount && k == "exec":
			n = max(1, o.N/10)
		case !hasCount:
			n = o.N
		}
		runs = append(runs, run{k, n})
	}
	rep := &KindsReport{Interval: o.Interval.String(), Timeout: o.Timeout.String()}
	for _, r := range runs {
		ko := o
		ko.Kind, ko.N, ko.Groups, ko.Floor, ko.Storm, ko.Peers = r.kind, r.n, nil, false, 0, nil
		ko.logf("kind %s: %d real servers every %s", r.kind, ko.N, ko.Interval)
		res, err := Run(ctx, ko)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		row := KindRow{Kind: r.kind, N: ko.N}
		if err != nil {
			row.Failed = err.Error()
			ko.logf("kind %s: %v", r.kind, err)
		} else {
			row.Director = res.Director
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

// Failed lists the kinds whose runs failed, with why.
func (r *KindsReport) Failed() []string {
	var out []string
	for _, row := range r.Rows {
		if row.Failed != "" {
			out = append(out, row.Kind+": "+row.Failed)
		}
	}
	return out
}

// Print writes the table: one row per kind.
func (r *KindsReport) Print(w io.Writer) {
	fmt.Fprintf(w, "director CPU per check, one run per kind, every %s (timeout %s)\n\n", r.Interval, r.Timeout)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\treal servers\tplanned/s\tdone/s\tbackend saw/s\tfailed/s\ton time\tlag p99≤\tCPU s/1000\tcores\tpeak RSS MB\t")
	for _, row := range r.Rows {
		if row.Failed != "" {
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", row.Kind, row.N)
			continue
		}
		s := row.Director
		saw := fmt.Sprintf("%.1f", s.BackendPerSec)
		if noBackend(row.Kind) {
			saw = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%s\t%.2f\t%.2f%%\t%s\t%.3f\t%.3f\t%.1f\t\n",
			row.Kind, row.N, s.PlannedPerSec, s.CompletedPerSec, saw, s.FailedPerSec, 100*s.OnTimeShare,
			ms(s.LagP99), s.CPUPer1000Checks, s.CPUCores, float64(s.PeakRSSBytes)/(1<<20))
	}
	tw.Flush()
	for _, f := range r.Failed() {
		fmt.Fprintf(w, "no figures for %s\n", f)
	}
}
