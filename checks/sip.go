package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// SIPOptions are the options of sip checks: one OPTIONS request and its
// final response.
type SIPOptions struct {
	Transport  string // "udp" (default) or "tcp"
	RequestURI string // default sip:<target address>:<port>
	// ExpectCode are the final response codes and ranges ("200",
	// "200-299") that count as up; default 200-299. (Not http's
	// expect_status: SIP's codes run to 699, and a key shared in
	// [defaults.check] would be judged by both.)
	ExpectCode []string
}

// The timers of RFC 3261 (17.1.2.2) for a non-INVITE request over UDP: the
// first retransmission after sipT1, doubling up to sipT2.
const (
	sipT1 = 500 * time.Millisecond
	sipT2 = 4 * time.Second
)

// sipReadCap bounds the response data a TCP probe reads.
const sipReadCap = 64 << 10

// sipDatagramCap is the largest UDP response read whole. RFC 3261 (18.1.1)
// moves messages near the path MTU to TCP, so answers to OPTIONS stay far
// below it; a longer one is cut and fails to parse ("bad response").
const sipDatagramCap = 8 << 10

var sipKind = Kind{
	Name: "sip",
	Keys: []Key{{Name: "transport"}, {Name: "request_uri"}, {Name: "expect_code"}},
	Zero: SIPOptions{},
	Decode: func(d Decoder) Options {
		var o SIPOptions
		o.Transport, _ = d.String("transport")
		o.RequestURI, _ = d.String("request_uri")
		if list, ok := d.Strings("expect_code"); ok {
			if len(list) == 0 {
				d.Errorf("expect_code", "must not be empty; leave it out to accept 200-299")
			} else {
				o.ExpectCode = list
			}
		}
		return o
	},
	build: newSIP,
}

func (o SIPOptions) transport() string {
	if o.Transport == "" {
		return "udp"
	}
	return o.Transport
}

// statuses are the final codes that count as up.
func (o SIPOptions) statuses() ([]StatusRange, error) {
	if len(o.ExpectCode) == 0 {
		return []StatusRange{{200, 299}}, nil
	}
	return parseCodeRanges(o.ExpectCode, 200, 699)
}

// requestURI is the Request-URI, defaults applied.
func (o SIPOptions) requestURI(target netip.AddrPort) string {
	if o.RequestURI != "" {
		return o.RequestURI
	}
	u := "sip:" + target.String()
	if o.transport() == "tcp" {
		u += ";transport=tcp"
	}
	return u
}

// Validate checks each option.
func (o SIPOptions) Validate() []OptionError {
	var errs []OptionError
	if t := o.transport(); t != "udp" && t != "tcp" {
		errs = append(errs, OptionError{Key: "transport", Msg: fmt.Sprintf("unknown transport %q; valid: udp, tcp", o.Transport)})
	}
	if o.RequestURI != "" {
		var u sip.Uri
		switch {
		case strings.ContainsFunc(o.RequestURI, isControlOrSpace):
			errs = append(errs, OptionError{Key: "request_uri", Msg: fmt.Sprintf("%q contains spaces or control characters", o.RequestURI)})
		case !strings.HasPrefix(o.RequestURI, "sip:") || sip.ParseUri(o.RequestURI, &u) != nil || u.Host == "":
			errs = append(errs, OptionError{Key: "request_uri", Msg: fmt.Sprintf("%q is not a sip: URI such as \"sip:ping@10.0.0.11:5060\"", o.RequestURI)})
		}
	}
	if _, err := o.statuses(); err != nil {
		errs = append(errs, OptionError{Key: "expect_code", Msg: strings.Replace(err.Error(), "invalid status", "invalid code", 1)})
	}
	return errs
}

// Canonical renders every option, defaults applied.
func (o SIPOptions) Canonical() string {
	var c canonical
	c.str("transport", o.transport())
	c.str("request_uri", o.RequestURI)
	codes := o.ExpectCode
	if len(codes) == 0 {
		codes = []string{"200-299"}
	}
	c.list("expect_code", codes)
	return c.text()
}

// Describe is the request: "sip OPTIONS sip:10.0.0.11:5060",
// "sip OPTIONS sip:10.0.0.11:5060;transport=tcp".
func (o SIPOptions) Describe(s Spec) string { return "sip OPTIONS " + o.requestURI(s.Target) }

// sipProber sends an OPTIONS request (RFC 3261 11) and waits for its final
// response: a code in expect_code is up, another is "status N".
// Responses to other requests (another branch, Call-ID or CSeq) and
// provisional ones are passed over. Over UDP the socket is connected (an
// ICMP port unreachable is "refused") and the request is sent again as
// RFC 3261's timer E says, 0.5 s, 1 s, 2 s, 4 s, 4 s ... apart (starting
// at a third of the timeout when that is less than 0.5 s), until the
// deadline.
type sipProber struct {
	spec     *Spec
	tcp      bool
	uri      sip.Uri
	statuses []StatusRange
}

func newSIP(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(SIPOptions)
	p := &sipProber{spec: spec, tcp: o.transport() == "tcp"}
	if err := sip.ParseUri(o.requestURI(spec.Target), &p.uri); err != nil {
		return nil, fmt.Errorf("%s: request_uri: %v", spec, err)
	}
	p.statuses, _ = o.statuses() // Validate judged them
	return p, nil
}

