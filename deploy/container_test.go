package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lvsdirector/director/internal/testutil"
)

// TestContainerFiles holds the Dockerfile, docker-compose.yml and the
// README to what the image needs: no file capabilities on the binary
// (with them the kernel refuses to exec it unless the container is granted
// every capability they name), uid 0 so that --cap-add reaches the
// process, NET_ADMIN granted and NET_RAW only offered.
func TestContainerFiles(t *testing.T) {
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dockerfile, compose, readme := read("Dockerfile"), read("docker-compose.yml"), read("README.md")

	code := regexp.MustCompile(`(?m)^[^#\n].*$`).FindAllString(dockerfile, -1)
	body := strings.Join(code, "\n")
	for _, bad := range []string{"setcap", "libcap", "cap_net"} {
		if strings.Contains(body, bad) {
			t.Errorf("Dockerfile uses %s: the binary must carry no file capabilities", bad)
		}
	}
	final := body[strings.LastIndex(body, "FROM "):]
	if !strings.Contains(final, "USER 0:0") {
		t.Errorf("the final stage must run as uid 0 (Docker grants --cap-add to uid 0 only):\n%s", final)
	}
	if !strings.Contains(body, "CGO_ENABLED=0") {
		t.Error("the binary must be static (CGO_ENABLED=0): distroless/static has no libc")
	}

	// Every documented docker run line drops all and adds NET_ADMIN, and
	// none grants NET_RAW.
	runLine := regexp.MustCompile(`(?s)docker run .*?director:latest`)
	for name, text := range map[string]string{"Dockerfile": dockerfile, "README.md": readme} {
		lines := runLine.FindAllString(text, -1)
		if len(lines) == 0 {
			t.Errorf("%s has no docker run line", name)
		}
		for _, l := range lines {
			if !strings.Contains(l, "--cap-drop ALL") || !strings.Contains(l, "--cap-add NET_ADMIN") || strings.Contains(l, "NET_RAW") ||
				!strings.Contains(l, "--network host") {
				t.Errorf("%s: docker run line without --network host --cap-drop ALL --cap-add NET_ADMIN, or with NET_RAW:\n%s", name, l)
			}
		}
	}
	for _, want := range []string{"network_mode: host", "cap_drop:\n      - ALL", "cap_add:\n      - NET_ADMIN\n", "/etc/director:/etc/director:ro", "director-state:/var/lib/director"} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^\s*- NET_RAW`).MatchString(compose) {
		t.Error("docker-compose.yml grants NET_RAW; it is only for ICMP checks on raw sockets (README, Required privileges)")
	}
}

// TestConfigReadableWithOnlyNetAdmin runs `director check` the way the
// container runs the director, as uid 0 with every capability but
// CAP_NET_ADMIN dropped, to hold the README to what it says of the
// mounted config: readable through its permission bits, or not at all.
func TestConfigReadableWithOnlyNetAdmin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to drop capabilities from uid 0")
	}
	setpriv := testutil.RequireTool(t, "setpriv", "util-linux")
	dir := t.TempDir()
	binary := buildDirector(t, dir)
	cfg, err := os.ReadFile("debian/director.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		uid, gid int
		mode     os.FileMode
		ok       bool
	}{
		{"root 0600", 0, 0, 0o600, true},
		{"root:director 0640", 0, 4242, 0o640, true},
		{"another user's 0644", 4242, 4242, 0o644, true},
		{"another user's 0600", 4242, 4242, 0o600, false},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, tc.uid, tc.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(setpriv, "--bounding-set=-all,+net_admin", "--inh-caps=-all", "--", binary, "check", path).CombinedOutput()
		if (err == nil) != tc.ok || (!tc.ok && !strings.Contains(string(out), "permission denied")) {
			t.Errorf("%s: check as uid 0 with only CAP_NET_ADMIN: %v\n%s", tc.name, err, out)
		}
	}
}
