package checks

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/lvsdirector/director/internal/testutil"
)

// sipAnswer says how a test server answers the n-th request it gets: the
// responses to write, in order, built from the request. None: silence.
type sipAnswer func(n int, req *sip.Request) [][]byte

func respond(codes ...int) sipAnswer {
	return func(_ int, req *sip.Request) [][]byte {
		var out [][]byte
		for _, c := range codes {
			out = append(out, []byte(sip.NewResponseFromRequest(req, c, "Reason", nil).String()))
		}
		return out
	}
}

// sipRequests keeps the requests a test server got.
type sipRequests struct {
	mu   sync.Mutex
	reqs []*sip.Request
}

func (r *sipRequests) add(req *sip.Request) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return len(r.reqs)
}

func (r *sipRequests) all() []*sip.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*sip.Request(nil), r.reqs...)
}

// sipUDPServer parses each datagram with sipgo's parser and answers it.
func sipUDPServer(t *testing.T, answer sipAnswer) (netip.AddrPort, *sipRequests) {
	t.Helper()
	seen := &sipRequests{}
	target := udpServerFrom(t, func(pc net.PacketConn, in []byte, from net.Addr) {
		msg, err := sip.ParseMessage(in)
		if err != nil {
			t.Errorf("the server got an unparsable request: %v\n%s", err, in)
			return
		}
		req := msg.(*sip.Request)
		for _, out := range answer(seen.add(req), req) {
			pc.WriteTo(out, from)
		}
	})
	return target, seen
}

// sipTCPServer reads requests from each connection with sipgo's stream
// parser and answers them.
func sipTCPServer(t *testing.T, answer sipAnswer) (netip.AddrPort, *sipRequests) {
	t.Helper()
	seen := &sipRequests{}
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		parser := sip.NewParser().NewSIPStream()
		defer parser.Close()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			parser.ParseSIPStream(buf[:n], func(msg sip.Message) {
				req := msg.(*sip.Request)
				for _, out := range answer(seen.add(req), req) {
					c.Write(out)
				}
			})
		}
	})
	return target, seen
}

func sipSpec(target netip.AddrPort, o SIPOptions) Spec {
	return Spec{Type: "sip", Target: target, Options: o}
}