// Probe sends the request and judges the final response, all within the
// deadline.
func (p *sipProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

// sipTransaction is what identifies the responses to one request.
type sipTransaction struct {
	branch, callID string
}

func (p *sipProber) probe(ctx context.Context) string {
	network := "udp"
	if p.tcp {
		network = "tcp"
	}
	conn, err := dialNetwork(ctx, p.spec, network)
	if err != nil {
		return classify(ctx, err)
	}
	defer conn.Close()
	defer deadlineConn(ctx, conn)()
	dl, _ := ctx.Deadline() // run always sets one

	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	req, tx := p.request(local)
	if _, err := conn.Write(req); err != nil {
		return classify(ctx, err)
	}
	if p.tcp {
		return p.awaitStream(ctx, conn, tx)
	}
	return p.awaitDatagrams(ctx, conn, req, tx, dl)
}

// request builds the OPTIONS request from local, the socket's address.
func (p *sipProber) request(local netip.AddrPort) ([]byte, sipTransaction) {
	tx := sipTransaction{branch: sip.GenerateBranch(), callID: sip.GenerateTagN(24)}
	host := local.Addr().Unmap().String()
	uri := p.uri
	req := sip.NewRequest(sip.OPTIONS, uri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: host, Port: int(local.Port()), Params: sip.NewParams()}
	if p.tcp {
		via.Transport = "TCP"
	}
	via.Params.Add("branch", tx.branch)
	req.AppendHeader(via)
	maxForwards := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxForwards)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "director", Host: host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri})
	callID := sip.CallIDHeader(tx.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	req.AppendHeader(sip.NewHeader("User-Agent", "director"))
	length := sip.ContentLengthHeader(0)
	req.AppendHeader(&length)
	return []byte(req.String()), tx
}

// judge looks at one message: done says it decided the check, with reason
// ("" for up).
func (p *sipProber) judge(msg sip.Message, tx sipTransaction) (reason string, done bool) {
	res, ok := msg.(*sip.Response)
	if !ok || !tx.matches(res) || res.IsProvisional() {
		return "", false
	}
	if statusOK(p.statuses, res.StatusCode) {
		return "", true
	}
	return "status " + strconv.Itoa(res.StatusCode), true
}

// matches reports whether res answers the transaction's request.
func (tx sipTransaction) matches(res *sip.Response) bool {
	via, callID, cseq := res.Via(), res.CallID(), res.CSeq()
	if via == nil || callID == nil || cseq == nil {
		return false
	}
	branch, _ := via.Params.Get("branch")
	return branch == tx.branch && string(*callID) == tx.callID && cseq.MethodName == sip.OPTIONS && cseq.SeqNo == 1
}

// awaitDatagrams reads responses, sending the request again on timer E.
func (p *sipProber) awaitDatagrams(ctx context.Context, conn net.Conn, req []byte, tx sipTransaction, dl time.Time) string {
	buf := make([]byte, sipDatagramCap)
	// Timer E starts at T1, or at a third of the time left when that is
	// shorter: a checker's timeout is often under T1, and one lost
	// datagram should not fail a check.
	wait := min(sipT1, time.Until(dl)/3)
	resend := time.Now().Add(wait)
	sawGarbage := false
	for {
		until := resend
		if until.After(dl) {
			until = dl
		}
		conn.SetReadDeadline(until)
		// The context may have ended before that deadline replaced the one
		// its AfterFunc set.
		if ctx.Err() != nil {
			return classify(ctx, ctx.Err())
		}
		n, err := conn.Read(buf)
		switch {
		case err == nil:
			msg, perr := sip.ParseMessage(buf[:n])
			if perr != nil {
				sawGarbage = true
				continue
			}
			if reason, done := p.judge(msg, tx); done {
				return reason
			}
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil && time.Now().Before(dl):
			if _, err := conn.Write(req); err != nil {
				return classify(ctx, err)
			}
			wait = min(2*wait, sipT2)
			resend = time.Now().Add(wait)
		default:
			if reason := classify(ctx, err); reason != "timeout" || !sawGarbage {
				return reason
			}
			return "bad response"
		}
	}
}

// awaitStream reads responses from a TCP connection, framed by their
// Content-Length.
func (p *sipProber) awaitStream(ctx context.Context, conn net.Conn, tx sipTransaction) string {
	parser := sip.NewParser().NewSIPStream()
	defer parser.Close()
	buf := make([]byte, 4<<10)
	read := 0
	for {
		n, err := conn.Read(buf)
		read += n
		if n > 0 {
			var reason string
			var done bool
			perr := parser.ParseSIPStream(buf[:n], func(msg sip.Message) {
				if !done {
					reason, done = p.judge(msg, tx)
				}
			})
			switch {
			case done:
				return reason
			case perr != nil && !errors.Is(perr, sip.ErrParseSipPartial):
				return "bad response"
			case read >= sipReadCap:
				return "bad response"
			}
		}
		if err != nil {
			return classify(ctx, err)
		}
	}
}
