package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

// smtpSink is a local SMTP server for the tests: EHLO, STARTTLS (when it
// has a certificate), AUTH PLAIN, MAIL, RCPT, DATA, QUIT. It keeps what
// it receives. silent makes it accept connections and never answer.
type smtpSink struct {
	ln     net.Listener
	tls    *tls.Config
	user   string
	pass   string
	silent bool

	mu   sync.Mutex
	mail []sunkMail
}

type sunkMail struct {
	from string
	to   []string
	data string
	tls  bool
	user string
}

func newSink(t *testing.T, withTLS, silent bool) (*smtpSink, *x509.CertPool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln, user: "alerts", pass: "s3cret", silent: silent}
	var roots *x509.CertPool
	if withTLS {
		ca := testutil.TestCA(t)
		s.tls = &tls.Config{Certificates: []tls.Certificate{ca.ValidLeaf(t)}}
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(ca.PEM)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return s, roots
}

func (s *smtpSink) addr() string { return s.ln.Addr().String() }

func (s *smtpSink) mails() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.mail...)
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if s.silent {
		c.Read(make([]byte, 1)) // until the client gives up
		return
	}
	tp := textproto.NewConn(c)
	var cur sunkMail
	tp.PrintfLine("220 sink ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			exts := []string{"250-sink"}
			if s.tls != nil && !cur.tls {
				exts = append(exts, "250-STARTTLS")
			}
			exts = append(exts, "250 AUTH PLAIN")
			for _, e := range exts {
				tp.PrintfLine("%s", e)
			}
		case "STARTTLS":
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			c, tp, cur.tls = tc, textproto.NewConn(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(resp)
			if parts := strings.Split(string(b), "\x00"); mech == "PLAIN" && len(parts) == 3 && parts[1] == s.user && parts[2] == s.pass {
				cur.user = parts[1]
				tp.PrintfLine("235 ok")
			} else {
				tp.PrintfLine("535 bad credentials")
			}
		case "MAIL":
			cur.from = strings.TrimPrefix(arg, "FROM:")
			tp.PrintfLine("250 ok")
		case "RCPT":
			cur.to = append(cur.to, strings.TrimPrefix(arg, "TO:"))
			tp.PrintfLine("250 ok")
		case "DATA":
			tp.PrintfLine("354 go on")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			cur.data = string(data)
			s.mu.Lock()
			s.mail = append(s.mail, cur)
			s.mu.Unlock()
			cur = sunkMail{tls: cur.tls, user: cur.user}
			tp.PrintfLine("250 queued")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("250 ok")
		}
	}
}

// header returns a header's value from a sunk mail.
func (m sunkMail) header(name string) string {
	r := textproto.NewReader(bufio.NewReader(strings.NewReader(m.data)))
	h, _ := r.ReadMIMEHeader()
	return h.Get(name)
}

// mailNotifier runs a Notifier that mails to sink with s's settings.
func mailNotifier(t *testing.T, s *EmailSettings) (*Notifier, *counts) {
	t.Helper()
	rec := &counts{}
	n := New(Options{Email: func() *EmailSettings { return s }, Recorder: rec, Logger: quiet(), Timeout: 5 * time.Second})
	run(t, n)
	return n, rec
}

func waitMails(t *testing.T, sink *smtpSink, want int) []sunkMail {
	t.Helper()
	if !testutil.Within(20*time.Second, func() bool { return len(sink.mails()) >= want }) {
		t.Fatalf("%d mails arrived, want %d", len(sink.mails()), want)
	}
	return sink.mails()
}

func TestEmailStartTLSAuth(t *testing.T) {
	sink, roots := newSink(t, true, false)
	subject, err := ParseSubject("LVS {{.VirtualServer}}/{{.RealServer}} is {{.To}}")
	if err != nil {
		t.Fatal(err)
	}
	n, rec := mailNotifier(t, &EmailSettings{
		Server: sink.addr(), From: "director@example.com", To: []string{"ops@example.com", "oncall@example.com"},
		StartTLS: true, Username: "alerts", PasswordFile: testutil.WriteFile(t, t.TempDir(), "pw", "s3cret\n"), Subject: subject, TLS: &tls.Config{RootCAs: roots},
	})
	ev := event()
	ev.Reason = "status 503\r\nBcc: victim@example.com" // must not become a header
	n.Notify(ev)
	m := waitMails(t, sink, 1)[0]
	if !m.tls || m.user != "alerts" || m.from != "<director@example.com>" || strings.Join(m.to, ",") != "<ops@example.com>,<oncall@example.com>" {
		t.Errorf("envelope: %+v", m)
	}
	if got := m.header("Subject"); got != "LVS web/10.0.0.11:8080 is down" {
		t.Errorf("subject %q", got)
	}
	if m.header("Bcc") != "" || !strings.Contains(m.data, "web 10.0.0.11:8080: up -> down (status 503 Bcc: victim@example.com) check http GET") {
		t.Errorf("body:\n%s", m.data)
	}
	rec.wait(t, "email/success", 1)
}

