package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
)

func TestEmail(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, dir, "smtp.pw", "secret\n")
	cfg, err := ParseWith(filepath.Join(dir, "director.toml"), []byte(`[notify.email]
server = "mail.example.com:smtp"
from = "director@example.com"
to = ["ops@example.com", "Oncall <oncall@example.com>"]
starttls = true
username = "director"
password_file = "smtp.pw"
subject = "LVS {{.VirtualServer}} {{.RealServer}} {{.To}}"
repeat = "1h"
`), Options{ServicesFile: "testdata/services"})
	if err != nil {
		t.Fatal(err)
	}
	want := Email{Server: "mail.example.com:25", From: "director@example.com", To: []string{"ops@example.com", "Oncall <oncall@example.com>"},
		StartTLS: true, Username: "director", PasswordFile: filepath.Join(dir, "smtp.pw"), Subject: "LVS {{.VirtualServer}} {{.RealServer}} {{.To}}", Repeat: time.Hour}
	if e := cfg.Email; e == nil || e.Server != want.Server || e.From != want.From || strings.Join(e.To, "|") != strings.Join(want.To, "|") ||
		!e.StartTLS || e.Username != want.Username || e.PasswordFile != want.PasswordFile || e.Subject != want.Subject || e.Repeat != want.Repeat {
		t.Errorf("got %+v\nwant %+v", cfg.Email, want)
	}
	if mustParse(t, "").Email != nil {
		t.Error("no [notify.email], yet an Email")
	}
}

func TestEmailErrors(t *testing.T) {
	for _, c := range []struct {
		body string
		want []string
	}{
		{``, []string{
			`director.toml:1: notify.email.server: missing; the SMTP relay as host:port, such as "localhost:25"`,
			`director.toml:1: notify.email.from: missing; the sender, such as "director@example.com"`,
			`director.toml:1: notify.email.to: missing; the recipients, such as ["ops@example.com"]`}},
		{`server = "mail.example.com"
from = "not an address"
to = []
repeat = "-1m"
subject = "{{.Nope}}"
colour = "red"`, []string{
			`director.toml:2: notify.email.server: "mail.example.com" must be host:port, such as "localhost:25" or "mail.example.com:587"`,
			`director.toml:3: notify.email.from: "not an address" is not a mail address, such as "director@example.com"`,
			`director.toml:4: notify.email.to: is empty; list who gets the alerts, such as ["ops@example.com"]`,
			`director.toml:5: notify.email.repeat: must not be negative; "0s" mails a server going down once`,
			`director.toml:6: notify.email.subject: template: subject:1:2: executing "subject" at <.Nope>: can't evaluate field Nope in type notify.Event; fields are {{.VirtualServer}}, {{.RealServer}}, {{.From}}, {{.To}}, {{.Reason}}, {{.Type}}, {{.Director}}, {{.Check}}`,
			`director.toml:7: notify.email.colour: unknown key; [notify.email] takes: server, from, to, starttls, username, password_file, subject, repeat`}},
		{`server = "mail.example.com:25"
from = "d@example.com"
to = ["o@example.com"]
username = "d"
password_file = "/nonexistent/pw"`, []string{
			`director.toml:5: notify.email.username: a password is sent only over TLS: set starttls = true (or relay through localhost)`,
			`director.toml:6: notify.email.password_file: cannot read /nonexistent/pw: no such file or directory`}},
		{`server = "localhost:smtpx"
from = "d@example.com"
to = ["o@example.com"]
password_file = "x"`, []string{
			`director.toml:2: notify.email.server: "localhost:smtpx": no tcp service "smtpx" in testdata/services; did you mean "smtp"?`,
			`director.toml:5: notify.email.password_file: is used only with username`}},
	} {
		_, errs := parseNamed(t, "[notify.email]\n"+c.body+"\n")
		sameLines(t, errs, c.want)
	}
}
