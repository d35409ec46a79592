package checks

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

func TestTCPConnect(t *testing.T) {
	target := testutil.ServeConns(t, testutil.Listen(t), func(net.Conn) {})
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target}), 5*time.Second))
}

func TestTCPRefused(t *testing.T) {
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: testutil.ClosedPort(t)}), 5*time.Second), "refused")
}

func TestTCPHanging(t *testing.T) {
	target := testutil.HangingServer(t)
	for _, tt := range []struct {
		name string
		spec Spec
	}{
		{"banner", Spec{Type: "tcp", Target: target, Options: TCPOptions{Expect: "^220 "}}},
		{"send expect", Spec{Type: "tcp", Target: target, Options: TCPOptions{Send: "PING\r\n", Expect: "PONG"}}},
		{"tls", Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true, TLSOptions: TLSOptions{TLSSkipVerify: true}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.spec)
			done := checkNoLeak(t)
			wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout")
			done()
		})
	}
}

// pingServer answers each "PING" line with "+PONG".
func pingServer(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(line) == "PING" {
			io.WriteString(c, "+PONG\r\n")
		} else {
			io.WriteString(c, "-ERR unknown command\r\n")
		}
	}
}

func TestTCPSendExpect(t *testing.T) {
	target := testutil.ServeConns(t, testutil.Listen(t), pingServer)
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Send: "PING\r\n", Expect: `^\+PONG`}}), 5*time.Second))
	// Send without Expect: writing is enough.
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Send: "PING\r\n"}}), 5*time.Second))
	// The server answers, but not what is expected; it keeps the
	// connection open, so the probe waits for the deadline.
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Send: "HELLO\r\n", Expect: `^\+PONG`}}), 500*time.Millisecond), "expect mismatch")
}

func TestTCPBanner(t *testing.T) {
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, "220 mail.example ESMTP ready\r\n")
		io.Copy(io.Discard, c)
	})
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Expect: `^220 `}}), 5*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Expect: `^\+OK`}}), 500*time.Millisecond), "expect mismatch")

	// A banner that says no, then hangs up: a mismatch, reported at once.
	refusing := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, "554 go away\r\n")
	})
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: refusing, Options: TCPOptions{Expect: `^220 `}}), 5*time.Second), "expect mismatch")
}

func TestTCPCap(t *testing.T) {
	// Endless chatter without a match: the read cap ends the probe.
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		chunk := []byte(strings.Repeat("noise ", 100))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Expect: "NEVER"}}), 5*time.Second), "expect mismatch")
}

func TestTCPClosed(t *testing.T) {
	target := testutil.ServeConns(t, testutil.Listen(t), func(net.Conn) {})
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Expect: "^220"}}), 5*time.Second), "error: connection closed")
}

func TestTCPReset(t *testing.T) {
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		// Wait for the request so the reset comes after connect, then
		// abort the connection.
		c.Read(make([]byte, 64))
		c.(*net.TCPConn).SetLinger(0)
	})
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{Send: "PING\r\n", Expect: "PONG"}}), 5*time.Second), "reset")
}

func TestTCPTLS(t *testing.T) {
	pki := testutil.TestCA(t)
	caFile := pki.File(t)
	cert := pki.ValidLeaf(t)
	l := tls.NewListener(testutil.Listen(t), &tls.Config{Certificates: []tls.Certificate{cert}})
	target := testutil.ServeConns(t, l, func(c net.Conn) {
		if err := c.(*tls.Conn).Handshake(); err != nil {
			return
		}
		io.WriteString(c, "* OK IMAP4rev1 ready\r\n")
		pingServer(c)
	})

	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true, TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second))
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true, Expect: `^\* OK`, TLSOptions: TLSOptions{CAFile: caFile}}}), 5*time.Second))
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true, Send: "PING\r\n", Expect: `\+PONG`, TLSOptions: TLSOptions{ServerName: "test.example", CAFile: caFile}}}), 5*time.Second))
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true, TLSOptions: TLSOptions{TLSSkipVerify: true}}}), 5*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true}}), 5*time.Second), "tls: certificate signed by unknown authority")
	wantReasonPrefix(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Options: TCPOptions{TLS: true, TLSOptions: TLSOptions{CAFile: caFile, ServerName: "imap.other.example"}}}), 5*time.Second), "tls: certificate is valid for test.example")

	// Without TLS the probe reads the TLS server's silence.
	plain := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, "+OK POP3 ready\r\n")
		io.Copy(io.Discard, c) // no reset from unread data
	})
	wantReason(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: plain, Options: TCPOptions{TLS: true, TLSOptions: TLSOptions{TLSSkipVerify: true}}}), 5*time.Second), "tls: server did not answer with TLS")
}

func TestTCPSource(t *testing.T) {
	seen := make(chan string, 1)
	target := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		seen <- c.RemoteAddr().String()
	})
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Source: netip.MustParseAddr("127.0.0.2")}), 5*time.Second))
	remote := <-seen
	if host, _, _ := net.SplitHostPort(remote); host != "127.0.0.2" {
		t.Errorf("server saw the probe from %s, want 127.0.0.2", remote)
	}
}

func TestTCPIPv6(t *testing.T) {
	if !ipv6Loopback() {
		t.Skip("no IPv6 loopback")
	}
	target := testutil.ServeConns(t, testutil.ListenAt(t, "[::1]:0"), pingServer)
	wantOK(t, probeWithin(t, mustNew(t, Spec{Type: "tcp", Target: target, Source: netip.IPv6Loopback(), Options: TCPOptions{Send: "PING\n", Expect: "PONG"}}), 5*time.Second))
}
