package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/lvsdirector/director/internal/safefile"
)

// E-mail alerts ([notify.email]): every event goes to a mail worker that
// sends at most one mail per EmailSettings.MinInterval. Events that come
// within the interval are held and sent together as one digest when it
// ends, so a flapping pool makes a mail a minute, not one per flap. While
// a real server stays down, a reminder is added every Repeat (ldirectord's
// emailalertfreq). Every SMTP exchange runs under one deadline.

// DefaultEmailMinInterval is the least time between two mails.
const DefaultEmailMinInterval = time.Minute

// maxDigestEvents bounds the events one mail lists; the rest are counted.
const maxDigestEvents = 100

// EmailSettings is where and how alerts are mailed.
type EmailSettings struct {
	Server   string // host:port of the SMTP relay
	From     string
	To       []string
	StartTLS bool // require STARTTLS (the server's certificate verified)
	Username string
	// PasswordFile holds Username's password, read for every mail so
	// that a rotated password needs no reload; AUTH PLAIN, which net/smtp
	// sends only over TLS or to a loopback server.
	PasswordFile string
	// Subject renders the subject from the first event of a mail
	// (ParseSubject); DefaultSubject when nil.
	Subject *template.Template
	// Repeat re-sends a reminder while a real server stays down; 0: once.
	Repeat time.Duration
	// MinInterval is the least time between mails;
	// DefaultEmailMinInterval when zero.
	MinInterval time.Duration
	// TLS is the STARTTLS client config; nil verifies against the system
	// roots with the server's host name.
	TLS *tls.Config
}

// DefaultSubject is the subject template unless one is configured.
const DefaultSubject = `[director] {{.VirtualServer}} {{.RealServer}}: {{.From}} -> {{.To}}`

// ParseSubject parses a subject template over an Event's fields
// ({{.VirtualServer}}, {{.RealServer}}, {{.From}}, {{.To}}, {{.Reason}},
// {{.Type}}, {{.Director}}, {{.Check}}) and tries it on a sample event, so
// that an unknown field is an error at load, not at the first alert.
func ParseSubject(text string) (*template.Template, error) {
	t, err := template.New("subject").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	sample := Event{Type: "transition", VirtualServer: "web", RealServer: "10.0.0.1:80", From: "up", To: "down", Reason: "connection refused"}
	if err := t.Execute(&bytes.Buffer{}, sample); err != nil {
		return nil, err
	}
	return t, nil
}

// downKey names a real server of a virtual server for reminders.
type downKey struct{ vs, rs string }

type downState struct {
	since    time.Time
	reminded time.Time // last mention in a mail
	last     Event     // the transition to down
}

// mailer is the e-mail worker's state; only its goroutine touches it.
type mailer struct {
	n        *Notifier
	pending  []Event
	more     int // events past maxDigestEvents in pending's mail
	lastSent time.Time
	down     map[downKey]*downState
}

// runEmail is the e-mail worker: it holds events until a mail may go and
// adds reminders for servers that stay down.
func (n *Notifier) runEmail(ctx context.Context) {
	m := &mailer{n: n, down: map[downKey]*downState{}}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// Settings are asked for only once there is something to mail:
		// Email may read state that does not exist yet when Run starts
		// (the engine's running config).
		var s *EmailSettings
		if len(m.pending) > 0 || len(m.down) > 0 {
			s = n.opts.Email()
		}
		next := m.nextWake(s, time.Now())
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			if len(m.pending) > 0 {
				n.opts.Logger.Warn("notify: stopping with e-mail undelivered", "events", len(m.pending)+m.more)
			}
			return
		case ev := <-n.emails:
			m.add(ev, time.Now())
		case <-timer.C:
			m.tick(ctx, s, time.Now())
		}
		timer.Stop()
	}
}

// add takes an event in: it is mailed, and a transition to or from down
// starts or ends the reminders.
func (m *mailer) add(ev Event, now time.Time) {
	if ev.Type == "transition" {
		k := downKey{ev.VirtualServer, ev.RealServer}
		if ev.To == "down" {
			m.down[k] = &downState{since: ev.Time, reminded: now, last: ev}
		} else {
			delete(m.down, k)
		}
	}
	m.queue(ev)
}

func (m *mailer) queue(ev Event) {
	if len(m.pending) >= maxDigestEvents {
		m.more++
		return
	}
	m.pending = append(m.pending, ev)
}

