package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

// readmeExample is one ```sh example block of the README.
type readmeExample struct {
	line int // of its opening fence
	text string
}

// readmeExamples extracts the README's shell blocks marked "sh example",
// with their indentation (inside list items) removed.
func readmeExamples(t *testing.T) []readmeExample {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []readmeExample
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if trimmed != "```sh example" {
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		ex := readmeExample{line: i + 1}
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			ex.text += strings.TrimPrefix(lines[i], strings.Repeat(" ", indent)) + "\n"
		}
		out = append(out, ex)
	}
	return out
}

// curlChecked stands in for curl on the examples' PATH: it runs the real
// curl and fails on an HTTP error, which curl itself does not, so that an
// example the director refuses (415, 400, 404) fails the test. 409, "not
// in this state", is the answer the README says a request may get.
const curlChecked = `#!/bin/sh
out=$(%s -sS -w '\nHTTP_STATUS %%{http_code}' "$@") || exit $?
code=${out##*HTTP_STATUS }
printf '%%s\n' "${out%%HTTP_STATUS *}"
case $code in
2*|409) ;;
*) echo "curl: HTTP $code" >&2; exit 22 ;;
esac
`

// TestReadmeExamples runs every README block marked ```sh example against
// a -dry-run director whose config has what the examples name.
func TestReadmeExamples(t *testing.T) {
	examples := readmeExamples(t)
	if len(examples) < 2 {
		t.Fatalf("the README has %d ```sh example blocks; the write API and the status examples at least should be", len(examples))
	}
	realCurl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl not found (CI=true: this test must run)")
		}
		t.Skip("curl not found; apt-get install curl")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}

	backend := okBackend(t)
	_, backendPort, _ := strings.Cut(backend, ":")
	dir := t.TempDir()
	token := "readme-example-token"
	if err := os.WriteFile(filepath.Join(dir, "api-token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := testutil.ClosedPort(t).String()
	// The real servers the examples name, checked on loopback: the
	// director must send no check to 10.0.0.0/8.
	cfg := testutil.WriteFile(t, dir, "director.toml", fmt.Sprintf(`[director]
listen = %q
api_token_file = %q
state_file = %q

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
  [virtual_server.check]
  type = "http"
  address = "127.0.0.1"
  port = %s
  interval = "500ms"
  timeout = "400ms"
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"
  [[virtual_server.real_server]]
  address = "10.0.0.12:8080"
`, listen, filepath.Join(dir, "api-token"), filepath.Join(dir, "state.json"), backendPort))
	d := startDaemon(t, "run", cfg, "-dry-run")
	d.waitStarted()
	d.waitLog(`real server up`)

	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(bin, "director")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "curl"), []byte(fmt.Sprintf(curlChecked, realCurl)), 0o755); err != nil {
		t.Fatal(err)
	}
	// What the examples assume of a director host, pointed at this one.
	local := strings.NewReplacer(
		"/etc/director/", dir+"/",
		"127.0.0.1:9410", listen,
		"director status", "director status -addr "+listen,
	)
	for _, ex := range examples {
		script := local.Replace(ex.text)
		cmd := exec.Command(bash, "-euo", "pipefail", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README.md:%d: the example failed: %v\n--- example:\n%s--- output:\n%s\n--- director log:\n%s", ex.line, err, ex.text, out, d.logText())
			continue
		}
		t.Logf("README.md:%d:\n%s", ex.line, out)
	}
	// The write API example left its marks: a drain and a disable, set
	// and ended (enable) or still in force.
	log := d.logText()
	for _, want := range []string{`kind=drain`, `kind=disable`} {
		if !regexp.MustCompile(want).MatchString(log) {
			t.Errorf("the director's log has no %s: the write API example did not reach it\n%s", want, log)
		}
	}
}
