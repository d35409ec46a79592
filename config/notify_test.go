package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNotifyInheritanceAndOverride(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "notify")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, `[director]
notify_command = ["`+script+`", "--from-director"]
notify_url = "https://alerts.example.com/hook?token=x"
notify_timeout = "3s"

[[virtual_server]]
name = "inherits"
address = "192.0.2.10:80"

[[virtual_server]]
name = "own"
address = "192.0.2.11:80"
notify_command = ["`+script+`", "own"]
notify_url = ""
`)
	if len(cfg.Warnings) != 2 { // two virtual servers without real servers
		t.Errorf("warnings = %v", cfg.Warnings)
	}
	want := Notify{Command: []string{script, "--from-director"}, URL: "https://alerts.example.com/hook?token=x", Timeout: 3 * time.Second}
	if !reflect.DeepEqual(cfg.Notify, want) {
		t.Errorf("global notify = %+v, want %+v", cfg.Notify, want)
	}
	if got := cfg.VirtualServers[0].Notify; !reflect.DeepEqual(got, want) {
		t.Errorf("inheriting virtual server = %+v, want %+v", got, want)
	}
	wantOwn := Notify{Command: []string{script, "own"}, Timeout: 3 * time.Second}
	if got := cfg.VirtualServers[1].Notify; !reflect.DeepEqual(got, wantOwn) {
		t.Errorf("overriding virtual server = %+v, want %+v", got, wantOwn)
	}
}

func TestNotifyProblems(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		errs       []string // substrings, each expected in the error text
		warn       string   // expected in a warning when the config is valid
	}{
		{"relative command", `[director]
notify_command = ["notify.sh"]`, []string{`director.toml:2: director.notify_command: "notify.sh" must be an absolute path`}, ""},
		{"not a list", `[director]
notify_command = "/bin/true"`, []string{"director.toml:2: director.notify_command: must be an array of strings"}, ""},
		{"empty program", `[director]
notify_command = [""]`, []string{"director.toml:2: director.notify_command: the first element must be the program"}, ""},
		{"bad url", `[director]
notify_url = "ftp://example.com/x"`, []string{`director.toml:2: director.notify_url: "ftp://example.com/x" is not an http or https URL`}, ""},
		{"bad timeout", `[director]
notify_timeout = "0s"`, []string{"director.toml:2: director.notify_timeout: must be greater than 0"}, ""},
		{"per virtual server", `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
notify_url = "hooks.example.com"`, []string{`director.toml:4: virtual_server[web].notify_url: "hooks.example.com" is not an http or https URL`}, ""},
		{"missing program is a warning", `[director]
notify_command = ["/nonexistent/lvs-notify"]`, nil, "/nonexistent/lvs-notify: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(file, []byte(tc.text))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				var ws []string
				for _, w := range cfg.Warnings {
					ws = append(ws, w.String())
				}
				if !strings.Contains(strings.Join(ws, "\n"), tc.warn) {
					t.Errorf("warnings %q lack %q", ws, tc.warn)
				}
				return
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want *Errors", err)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error\n%v\nlacks %q", err, want)
				}
			}
		})
	}
}
