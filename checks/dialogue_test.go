package checks

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// The presets config.example.toml documents, as steps.
var (
	smtpSteps = []Step{
		{Expect: `(?m)^220 `},
		{Send: `EHLO director.invalid\r\n`, Expect: `(?m)^250 `},
		{Send: `QUIT\r\n`, Expect: `^221`},
	}
	smtpStartTLSSteps = []Step{
		{Expect: `(?m)^220 `},
		{Send: `EHLO director.invalid\r\n`, Expect: `(?m)^250 `},
		{Send: `STARTTLS\r\n`, Expect: `^220`, StartTLS: true},
		{Send: `EHLO director.invalid\r\n`, Expect: `(?m)^250 `},
		{Send: `QUIT\r\n`, Expect: `^221`},
	}
	pop3Steps      = []Step{{Expect: `^\+OK`}, {Send: `QUIT\r\n`, Expect: `^\+OK`}}
	pop3STLSSteps  = []Step{{Expect: `^\+OK`}, {Send: `STLS\r\n`, Expect: `^\+OK`, StartTLS: true}, {Send: `QUIT\r\n`, Expect: `^\+OK`}}
	imapSteps      = []Step{{Expect: `^\* OK`}, {Send: `a1 LOGOUT\r\n`, Expect: `(?m)^a1 OK`}}
	ftpSteps       = []Step{{Expect: `(?m)^220 `}, {Send: `QUIT\r\n`, Expect: `^221`}}
	nntpSteps      = []Step{{Expect: `^20[01] `}, {Send: `QUIT\r\n`, Expect: `^205`}}
	redisSteps     = []Step{{Send: `PING\r\n`, Expect: `^\+PONG`}}
	memcachedSteps = []Step{{Send: `version\r\n`, Expect: `^VERSION `}}
)

func dialogueSpec(target netip.AddrPort, steps ...Step) Spec {
	return Spec{Type: "dialogue", Target: target, Options: DialogueOptions{Steps: steps}}
}

// lineServer greets with greeting, then answers each line read with
// answers[line] (or "-ERR\r\n"); a line mapped to "" is not answered and
// the server waits for the client to go.
func lineServer(t *testing.T, greeting string, answers map[string]string) netip.AddrPort {
	t.Helper()
	return testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, greeting)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			answer, ok := answers[strings.TrimRight(line, "\r\n")]
			switch {
			case !ok:
				answer = "-ERR\r\n"
			case answer == "":
				io.Copy(io.Discard, r)
				return
			}
			io.WriteString(c, answer)
			if strings.HasPrefix(line, "QUIT") || strings.HasSuffix(strings.TrimSpace(line), "LOGOUT") {
				return
			}
		}
	})
}

// Protocol servers as their RFCs have them answer, for the presets Debian
// has no cheap server for here.
func TestDialoguePresets(t *testing.T) {
	for _, tt := range []struct {
		name     string
		greeting string
		answers  map[string]string
		steps    []Step
	}{
		{"pop3", "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
			map[string]string{"QUIT": "+OK dewey POP3 server signing off\r\n"}, pop3Steps},
		{"imap", "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] IMAP4rev1 Service Ready\r\n",
			map[string]string{"a1 LOGOUT": "* BYE IMAP4rev1 Server logging out\r\na1 OK LOGOUT completed\r\n"}, imapSteps},
		{"ftp", "220-FTP server ready.\r\n220-Local time is now 10:00.\r\n220 This is a private system.\r\n",
			map[string]string{"QUIT": "221 Goodbye.\r\n"}, ftpSteps},
		{"nntp posting", "200 NNTP Service Ready, posting permitted\r\n",
			map[string]string{"QUIT": "205 closing connection\r\n"}, nntpSteps},
		{"nntp reading", "201 NNTP Service Ready, posting prohibited\r\n",
			map[string]string{"QUIT": "205 closing connection\r\n"}, nntpSteps},
		{"smtp multi-line greeting and EHLO", "220-mail.example ESMTP\r\n220 mail.example ready\r\n",
			map[string]string{"EHLO director.invalid": "250-mail.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 HELP\r\n",
				"QUIT": "221 2.0.0 Bye\r\n"}, smtpSteps},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := lineServer(t, tt.greeting, tt.answers)
			wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(target, tt.steps...)), 5*time.Second))
		})
	}

	// The same presets against servers that say no.
	for _, tt := range []struct {
		name, greeting string
		answers        map[string]string
		steps          []Step
		want           string
	}{
		{"pop3 busy", "-ERR maildrop locked\r\n", nil, pop3Steps, "expect mismatch at step 1"},
		{"imap bye", "* BYE Autologout; idle for too long\r\n", nil, imapSteps, "expect mismatch at step 1"},
		{"ftp too many users", "421 Too many users, try later.\r\n", nil, ftpSteps, "expect mismatch at step 1"},
		{"nntp unavailable", "502 Service permanently unavailable\r\n", nil, nntpSteps, "expect mismatch at step 1"},
		{"smtp refuses EHLO", "220 mail.example ready\r\n", map[string]string{"EHLO director.invalid": "550 go away\r\n"}, smtpSteps, "expect mismatch at step 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := lineServer(t, tt.greeting, tt.answers)
			wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(target, tt.steps...)), time.Second), tt.want)
		})
	}
}

