package main

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/notify"
)

// The notifier's e-mail settings follow the running config: converted
// once per config, nil without [notify.email].
func TestEmailSettingsFollowConfig(t *testing.T) {
	with, err := config.Parse("a.toml", []byte("[notify.email]\nserver = \"localhost:25\"\nfrom = \"d@example.com\"\nto = [\"o@example.com\"]\nsubject = \"{{.To}}: {{.RealServer}}\"\nrepeat = \"1h\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	without, err := config.Parse("b.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cur := with
	get := emailSettings(slog.Default(), func() *config.Config { return cur })
	s := get()
	if s == nil || s.Server != "localhost:25" || s.Repeat != time.Hour || s.Subject == nil || get() != s {
		t.Fatalf("settings %+v (again: %p, first %p)", s, get(), s)
	}
	var subj bytes.Buffer
	s.Subject.Execute(&subj, notify.Event{To: "down", RealServer: "10.0.0.1:80"})
	if subj.String() != "down: 10.0.0.1:80" {
		t.Errorf("subject %q", subj.String())
	}
	cur = without
	if get() != nil {
		t.Error("a reload without [notify.email] kept mailing")
	}
}
