package checks

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// DNSOptions are the options of dns checks: one query, and what its reply
// must hold.
type DNSOptions struct {
	QueryName string // default "." (keepalived's default)
	QueryType string // a type name, "A", "AAAA", "SOA", ...; default "SOA"
	Transport string // "udp" (default) or "tcp"
	// NoRecursion clears the RD flag (recursion = false), for checking
	// an authoritative server as a resolver would not.
	NoRecursion bool
	ExpectRcode string // rcode name; default "NOERROR"
	// ExpectAnswer is a regular expression over the answer section, one
	// record a line in zone-file form ("www.example.com.\t300\tIN\tA\t192.0.2.1").
	ExpectAnswer string
	// EDNSSize, when set, adds an EDNS0 record offering this UDP payload
	// size; without it the query has no EDNS (replies are at most 512
	// bytes over UDP).
	EDNSSize int64
}

const (
	dnsMinEDNSSize = 512
	dnsMaxEDNSSize = 65535
)

var dnsKind = Kind{
	Name:    "dns",
	Foreign: map[string]string{"dns_check": "keepalived's DNS_CHECK"},
	Keys: []Key{{Name: "query_name"}, {Name: "query_type"}, {Name: "transport"}, {Name: "recursion"},
		{Name: "expect_rcode"}, {Name: "expect_answer"}, {Name: "edns_size"}},
	Zero:   DNSOptions{},
	Decode: decodeDNS,
	build:  newDNS,
}

func decodeDNS(d Decoder) Options {
	var o DNSOptions
	o.QueryName, _ = d.String("query_name")
	o.QueryType, _ = d.String("query_type")
	o.Transport, _ = d.String("transport")
	if rd, ok := d.Bool("recursion"); ok {
		o.NoRecursion = !rd
	}
	o.ExpectRcode, _ = d.String("expect_rcode")
	o.ExpectAnswer, _ = d.String("expect_answer")
	o.EDNSSize, _ = d.Int("edns_size", dnsMinEDNSSize, dnsMaxEDNSSize,
		fmt.Sprintf("edns_size must be %d-%d", dnsMinEDNSSize, dnsMaxEDNSSize))
	return o
}

