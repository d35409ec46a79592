package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAdminKeys(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  s3cret-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	maint := filepath.Join(dir, "maintenance")
	if err := os.Mkdir(maint, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "director.toml")
	cfg, err := Parse(name, []byte(`[director]
maintenance_dir = "maintenance"
api_token_file = "`+tokenFile+`"
state_file = "/var/lib/director/other.json"
panic_threshold = 0.5
flap_damping = true
flap_penalty = 500
flap_suppress = 1500
flap_reuse = 400
flap_half_life = "2m"
flap_max_suppress = "20m"

[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
quorum = 150
hysteresis = 50
fallback = "127.0.0.1:8080"
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"
  weight = 100
  [[virtual_server.real_server]]
  address = "10.0.0.12:8080"
  weight = 100

[[virtual_server]]
name = "calm"
address = "192.0.2.11:80"
panic_threshold = 0
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Director
	if d.MaintenanceDir != maint || d.APITokenFile != tokenFile || d.APIToken != "s3cret-token-0123456789" ||
		d.StateFile != "/var/lib/director/other.json" || d.PanicThreshold != 0.5 {
		t.Errorf("director = %+v", d)
	}
	want := Damping{Enabled: true, Penalty: 500, Suppress: 1500, Reuse: 400, HalfLife: 2 * time.Minute, MaxSuppress: 20 * time.Minute}
	if d.Damping != want {
		t.Errorf("damping = %+v, want %+v", d.Damping, want)
	}
	web, calm := cfg.VirtualServers[0], cfg.VirtualServers[1]
	if web.Quorum != 150 || web.Hysteresis != 50 || web.PanicThreshold != 0.5 {
		t.Errorf("web: quorum %d hysteresis %d panic %v", web.Quorum, web.Hysteresis, web.PanicThreshold)
	}
	if calm.Quorum != DefaultQuorum || calm.PanicThreshold != 0 {
		t.Errorf("calm: quorum %d panic %v, want the defaults (1, off)", calm.Quorum, calm.PanicThreshold)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].String(), "has no real servers") {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
}

func TestAdminErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	afile := filepath.Join(dir, "afile")
	os.WriteFile(afile, []byte("x"), 0o600)
	stateDir := filepath.Join(dir, "statedir")
	os.Mkdir(stateDir, 0o700)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"token file is a FIFO", "[director]\napi_token_file = \"" + fifo + "\"", []string{`director.toml:2: director.api_token_file: ` + fifo +
			` is a named pipe (FIFO), not a regular file; api_token_file must name a regular file`}},
		{"short token", "[director]\napi_token_file = \"" + short + "\"", []string{`director.toml:2: director.api_token_file: ` + short + `: the token is too short; use at least 16 characters, such as the output of: head -c 32 /dev/urandom | base64`}},
		{"maintenance not a dir", "[director]\nmaintenance_dir = \"" + afile + "\"", []string{`director.toml:2: director.maintenance_dir: ` + afile + ` is not a directory`}},
		{"state file is a directory", "[director]\nstate_file = \"" + stateDir + "\"", []string{`director.toml:2: director.state_file: ` + stateDir +
			` is a directory, not a regular file; state_file names the file itself, such as "` + stateDir + `/state.json"`}},
		{"state file is a FIFO", "[director]\n\nstate_file = \"" + fifo + "\"", []string{`director.toml:3: director.state_file: ` + fifo +
			` is a named pipe (FIFO), not a regular file; state_file must name a regular file (or one that does not exist yet), which the director replaces on every change`}},
		{"state file is a device", "[director]\nstate_file = \"/dev/null\"", []string{`director.toml:2: director.state_file: /dev/null is a character device, not a regular file; state_file must name a regular file (or one that does not exist yet), which the director replaces on every change`}},
		{"empty paths", "[director]\nstate_file = \"\"", []string{`director.toml:2: director.state_file: must not be empty; leave state_file out to turn it off`}},
		{"panic out of range", "[director]\npanic_threshold = 1.5", []string{`director.toml:2: director.panic_threshold: 1.5 is out of range; write a share of the servers such as 0.5 (more than half), or 0 to turn it off`}},
		{"panic not a number", "[director]\npanic_threshold = \"50%\"", []string{`director.toml:2: director.panic_threshold: must be a number, not a string ("50%")`}},
		{"damping order", "[director]\nflap_suppress = 500\nflap_reuse = 600\nflap_half_life = \"0s\"", []string{
			`director.toml:3: director.flap_reuse: 600 must be below flap_suppress (500): a server is held out above flap_suppress and let back in below flap_reuse`,
			`director.toml:4: director.flap_half_life: must be greater than 0, not 0s`,
		}},
		{"negative penalty", "[director]\nflap_penalty = -1", []string{`director.toml:2: director.flap_penalty: must be greater than 0, not -1`}},
		{"quorum", "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\nquorum = 0\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"", []string{
			`director.toml:4: virtual_server[web].quorum: 0 is out of range; quorum is a sum of weights, 1-4294967295`,
		}},
		{"hysteresis", "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\nquorum = 10\nhysteresis = 10\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"", []string{
			`director.toml:5: virtual_server[web].hysteresis: 10 must be below quorum (10): quorum is lost below quorum - hysteresis and regained at quorum + hysteresis`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { sameLines(t, problems(t, tt.src), tt.want) })
	}
}

// TestTokenFileGoneIsNotAnError: a missing or empty token file is how the
// token is revoked: a warning (the write API is off), never a config
// error, which would fail the reload and keep the old token.
func TestTokenFileGoneIsNotAnError(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for path, want := range map[string]string{
		filepath.Join(dir, "missing"): " does not exist; the write API is off until it holds a token",
		empty:                         " is empty; the write API is off until it holds a token, such as the output of: head -c 32 /dev/urandom | base64",
	} {
		cfg := mustParse(t, "[director]\napi_token_file = \""+path+"\"\n")
		if cfg.Director.APIToken != "" || cfg.Director.APITokenFile != path {
			t.Errorf("%s: director = %+v", path, cfg.Director)
		}
		if len(cfg.Warnings) != 1 || cfg.Warnings[0].String() != "director.toml:2: director.api_token_file: "+path+want {
			t.Errorf("%s: warnings = %v, want %q", path, cfg.Warnings, want)
		}
	}
}

func TestQuorumWarnings(t *testing.T) {
	cfg := mustParse(t, `[[virtual_server]]
name = "web"
address = "192.0.2.10:80"
quorum = 300
  [[virtual_server.real_server]]
  address = "10.0.0.11:8080"
  weight = 100
`)
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.String())
	}
	sameLines(t, got, []string{
		`director.toml:4: virtual_server[web].quorum: 300 (+ hysteresis 0) is more than the weights of all real servers together (100): quorum can never be met`,
		`director.toml:4: virtual_server[web].quorum: has no effect on the table without a fallback; losing quorum is only logged, counted and notified`,
	})
}