func TestSIP(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			server := sipUDPServer
			if transport == "tcp" {
				server = sipTCPServer
			}
			o := SIPOptions{Transport: transport}
			target, seen := server(t, respond(200))
			wantOK(t, probeWithin(t, mustNew(t, sipSpec(target, o)), 2*time.Second))

			// The request as RFC 3261 has it.
			req := seen.all()[0]
			want := "sip:" + target.String()
			if transport == "tcp" {
				want += ";transport=tcp"
			}
			if req.Method != sip.OPTIONS || req.Recipient.String() != want {
				t.Errorf("request line %s %s, want OPTIONS %s", req.Method, req.Recipient.String(), want)
			}
			via := req.Via()
			branch, _ := via.Params.Get("branch")
			if !strings.HasPrefix(branch, "z9hG4bK") || via.Transport != strings.ToUpper(transport) || via.Host != "127.0.0.1" {
				t.Errorf("Via %s", via.Value())
			}
			if tag, _ := req.From().Params.Get("tag"); tag == "" {
				t.Errorf("From without a tag: %s", req.From().Value())
			}
			if req.CallID() == nil || req.CSeq().Value() != "1 OPTIONS" || req.MaxForwards().Val() != 70 || req.ContentLength().Value() != "0" {
				t.Errorf("request headers:\n%s", req)
			}

			// Provisional responses are passed over; the final one counts.
			target, _ = server(t, respond(100, 183, 200))
			wantOK(t, probeWithin(t, mustNew(t, sipSpec(target, o)), 2*time.Second))

			// A final code outside expect_code.
			target, _ = server(t, respond(503))
			wantReason(t, probeWithin(t, mustNew(t, sipSpec(target, o)), 2*time.Second), "status 503")
			o2 := o
			o2.ExpectCode = []string{"200-299", "500-599"}
			wantOK(t, probeWithin(t, mustNew(t, sipSpec(target, o2)), 2*time.Second))

			// A response to another request is not the answer.
			target, _ = server(t, func(_ int, req *sip.Request) [][]byte {
				res := sip.NewResponseFromRequest(req, 200, "OK", nil)
				res.Via().Params.Add("branch", "z9hG4bK.someone-else")
				return [][]byte{[]byte(res.String())}
			})
			p := mustNew(t, sipSpec(target, o))
			done := checkNoLeak(t)
			wantReason(t, probeWithin(t, p, 700*time.Millisecond), "timeout")
			done()

			// Not SIP at all.
			target, _ = server(t, func(int, *sip.Request) [][]byte { return [][]byte{[]byte("HTTP/1.1 400 Bad Request\r\n\r\n")} })
			wantReason(t, probeWithin(t, mustNew(t, sipSpec(target, o)), 700*time.Millisecond), "bad response")

			// Silence.
			target, _ = server(t, func(int, *sip.Request) [][]byte { return nil })
			p = mustNew(t, sipSpec(target, o))
			done = checkNoLeak(t)
			wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout")
			done()
		})
	}

	// Refused: an ICMP port unreachable for UDP, a RST for TCP.
	wantReason(t, probeWithin(t, mustNew(t, sipSpec(closedUDPPort(t), SIPOptions{})), 2*time.Second), "refused")
	wantReason(t, probeWithin(t, mustNew(t, sipSpec(testutil.ClosedPort(t), SIPOptions{Transport: "tcp"})), 2*time.Second), "refused")
	// A TCP server that accepts and says nothing.
	wantReason(t, probeWithin(t, mustNew(t, sipSpec(testutil.HangingServer(t), SIPOptions{Transport: "tcp"})), 300*time.Millisecond), "timeout")
	// One that hangs up.
	closes := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })
	wantReason(t, probeWithin(t, mustNew(t, sipSpec(closes, SIPOptions{Transport: "tcp"})), 2*time.Second), "error: connection closed")
}

// Over UDP a lost request is sent again after T1 (0.5 s), then 1 s, ...
func TestSIPRetransmits(t *testing.T) {
	target, seen := sipUDPServer(t, func(n int, req *sip.Request) [][]byte {
		if n < 3 {
			return nil
		}
		return respond(200)(n, req)
	})
	res := probeWithin(t, mustNew(t, sipSpec(target, SIPOptions{})), 3*time.Second)
	wantOK(t, res)
	reqs := seen.all()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	// The same transaction each time.
	for _, r := range reqs[1:] {
		if r.Via().Value() != reqs[0].Via().Value() || r.CallID().Value() != reqs[0].CallID().Value() {
			t.Errorf("a retransmission is another transaction:\n%s\n%s", reqs[0], r)
		}
	}
	if res.Duration < 1400*time.Millisecond {
		t.Errorf("answered after %v: the retransmissions came sooner than 0.5 s and 1 s", res.Duration)
	}
}