func TestDialogueFailures(t *testing.T) {
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(testutil.ClosedPort(t), redisSteps...)), 5*time.Second), "refused")

	hanging := testutil.HangingServer(t)
	p := mustNew(t, dialogueSpec(hanging, smtpSteps...))
	done := checkNoLeak(t)
	wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout at step 1")
	done()

	// A server that greets, then never answers: the timeout bounds the
	// whole dialogue, not each step.
	stalls := lineServer(t, "220 ready\r\n", map[string]string{"EHLO director.invalid": ""})
	p = mustNew(t, dialogueSpec(stalls, smtpSteps...))
	done = checkNoLeak(t)
	wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout at step 2")
	done()

	// Hung up after the greeting.
	hangsUp := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, "220 ready\r\n")
		bufio.NewReader(c).ReadString('\n')
	})
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(hangsUp, smtpSteps...)), 5*time.Second), "error: connection closed at step 2")

	// Reset while the probe waits.
	resets := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		c.Read(make([]byte, 64))
		c.(*net.TCPConn).SetLinger(0)
	})
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(resets, redisSteps...)), 5*time.Second), "reset at step 1")

	// Chatter that never matches ends at the read cap, not the timeout.
	chatter := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		for {
			if _, err := io.WriteString(c, strings.Repeat("noise ", 100)); err != nil {
				return
			}
		}
	})
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(chatter, Step{Expect: "NEVER"})), 5*time.Second), "expect mismatch at step 1")

	// The reason of a step that sends without expecting anything.
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(testutil.ClosedPort(t), Step{Send: "x"})), 5*time.Second), "refused")
}

// What a step receives beyond its match is there for the next step that
// only reads; a step that sends drops it first.
func TestDialoguePending(t *testing.T) {
	target := lineServer(t, "+OK one\r\n+OK two\r\n", map[string]string{"NEXT": "-ERR no\r\n"})
	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(target, Step{Expect: `^\+OK one\r\n`}, Step{Expect: `^\+OK two`})), 5*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(target, Step{Expect: `^\+OK one\r\n`}, Step{Send: `NEXT\r\n`, Expect: `\+OK`})), time.Second),
		"expect mismatch at step 2")
	// A step without expect does not wait: the dialogue ends after it.
	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(testutil.HangingServer(t), Step{Send: `QUIT\r\n`})), 5*time.Second))
}

// tlsLineServer is a POP3 server with STLS: inject is written after the
// go-ahead, before the handshake, and hello once TLS is up.
func tlsLineServer(t *testing.T, cert tls.Certificate, inject, hello string) netip.AddrPort {
	t.Helper()
	return testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, "+OK POP3 ready\r\n")
		r := bufio.NewReader(c)
		if line, _ := r.ReadString('\n'); line != "STLS\r\n" {
			io.WriteString(c, "-ERR say STLS\r\n")
			return
		}
		io.WriteString(c, "+OK begin TLS negotiation\r\n"+inject)
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if err := tc.Handshake(); err != nil {
			return
		}
		io.WriteString(tc, hello)
		tr := bufio.NewReader(tc)
		for {
			line, err := tr.ReadString('\n')
			if err != nil {
				return
			}
			if line == "QUIT\r\n" {
				io.WriteString(tc, "+OK bye\r\n")
				return
			}
			io.WriteString(tc, "-ERR\r\n")
		}
	})
}