// Validate checks each option on its own.
func (o DNSOptions) Validate() []OptionError {
	var errs []OptionError
	bad := func(key, format string, a ...any) {
		errs = append(errs, OptionError{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	if _, ok := dns.IsDomainName(o.queryName()); !ok || strings.ContainsFunc(o.QueryName, isControlOrSpace) {
		bad("query_name", "%q is not a domain name", o.QueryName)
	}
	if _, ok := dns.StringToType[o.queryType()]; !ok {
		bad("query_type", "unknown query type %q; use a record type such as A, AAAA, MX, SOA, SRV or TXT", o.QueryType)
	}
	if t := o.transport(); t != "udp" && t != "tcp" {
		bad("transport", "unknown transport %q; valid: udp, tcp", o.Transport)
	}
	if _, ok := dns.StringToRcode[o.expectRcode()]; !ok {
		bad("expect_rcode", "unknown rcode %q; use a name such as NOERROR, NXDOMAIN, SERVFAIL or REFUSED", o.ExpectRcode)
	}
	if msg := regexpProblem(o.ExpectAnswer); msg != "" {
		bad("expect_answer", "%s", msg)
	}
	if o.EDNSSize != 0 && (o.EDNSSize < dnsMinEDNSSize || o.EDNSSize > dnsMaxEDNSSize) {
		bad("edns_size", "%d is out of range; edns_size must be %d-%d", o.EDNSSize, dnsMinEDNSSize, dnsMaxEDNSSize)
	}
	return errs
}

// queryName is the name asked, fully qualified and in lower case (names
// compare without case).
func (o DNSOptions) queryName() string {
	if o.QueryName == "" {
		return "."
	}
	return dns.CanonicalName(o.QueryName)
}

func (o DNSOptions) queryType() string {
	if o.QueryType == "" {
		return "SOA"
	}
	return strings.ToUpper(o.QueryType)
}

func (o DNSOptions) transport() string {
	if o.Transport == "" {
		return "udp"
	}
	return strings.ToLower(o.Transport)
}

func (o DNSOptions) expectRcode() string {
	if o.ExpectRcode == "" {
		return "NOERROR"
	}
	return strings.ToUpper(o.ExpectRcode)
}

// Canonical renders every option with its default applied.
func (o DNSOptions) Canonical() string {
	var c canonical
	c.str("query_name", o.queryName())
	c.str("query_type", o.queryType())
	c.str("transport", o.transport())
	c.boolean("recursion", !o.NoRecursion)
	c.str("expect_rcode", o.expectRcode())
	c.str("expect_answer", o.ExpectAnswer)
	c.int("edns_size", o.EDNSSize)
	return c.text()
}

// Describe is "dns 10.0.0.53:53 www.example.com. A", with "dns+tcp" for
// queries over TCP.
func (o DNSOptions) Describe(s Spec) string {
	kind := "dns"
	if o.transport() == "tcp" {
		kind = "dns+tcp"
	}
	return kind + " " + s.Target.String() + " " + o.queryName() + " " + o.queryType()
}

// dnsProber sends one query and judges the reply: its rcode must be the
// expected one and, when ExpectAnswer is set, the answer section must
// match it. A UDP reply with the TC flag is asked again over TCP, as a
// resolver would. Replies with another ID or question (strays on a UDP
// socket) are skipped; a reply that does not parse fails the check.
type dnsProber struct {
	spec      *Spec
	transport string
	name      string
	qtype     uint16
	recursion bool
	ednsSize  uint16 // 0: no EDNS
	rcode     int
	answer    *regexp.Regexp // nil: any answer section
}

// newDNS builds the prober of a spec whose options passed Validate.
func newDNS(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(DNSOptions)
	p := &dnsProber{spec: spec, transport: o.transport(), name: o.queryName(),
		qtype: dns.StringToType[o.queryType()], recursion: !o.NoRecursion,
		ednsSize: uint16(o.EDNSSize), rcode: dns.StringToRcode[o.expectRcode()]}
	if o.ExpectAnswer != "" {
		p.answer = regexp.MustCompile(o.ExpectAnswer) // Validate compiled it
	}
	return p, nil
}

// Probe queries the server and closes its socket, all within the deadline.
func (p *dnsProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *dnsProber) probe(ctx context.Context) string {
	reply, reason := p.exchange(ctx, p.transport)
	if reason == "" && reply.Truncated && p.transport == "udp" {
		reply, reason = p.exchange(ctx, "tcp")
	}
	if reason != "" {
		return reason
	}
	if reply.Rcode != p.rcode {
		return "rcode " + rcodeName(reply.Rcode)
	}
	if p.answer != nil {
		lines := make([]string, len(reply.Answer))
		for i, rr := range reply.Answer {
			lines[i] = rr.String()
		}
		if !p.answer.MatchString(strings.Join(lines, "\n")) {
			return "answer mismatch"
		}
	}
	return ""
}

func rcodeName(rcode int) string {
	if name, ok := dns.RcodeToString[rcode]; ok {
		return name
	}
	return fmt.Sprint(rcode)
}

// exchange sends the query over network and returns the reply to it, or
// the reason there is none.
func (p *dnsProber) exchange(ctx context.Context, network string) (*dns.Msg, string) {
	conn, err := dialNetwork(ctx, p.spec, network)
	if err != nil {
		return nil, classify(ctx, err)
	}
	defer conn.Close()
	defer deadlineConn(ctx, conn)()

	q := new(dns.Msg)
	q.SetQuestion(p.name, p.qtype)
	q.RecursionDesired = p.recursion
	if p.ednsSize > 0 {
		q.SetEdns0(p.ednsSize, false)
	}
	co := &dns.Conn{Conn: conn}
	if err := co.WriteMsg(q); err != nil {
		return nil, classify(ctx, err)
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := co.Read(buf)
		if err != nil {
			return nil, classify(ctx, err)
		}
		reply := new(dns.Msg)
		if err := reply.Unpack(buf[:n]); err != nil {
			return nil, "error: malformed reply"
		}
		// A reply may leave the question out (FORMERR, NOTIMP); one that
		// has it must have ours.
		if reply.Id != q.Id || !reply.Response || len(reply.Question) > 1 || len(reply.Question) == 1 &&
			(!strings.EqualFold(reply.Question[0].Name, p.name) || reply.Question[0].Qtype != p.qtype) {
			if network == "udp" {
				continue // not the reply to this query
			}
			return nil, "error: reply to another query"
		}
		return reply, ""
	}
}
