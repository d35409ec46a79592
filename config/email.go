package config

import (
	"net"
	"net/mail"
	"strconv"
	"time"

	"github.com/lvsdirector/director/notify"
)

// Email is [notify.email]: alerts mailed through an SMTP relay
// (ldirectord's emailalert, keepalived's notification_email). Every event
// is mailed; the notifier sends at most one mail a minute, the rest as a
// digest (notify/email.go).
type Email struct {
	Server       string // host:port
	From         string
	To           []string
	StartTLS     bool
	Username     string
	PasswordFile string        // with Username; read for every mail
	Subject      string        // a template over the event; "" is notify.DefaultSubject
	Repeat       time.Duration // reminder period while a real server stays down; 0: once
}

var (
	secNotify = section{name: "[notify]", keys: []string{"email"}}
	secEmail  = section{name: "[notify.email]", keys: []string{"server", "from", "to", "starttls", "username", "password_file", "subject", "repeat"}}
)

// email reads [notify.email] into cfg.Email.
func (l *loader) email(root table, cfg *Config) {
	nt, ok := root.sub("notify")
	if !ok {
		return
	}
	nt.unknown(secNotify)
	t, ok := nt.sub("email")
	if !ok {
		return
	}
	t.unknown(secEmail)
	e := &Email{}
	if s, n, ok := t.str("server"); ok {
		e.Server = l.smtpServer(s, n)
	} else if !t.has("server") {
		l.errorf(t.n.child("server"), "missing; the SMTP relay as host:port, such as \"localhost:25\"")
	}
	if s, n, ok := t.str("from"); ok {
		if _, err := mail.ParseAddress(s); err != nil {
			l.errorf(n, "%q is not a mail address, such as \"director@example.com\"", s)
		}
		e.From = s
	} else if !t.has("from") {
		l.errorf(t.n.child("from"), "missing; the sender, such as \"director@example.com\"")
	}
	if list, n, ok := t.strList("to"); ok {
		if len(list) == 0 {
			l.errorf(n, "is empty; list who gets the alerts, such as [\"ops@example.com\"]")
		}
		for i, s := range list {
			if _, err := mail.ParseAddress(s); err != nil {
				l.errorf(n.elem(i, strconv.Itoa(i)), "%q is not a mail address", s)
			}
		}
		e.To = list
	} else if !t.has("to") {
		l.errorf(t.n.child("to"), "missing; the recipients, such as [\"ops@example.com\"]")
	}
	if v, _, ok := t.boolean("starttls"); ok {
		e.StartTLS = v
	}
	if s, n, ok := t.str("username"); ok {
		e.Username = s
		// net/smtp sends PLAIN credentials in clear only to these names.
		host, _, _ := net.SplitHostPort(e.Server)
		if !e.StartTLS && host != "localhost" && host != "127.0.0.1" && host != "::1" {
			l.errorf(n, "a password is sent only over TLS: set starttls = true (or relay through localhost)")
		}
		if !t.has("password_file") {
			l.errorf(n, "needs password_file, the file holding its password")
		}
	}
	if p, n, ok := l.path(t, "password_file"); ok {
		e.PasswordFile = p
		if !t.has("username") {
			l.errorf(n, "is used only with username")
		} else if _, err := notify.ReadPassword(p); err != nil {
			l.errorf(n, "cannot read %s: %v", p, unwrapPath(err))
		}
	}
	if s, n, ok := t.str("subject"); ok {
		if _, err := notify.ParseSubject(s); err != nil {
			l.errorf(n, "%v; fields are {{.VirtualServer}}, {{.RealServer}}, {{.From}}, {{.To}}, {{.Reason}}, {{.Type}}, {{.Director}}, {{.Check}}", err)
		}
		e.Subject = s
	}
	if v, n, ok := t.duration("repeat"); ok {
		if v < 0 {
			l.errorf(n, "must not be negative; \"0s\" mails a server going down once")
		} else {
			e.Repeat = v
		}
	}
	cfg.Email = e
}

// smtpServer checks host:port, the port a number or a tcp service name
// ("mail.example.com:smtp"), and returns it with the port as a number.
func (l *loader) smtpServer(s string, n node) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		l.errorf(n, "%q must be host:port, such as \"localhost:25\" or \"mail.example.com:587\"", s)
		return s
	}
	if isPortName(port) {
		p, msg := l.resolvePort(port, "tcp")
		if msg != "" {
			l.errorf(n, "%q: %s", s, msg)
			return s
		}
		return net.JoinHostPort(host, strconv.Itoa(int(p)))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		l.errorf(n, "%q: port must be 1-65535 or a service name", s)
	}
	return s
}