func TestDialogueSTARTTLS(t *testing.T) {
	pki := testutil.TestCA(t)
	target := tlsLineServer(t, pki.ValidLeaf(t), "", "")
	spec := dialogueSpec(target, pop3STLSSteps...)
	o := spec.Options.(DialogueOptions)
	o.TLSOptions = TLSOptions{CAFile: pki.File(t)}
	spec.Options = o
	wantOK(t, probeWithin(t, mustNew(t, spec), 5*time.Second))

	// The certificate is verified.
	o.TLSOptions = TLSOptions{}
	spec.Options = o
	wantReason(t, probeWithin(t, mustNew(t, spec), 5*time.Second), "tls: certificate signed by unknown authority at step 2")
	o.TLSOptions = TLSOptions{TLSSkipVerify: true}
	spec.Options = o
	wantOK(t, probeWithin(t, mustNew(t, spec), 5*time.Second))

	// Plaintext slipped in before the handshake is never read as an
	// answer to a step after it: the answer must come through TLS.
	injected := tlsLineServer(t, pki.ValidLeaf(t), "+OK mail for you\r\n", "-ERR nothing for you\r\n")
	injectedSpec := Spec{Type: "dialogue", Target: injected, Options: DialogueOptions{TLSOptions: TLSOptions{CAFile: pki.File(t)},
		Steps: []Step{pop3STLSSteps[0], pop3STLSSteps[1], {Expect: `(?m)^\+OK mail`}}}}
	if res := probeWithin(t, mustNew(t, injectedSpec), time.Second); res.OK {
		t.Error("plaintext sent before the TLS handshake was taken as the answer of a step after it")
	}
	// The same dialogue when the server says it over TLS.
	injectedSpec.Target = tlsLineServer(t, pki.ValidLeaf(t), "", "+OK mail for you\r\n")
	wantOK(t, probeWithin(t, mustNew(t, injectedSpec), 5*time.Second))

	// A server that does not do STLS.
	spec.Target = lineServer(t, "+OK POP3 ready\r\n", map[string]string{"QUIT": "+OK\r\n"})
	wantReason(t, probeWithin(t, mustNew(t, spec), time.Second), "expect mismatch at step 2")

	// A TLS server that never answers the handshake.
	hang := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		io.WriteString(c, "+OK POP3 ready\r\n")
		r := bufio.NewReader(c)
		r.ReadString('\n')
		io.WriteString(c, "+OK begin TLS negotiation\r\n")
		io.Copy(io.Discard, r)
	})
	spec.Target = hang
	p := mustNew(t, spec)
	done := checkNoLeak(t)
	wantReason(t, probeWithin(t, p, 300*time.Millisecond), "timeout at step 2")
	done()
}

// tls = true: IMAPS, POP3S, SMTPS.
func TestDialogueImplicitTLS(t *testing.T) {
	pki := testutil.TestCA(t)
	l := tls.NewListener(testutil.Listen(t), &tls.Config{Certificates: []tls.Certificate{pki.ValidLeaf(t)}})
	target := testutil.ServeConns(t, l, func(c net.Conn) {
		io.WriteString(c, "* OK IMAP4rev1 ready\r\n")
		if line, _ := bufio.NewReader(c).ReadString('\n'); line == "a1 LOGOUT\r\n" {
			io.WriteString(c, "* BYE\r\na1 OK LOGOUT completed\r\n")
		}
	})
	spec := Spec{Type: "dialogue", Target: target, Options: DialogueOptions{Steps: imapSteps, TLS: true, TLSOptions: TLSOptions{CAFile: pki.File(t)}}}
	wantOK(t, probeWithin(t, mustNew(t, spec), 5*time.Second))
	spec.Options = DialogueOptions{Steps: imapSteps, TLS: true}
	wantReason(t, probeWithin(t, mustNew(t, spec), 5*time.Second), "tls: certificate signed by unknown authority")
}

// Real servers: redis-server, memcached and aiosmtpd (Python's SMTP
// server, with STARTTLS), started by the tests on loopback ports (see
// daemon_test.go).

// listening says whether a TCP connection to addr succeeds.
func listening(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
}