func TestEmailRefusals(t *testing.T) {
	plain, _ := newSink(t, false, false)
	tlsSink, roots := newSink(t, true, false)
	for _, c := range []struct {
		name string
		s    EmailSettings
		want string
	}{
		{"starttls required but not offered", EmailSettings{Server: plain.addr(), StartTLS: true}, "does not offer STARTTLS"},
		{"certificate not trusted", EmailSettings{Server: tlsSink.addr(), StartTLS: true}, "certificate"},
		{"wrong password", EmailSettings{Server: tlsSink.addr(), StartTLS: true, TLS: &tls.Config{RootCAs: roots}, Username: "alerts", PasswordFile: testutil.WriteFile(t, t.TempDir(), "pw", "nope")}, "AUTH: 535"},
		{"password file missing", EmailSettings{Server: tlsSink.addr(), StartTLS: true, TLS: &tls.Config{RootCAs: roots}, Username: "alerts", PasswordFile: "/nonexistent/pw"}, "password_file: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := New(Options{Logger: quiet(), Timeout: 5 * time.Second})
			c.s.From, c.s.To = "d@example.com", []string{"o@example.com"}
			err := n.sendMail(context.Background(), &c.s, []Event{event()}, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
	if len(plain.mails())+len(tlsSink.mails()) != 0 {
		t.Error("a refused exchange delivered mail")
	}
}

// A relay that never answers costs one timeout, not a stuck worker.
func TestEmailDeadline(t *testing.T) {
	sink, _ := newSink(t, false, true)
	n := New(Options{Logger: quiet(), Timeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		done <- n.sendMail(context.Background(), &EmailSettings{Server: sink.addr(), From: "d@example.com", To: []string{"o@example.com"}}, []Event{event()}, 0)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("got %v, want a timeout", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sendMail did not give up on a silent server")
	}
}

// A flapping pool: the first event goes out at once, the rest wait for
// the interval's end and go as one digest.
func TestEmailRateLimit(t *testing.T) {
	sink, _ := newSink(t, false, false)
	interval := 500 * time.Millisecond
	n, _ := mailNotifier(t, &EmailSettings{Server: sink.addr(), From: "d@example.com", To: []string{"o@example.com"}, MinInterval: interval})
	for i := range 40 {
		ev := event()
		ev.From, ev.To = "up", "down"
		if i%2 == 1 {
			ev.From, ev.To = "down", "up"
		}
		n.Notify(ev)
		if i == 0 {
			waitMails(t, sink, 1)
		}
	}
	mails := waitMails(t, sink, 2)
	time.Sleep(3 * interval) // room for a third mail, were the limit broken
	if mails = sink.mails(); len(mails) != 2 {
		t.Fatalf("%d mails for 40 events, want 2 (one at once, one digest)", len(mails))
	}
	if got := mails[1].header("Subject"); !strings.HasSuffix(got, "(+38 more)") {
		t.Errorf("digest subject %q, want 39 events in it", got)
	}
	_, body, _ := strings.Cut(mails[1].data, "\n\n")
	if c := strings.Count(body, "web 10.0.0.11:8080:"); c != 39 {
		t.Errorf("digest lists %d events, want 39", c)
	}
}

// While a server stays down a reminder goes out every Repeat; once it is
// up they stop.
func TestEmailRepeat(t *testing.T) {
	sink, _ := newSink(t, false, false)
	n, _ := mailNotifier(t, &EmailSettings{Server: sink.addr(), From: "d@example.com", To: []string{"o@example.com"},
		Repeat: 300 * time.Millisecond, MinInterval: 10 * time.Millisecond})
	n.Notify(event())
	mails := waitMails(t, sink, 3) // the transition, then two reminders
	for _, m := range mails[1:3] {
		if !strings.Contains(m.data, "reminder web 10.0.0.11:8080: down -> down (still down since 2025-01-02T03:04:05Z") {
			t.Errorf("reminder:\n%s", m.data)
		}
	}
	up := event()
	up.From, up.To = "down", "up"
	n.Notify(up)
	if !testutil.Within(20*time.Second, func() bool {
		ms := sink.mails()
		return strings.Contains(ms[len(ms)-1].data, "down -> up")
	}) {
		t.Fatal("the recovery was not mailed")
	}
	count := len(sink.mails())
	time.Sleep(time.Second) // three repeat periods
	if got := len(sink.mails()); got != count {
		t.Errorf("%d reminders after the server came back", got-count)
	}
}

// Run must not ask for the settings before an event: in the director they
// come from the engine, which does not exist yet when the notifier starts.
func TestEmailSettingsNotReadBeforeAnEvent(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	n := New(Options{Logger: quiet(), Email: func() *EmailSettings {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return nil
	}})
	run(t, n)
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if calls != 0 {
		t.Errorf("Email called %d times before any event", calls)
	}
}

func TestParseSubject(t *testing.T) {
	if _, err := ParseSubject(DefaultSubject); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"{{.Server}}", "{{.VirtualServer", "{{index .To 5}}"} {
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
	s := &EmailSettings{From: "d@example.com", To: []string{"a@example.com"}}
	msg, err := Message(s, []Event{event()}, 5, time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Subject: [director] web 10.0.0.11:8080: up -> down (+5 more)\r\n", "... and 5 more events"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}
