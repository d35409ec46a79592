package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/config"
)

func TestDebianVersion(t *testing.T) {
	date := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ desc, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3~dirty"},
		{"v1.2.3-4-gabc123", "1.2.3+git4.abc123"},
		{"v1.2.3-4-gabc123-dirty", "1.2.3+git4.abc123~dirty"},
		{"c4b7f83", "0~git20261201.c4b7f83"},
		{"c4b7f83-dirty", "0~git20261201.c4b7f83~dirty"},
	} {
		got := debianVersion(tc.desc, date)
		if got != tc.want || !validVersion.MatchString(got) {
			t.Errorf("debianVersion(%q) = %q, want %q (a valid Debian version)", tc.desc, got, tc.want)
		}
	}
}

// TestConffile: the config the package installs is one `director check`
// accepts: valid, with a virtual server.
func TestConffile(t *testing.T) {
	cfg, err := config.Load("../../deploy/debian/director.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VirtualServers) == 0 || len(cfg.Warnings) > 0 {
		t.Errorf("deploy/debian/director.toml: %d virtual servers, warnings %v", len(cfg.VirtualServers), cfg.Warnings)
	}
}

// TestManPages renders both pages from the README and has groff read
// them with every warning on: none may come.
func TestManPages(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := manPages(string(readme), string(example), "Usage:\n  director run FILE\n", "1.0", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][]string{
		"/usr/share/man/man8/director.8.gz":      {".SH \"SYNOPSIS\"", ".SH \"USAGE\"", ".SS \"Reloads\"", ".SH \"METRICS\"", "director_real_server_up", ".SH \"FILES\""},
		"/usr/share/man/man5/director.toml.5.gz": {".SS \"Semantics to know\"", ".SS \"Admin overrides\"", ".SH \"EXAMPLE\"", "resync_interval = \"30s\""},
	}
	groff, groffErr := exec.LookPath("groff")
	for path, wants := range checks {
		page, ok := pages[path]
		if !ok {
			t.Errorf("no page %s", path)
			continue
		}
		for _, want := range wants {
			if !strings.Contains(page, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
		if strings.Contains(page, "### Running under systemd") || (strings.Contains(path, "man5") && strings.Contains(page, "Running under systemd")) {
			t.Errorf("%s: the unit belongs in director(8)", path)
		}
		if groffErr != nil {
			continue
		}
		var stderr bytes.Buffer
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", "-k")
		cmd.Stdin, cmd.Stderr = strings.NewReader(page), &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff on %s: %v\n%s", path, err, stderr.String())
		}
	}
	if groffErr != nil {
		t.Log("groff not found: the pages were not typeset (apt-get install groff-base)")
	}
}

func TestGzipIsDeterministic(t *testing.T) {
	a, b := gz([]byte("page")), gz([]byte("page"))
	if !bytes.Equal(a, b) {
		t.Fatal("two compressions of the same text differ")
	}
	r, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if string(got) != "page" || r.Name != "" || !r.ModTime.IsZero() {
		t.Errorf("gz: %q name %q time %v", got, r.Name, r.ModTime)
	}
}