// With a timeout under 1.5 s timer E starts at a third of it, so a lost
// request is still sent again in time.
func TestSIPRetransmitsWithinShortTimeouts(t *testing.T) {
	target, seen := sipUDPServer(t, func(n int, req *sip.Request) [][]byte {
		if n == 1 {
			return nil
		}
		return respond(200)(n, req)
	})
	wantOK(t, probeWithin(t, mustNew(t, sipSpec(target, SIPOptions{})), 600*time.Millisecond))
	if n := len(seen.all()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestSIPOptions(t *testing.T) {
	for _, tt := range []struct {
		o       SIPOptions
		invalid []string
	}{
		{SIPOptions{}, nil},
		{SIPOptions{Transport: "tcp", RequestURI: "sip:ping@sip.example:5060", ExpectCode: []string{"200", "400-699"}}, nil},
		{SIPOptions{Transport: "tls"}, []string{`transport: unknown transport "tls"; valid: udp, tcp`}},
		{SIPOptions{RequestURI: "http://x"}, []string{`request_uri: "http://x" is not a sip: URI such as "sip:ping@10.0.0.11:5060"`}},
		{SIPOptions{RequestURI: "sip:a b"}, []string{`request_uri: "sip:a b" contains spaces or control characters`}},
		{SIPOptions{ExpectCode: []string{"180"}}, []string{`expect_code: invalid code "180": want a code 200-699 or a range like "200-299"`}},
	} {
		if got := validation(tt.o); fmt.Sprint(got) != fmt.Sprint(tt.invalid) {
			t.Errorf("%+v: %q, want %q", tt.o, got, tt.invalid)
		}
	}
	for _, tt := range []struct {
		o    SIPOptions
		want string
	}{
		{SIPOptions{}, "sip OPTIONS sip:10.0.0.11:5060"},
		{SIPOptions{Transport: "tcp"}, "sip OPTIONS sip:10.0.0.11:5060;transport=tcp"},
		{SIPOptions{RequestURI: "sip:ping@x"}, "sip OPTIONS sip:ping@x"},
	} {
		if got := tt.o.Describe(Spec{Target: netip.MustParseAddrPort("10.0.0.11:5060")}); got != tt.want {
			t.Errorf("Describe = %q, want %q", got, tt.want)
		}
	}
	// A set request_uri is what goes on the request line.
	target, seen := sipUDPServer(t, respond(200))
	wantOK(t, probeWithin(t, mustNew(t, sipSpec(target, SIPOptions{RequestURI: "sip:ping@sip.example"})), 2*time.Second))
	if got := seen.all()[0].Recipient.String(); got != "sip:ping@sip.example" {
		t.Errorf("request URI %s", got)
	}
}

// sippScenario answers every OPTIONS request with code.
const sippScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="OPTIONS answered with %[1]d">
  <recv request="OPTIONS" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 %[1]d %[2]s
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
</scenario>
`

// sippServer runs SIPp (Debian's sip-tester) as a UAS answering OPTIONS
// with code, over transport "u1" (UDP) or "t1" (TCP).
func sippServer(t *testing.T, transport string, code int, reason string) netip.AddrPort {
	t.Helper()
	bin := needBinary(t, "sipp")
	dir := t.TempDir()
	scenario := filepath.Join(dir, "options.xml")
	if err := os.WriteFile(scenario, fmt.Appendf(nil, sippScenario, code, reason), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	cmd := exec.Command(bin, "-sf", scenario, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-t", transport, "-nostdin", "-m", "1000")
	cmd.Dir = dir // its logs
	// Ready once it answers at all (UDP has no connection to wait for).
	probe := mustNew(t, sipSpec(addr, SIPOptions{Transport: map[string]string{"u1": "udp", "t1": "tcp"}[transport]}))
	startDaemon(t, cmd, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		res := probe.Probe(ctx)
		return res.OK || strings.HasPrefix(res.Reason, "status ")
	})
	return addr
}

func TestSIPWithSIPp(t *testing.T) {
	for _, tt := range []struct{ sippTransport, transport string }{{"u1", "udp"}, {"t1", "tcp"}} {
		t.Run(tt.transport, func(t *testing.T) {
			ok := sippServer(t, tt.sippTransport, 200, "OK")
			p := mustNew(t, sipSpec(ok, SIPOptions{Transport: tt.transport}))
			wantOK(t, probeWithin(t, p, 5*time.Second))
			wantOK(t, probeWithin(t, p, 2*time.Second))
			busy := sippServer(t, tt.sippTransport, 503, "Service Unavailable")
			wantReason(t, probeWithin(t, mustNew(t, sipSpec(busy, SIPOptions{Transport: tt.transport})), 5*time.Second), "status 503")
		})
	}
}