// nextWake is when the worker must act next: the end of the interval
// with mail pending, or the next reminder; zero for never.
func (m *mailer) nextWake(s *EmailSettings, now time.Time) time.Time {
	if s == nil {
		return time.Time{}
	}
	var next time.Time
	if len(m.pending) > 0 {
		next = m.lastSent.Add(minInterval(s))
		if next.Before(now) {
			next = now
		}
	}
	if s.Repeat > 0 {
		for _, d := range m.down {
			if due := d.reminded.Add(s.Repeat); next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	return next
}

func minInterval(s *EmailSettings) time.Duration {
	if s.MinInterval > 0 {
		return s.MinInterval
	}
	return DefaultEmailMinInterval
}

// tick adds the reminders due and sends what is pending if a mail may go.
func (m *mailer) tick(ctx context.Context, s *EmailSettings, now time.Time) {
	if s == nil {
		m.pending, m.more = nil, 0 // [notify.email] was removed by a reload
		return
	}
	if s.Repeat > 0 {
		keys := make([]downKey, 0, len(m.down))
		for k, d := range m.down {
			if !now.Before(d.reminded.Add(s.Repeat)) {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			return keys[i].vs < keys[j].vs || keys[i].vs == keys[j].vs && keys[i].rs < keys[j].rs
		})
		for _, k := range keys {
			d := m.down[k]
			d.reminded = now
			r := d.last
			r.Type, r.Time, r.From = "reminder", now, "down"
			r.Reason = fmt.Sprintf("still down since %s (%s ago): %s", d.since.UTC().Format(time.RFC3339), now.Sub(d.since).Round(time.Second), d.last.Reason)
			m.queue(r)
		}
	}
	if len(m.pending) == 0 || now.Before(m.lastSent.Add(minInterval(s))) {
		return
	}
	err := m.n.sendMail(ctx, s, m.pending, m.more)
	m.lastSent = now // a failed attempt also waits the interval: a dead relay must not be hammered
	if err != nil {
		m.n.opts.Recorder.Notification("email", "failure")
		m.n.opts.Logger.Error("notify: e-mail failed; the events are kept for the next attempt", "server", s.Server, "events", len(m.pending)+m.more, "err", err)
		return
	}
	m.n.opts.Recorder.Notification("email", "success")
	m.pending, m.more = nil, 0
}

// Message renders the mail for events (more: further events left out),
// headers included, with CRLF line ends.
func Message(s *EmailSettings, events []Event, more int, now time.Time) ([]byte, error) {
	tmpl := s.Subject
	if tmpl == nil {
		tmpl = template.Must(ParseSubject(DefaultSubject))
	}
	var subj bytes.Buffer
	if err := tmpl.Execute(&subj, events[0]); err != nil {
		return nil, fmt.Errorf("subject template: %w", err)
	}
	subject := oneLine(subj.String())
	if extra := len(events) - 1 + more; extra > 0 {
		subject += fmt.Sprintf(" (+%d more)", extra)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", s.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(s.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nAuto-Submitted: auto-generated\r\n\r\n")
	for _, ev := range events {
		fmt.Fprintf(&b, "%s %s", ev.Time.UTC().Format(time.RFC3339), ev.Type)
		if ev.VirtualServer != "" {
			fmt.Fprintf(&b, " %s", ev.VirtualServer)
		}
		if ev.RealServer != "" {
			fmt.Fprintf(&b, " %s", ev.RealServer)
		}
		if ev.VRRPInstance != "" {
			fmt.Fprintf(&b, " vrrp %s", ev.VRRPInstance)
		}
		fmt.Fprintf(&b, ": %s -> %s", ev.From, ev.To)
		if ev.Reason != "" {
			fmt.Fprintf(&b, " (%s)", oneLine(ev.Reason))
		}
		if ev.Check != "" {
			fmt.Fprintf(&b, " check %s", ev.Check)
		}
		b.WriteString("\r\n")
	}
	if more > 0 {
		fmt.Fprintf(&b, "... and %d more events (see the director's log and /api/v1/status)\r\n", more)
	}
	if len(events) > 0 && events[0].Director != "" {
		fmt.Fprintf(&b, "\r\n-- \r\ndirector on %s\r\n", events[0].Director)
	}
	return []byte(b.String()), nil
}

// oneLine keeps a header value on one line: a reason with a newline must
// not add headers.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// sendMail delivers one mail, the whole SMTP exchange bounded by the
// notifier's timeout.
func (n *Notifier) sendMail(ctx context.Context, s *EmailSettings, events []Event, more int) error {
	msg, err := Message(s, events, more, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Server)
	if err != nil {
		return fmt.Errorf("server %q: %w", s.Server, err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Server)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// A cancelled context (shutdown) ends the exchange at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(helloName(n.host)); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if s.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS, which starttls = true requires")
		}
		cfg := s.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.Username != "" {
		password, err := ReadPassword(s.PasswordFile)
		if err != nil {
			return err
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, password, host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range s.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

// maxPasswordBytes bounds a password file: a password is a line.
const maxPasswordBytes = 4 << 10

// ReadPassword reads a password file: its content less one final line
// break. Errors name the file, never its content.
func ReadPassword(path string) (string, error) {
	b, err := safefile.ReadFile(path, maxPasswordBytes)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// helloName is the name the director gives in EHLO: its host name when
// that is a usable one, else "localhost".
func helloName(host string) string {
	if host == "" || strings.ContainsAny(host, " \r\n") {
		return "localhost"
	}
	return host
}