func TestDialogueRedis(t *testing.T) {
	bin := needBinary(t, "redis-server")
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	startDaemon(t, exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--requirepass", "s3cret"), listening(addr.String()))

	auth := Step{Send: `AUTH s3cret\r\n`, Expect: `^\+OK`}
	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(addr, auth, redisSteps[0])), 5*time.Second))
	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(addr, auth,
		Step{Send: `SET director:probe 1\r\n`, Expect: `^\+OK`}, Step{Send: `GET director:probe\r\n`, Expect: `^\$1\r\n1\r\n`})), 5*time.Second))
	// Without the password: -NOAUTH.
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(addr, redisSteps...)), time.Second), "expect mismatch at step 1")
	// With a wrong one: -WRONGPASS.
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(addr, Step{Send: `AUTH nope\r\n`, Expect: `^\+OK`}, redisSteps[0])), time.Second),
		"expect mismatch at step 1")
}

func TestDialogueMemcached(t *testing.T) {
	bin := needBinary(t, "memcached")
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "8", "-t", "1"}
	if os.Geteuid() == 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-u", u.Username)
	}
	startDaemon(t, exec.Command(bin, args...), listening(addr.String()))
	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(addr, memcachedSteps...)), 5*time.Second))
	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(addr, Step{Send: `set director 0 0 2\r\nok\r\n`, Expect: `^STORED\r\n`},
		Step{Send: `get director\r\n`, Expect: `^VALUE director 0 2\r\nok\r\nEND`})), 5*time.Second))
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(addr, Step{Send: `get missing\r\n`, Expect: `^VALUE`})), time.Second),
		"expect mismatch at step 1")
}

// smtpServer runs aiosmtpd, Debian's python3-aiosmtpd, with STARTTLS
// offered with cert.
func smtpServer(t *testing.T, cert tls.Certificate) netip.AddrPort {
	t.Helper()
	python := "/usr/bin/python3" // Debian's, whatever python3 is first in PATH
	if out, err := exec.Command(python, "-c", "import aiosmtpd").CombinedOutput(); err != nil {
		msg := "aiosmtpd not importable by " + python + " (" + strings.TrimSpace(string(out)) +
			"); install it with: apt-get install -y --no-install-recommends python3-aiosmtpd"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: this test must run)")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	cmd := exec.Command(python, "-m", "aiosmtpd", "-n", "-l", addr.String(), "-c", "aiosmtpd.handlers.Sink",
		"--tlscert", certFile, "--tlskey", keyFile)
	startDaemon(t, cmd, listening(addr.String()))
	return addr
}

func TestDialogueSMTP(t *testing.T) {
	pki := testutil.TestCA(t)
	addr := smtpServer(t, pki.ValidLeaf(t))

	wantOK(t, probeWithin(t, mustNew(t, dialogueSpec(addr, smtpSteps...)), 5*time.Second))
	spec := Spec{Type: "dialogue", Target: addr, Options: DialogueOptions{Steps: smtpStartTLSSteps, TLSOptions: TLSOptions{CAFile: pki.File(t)}}}
	wantOK(t, probeWithin(t, mustNew(t, spec), 5*time.Second))
	spec.Options = DialogueOptions{Steps: smtpStartTLSSteps, TLSOptions: TLSOptions{CAFile: pki.File(t), ServerName: "other.example"}}
	wantReasonPrefix(t, probeWithin(t, mustNew(t, spec), 5*time.Second), "tls: certificate is valid for test.example")
	// This server wants STARTTLS before mail: 530 for MAIL FROM.
	wantReason(t, probeWithin(t, mustNew(t, dialogueSpec(addr, smtpSteps[0], smtpSteps[1],
		Step{Send: `MAIL FROM:<probe@director.invalid>\r\n`, Expect: `^250`})), 2*time.Second), "expect mismatch at step 3")
	// After STARTTLS the same command is accepted.
	steps := append(smtpStartTLSSteps[:4:4], Step{Send: `MAIL FROM:<probe@director.invalid>\r\n`, Expect: `^250`}, smtpStartTLSSteps[4])
	spec.Options = DialogueOptions{Steps: steps, TLSOptions: TLSOptions{CAFile: pki.File(t)}}
	wantOK(t, probeWithin(t, mustNew(t, spec), 5*time.Second))
}
