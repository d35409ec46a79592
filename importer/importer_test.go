package importer

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsdirector/director/config"
)

var update = flag.Bool("update", false, "rewrite the golden .toml and .report files")

// mapSource serves include files from memory.
type mapSource map[string]string

func (m mapSource) Glob(pattern string) ([]File, error) {
	var out []File
	for name, data := range m {
		if ok, _ := filepath.Match(pattern, name); ok {
			out = append(out, File{Name: name, Data: []byte(data)})
		}
	}
	return out, nil
}

// dirSource reads includes from testdata.
type dirSource struct{}

func (dirSource) Glob(pattern string) ([]File, error) {
	names, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []File
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Name: n, Data: data})
	}
	return out, nil
}

// TestGolden converts every source under testdata (keepalived's and
// ldirectord's own samples among them) and compares the TOML and the
// report with the files beside it; the TOML must pass config.Parse, but
// for exec checks whose programs live on the original director.
func TestGolden(t *testing.T) {
	for _, dir := range []struct {
		format Format
		path   string
	}{{Keepalived, "testdata/keepalived"}, {Ldirectord, "testdata/ldirectord"}, {Ipvsadm, "testdata/ipvsadm"}} {
		entries, err := os.ReadDir(dir.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || strings.HasSuffix(name, ".toml") || strings.HasSuffix(name, ".report") || name == "README" {
				continue
			}
			src := filepath.Join(dir.path, name)
			t.Run(src, func(t *testing.T) {
				data, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				if g := Guess(src, data); g != dir.format {
					t.Errorf("Guess = %s, want %s", g, dir.format)
				}
				res, err := Import(dir.format, src, data, dirSource{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, src+".toml", res.TOML)
				golden(t, src+".report", res.Report())
				if _, err := config.Parse(src+".toml", []byte(res.TOML)); err != nil {
					var errs *config.Errors
					if !errors.As(err, &errs) {
						t.Fatal(err)
					}
					for _, p := range errs.Problems {
						if !strings.Contains(p.Msg, "cannot run /usr/local/bin/") {
							t.Errorf("output does not load: %s", p)
						}
					}
				}
				// Every option is counted once: exact ones are not in the
				// report, the others are.
				if n := len(res.Notes); n != res.Approximate+res.NotConverted+res.Ignored {
					t.Errorf("%d notes for %d options not converted exactly", n, res.Approximate+res.NotConverted+res.Ignored)
				}
			})
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./importer -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./importer -update rewrites it); got:\n%s", path, got)
	}
}

func TestKeepalivedSyntax(t *testing.T) {
	cases := []struct {
		name, src string
		files     mapSource
		want      []string // substrings of the TOML
		err       string
	}{
		{name: "comments and quotes",
			src:  "virtual_server 192.0.2.1 80 { # comment\n lb_algo rr ! another\n real_server 10.0.0.1 80 { weight 7 }\n}\n",
			want: []string{`scheduler = "rr"`, `weight = 7`, `type = "none"`}},
		{name: "brace on its own line and a continuation",
			src:  "virtual_server 192.0.2.1 \\\n 80\n{\n real_server 10.0.0.1 80\n {\n weight 3\n }\n}\n",
			want: []string{`address = "192.0.2.1:80"`, `weight = 3`}},
		{name: "include relative to the file",
			src:   "include conf.d/*.conf\n",
			files: mapSource{"/etc/keepalived/conf.d/a.conf": "virtual_server 192.0.2.9 443 {\n real_server 10.0.0.9 443 {\n }\n}\n"},
			want:  []string{`address = "192.0.2.9:443"`, `# /etc/keepalived/conf.d/a.conf:1`}},
		{name: "parameters",
			src:  "$PORT=8080\nvirtual_server 192.0.2.1 $PORT {\n real_server 10.0.0.1 ${PORT} {\n }\n}\n",
			want: []string{`address = "192.0.2.1:8080"`, `address = "10.0.0.1:8080"`}},
		{name: "group under DR with several ports: real servers take each address's port",
			src:  "virtual_server_group g {\n 192.0.2.1-3 80\n 192.0.2.9 8080\n}\nvirtual_server group g {\n lb_kind DR\n sorry_server 10.0.0.99 80\n real_server 10.0.0.1 80 {\n TCP_CHECK {\n }\n }\n}\n",
			want: []string{`name = "g"`, `addresses = ["192.0.2.1-3:80", "192.0.2.9:8080"]`, `address = "10.0.0.1"`, `fallback = "10.0.0.99"`, `port = 80`}},
		{name: "group of addresses and marks: two virtual servers",
			src:  "virtual_server_group g {\n 2001:db8::1-1f 80\n fwmark 7\n}\nvirtual_server group g {\n real_server 2001:db8::a 80 {\n }\n}\n",
			want: []string{`name = "g"`, `addresses = ["[2001:db8::1-1f]:80"]`, `name = "g-fwmarks"`, `fwmarks = [7]`, `family = "ipv6"`}},
		{name: "group larger than one virtual server may be",
			src:  "virtual_server_group g {\n 192.0.2.0-255 80\n 192.0.3.0-255 80\n}\nvirtual_server group g {\n real_server 10.0.0.1 80 {\n }\n}\n",
			want: []string{`addresses = ["192.0.2.0-255:80"]`, `name = "g#2"`, `addresses = ["192.0.3.0-255:80"]`}},
		{name: "groups past what a config may expand to: one virtual server per address",
			src:  "virtual_server_group big {\n 192.0.2.0-255 80\n 192.0.3.0-255 80\n 192.0.4.0-255 80\n 192.0.5.0-255 80\n}\nvirtual_server group big {\n real_server 10.0.0.1 80 {\n }\n}\nvirtual_server_group more {\n 192.0.9.1-2 80\n}\nvirtual_server group more {\n real_server 10.0.0.1 80 {\n }\n}\n",
			want: []string{`name = "big#4"`, `addresses = ["192.0.5.0-255:80"]`, `name = "192.0.9.1:80"`, `address = "192.0.9.2:80"`, `member 192.0.9.2:80`}},
		{name: "unclosed block", src: "virtual_server 192.0.2.1 80 {\n lb_algo rr\n", err: "/etc/keepalived/keepalived.conf:1: block virtual_server is never closed"},
		{name: "stray brace", src: "}\n", err: "keepalived.conf:1: } without a block to close"},
		{name: "unterminated quote", src: "global_defs {\n router_id \"x\n}\n", err: "keepalived.conf:2: unterminated quote"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Import(Keepalived, "/etc/keepalived/keepalived.conf", []byte(tc.src), tc.files, nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.TOML, w) {
					t.Errorf("output lacks %q:\n%s", w, res.TOML)
				}
			}
			if _, err := config.Parse("x.toml", []byte(res.TOML)); err != nil {
				t.Errorf("output does not load: %v\n%s", err, res.TOML)
			}
		})
	}
}

// TestNoServerLost: a virtual or real server that cannot be converted is
// named in the report.
func TestNoServerLost(t *testing.T) {
	res, err := Import(Keepalived, "k.conf", []byte("virtual_server nohost 80 {\n real_server 10.0.0.1 80 {\n }\n}\nvirtual_server 192.0.2.1 80 {\n real_server bad 80 {\n }\n}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report()
	for _, w := range []string{"k.conf:1: virtual_server nohost 80: not supported", "1 real servers are not converted", "k.conf:6: real_server bad 80: not supported"} {
		if !strings.Contains(rep, w) {
			t.Errorf("report lacks %q:\n%s", w, rep)
		}
	}
}

// TestLdirectordCountsEachLine: every option line of an ldirectord.cf is
// counted once, and nothing else is (a default checktype is no option of
// the file's), so the report's total is the file's option lines.
func TestLdirectordCountsEachLine(t *testing.T) {
	files, _ := filepath.Glob("testdata/ldirectord/*.cf")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := 0
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines++
			}
		}
		res, err := Import(Ldirectord, f, data, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Options() != lines {
			t.Errorf("%s: %d options counted for %d option lines", f, res.Options(), lines)
		}
	}
}

// TestLdirectordFwmarkNoPort: a firewall-mark real server written without
// a port, in a service with no port to check it on (no checkport, no
// service= with a port), is reported, not checked on port 0.
func TestLdirectordFwmarkNoPort(t *testing.T) {
	res, err := Import(Ldirectord, "l.cf", []byte("virtual=4\n\treal=10.0.0.1 gate\n\tprotocol=fwm\n\tchecktype=connect\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep := res.Report(); !strings.Contains(rep, "l.cf:1: virtual check: not supported:") || !strings.Contains(rep, "set checkport") {
		t.Errorf("report lacks the check with no port:\n%s", rep)
	}
	if strings.Contains(res.TOML, "port = 0") {
		t.Errorf("a check on port 0:\n%s", res.TOML)
	}
}

// TestPortLookup: a port name the built-in table lacks is resolved by the
// caller's lookup, in every format; without one it is reported as before.
func TestPortLookup(t *testing.T) {
	lookup := func(name, proto string) (uint16, bool) {
		if name == "zzsvc" && proto == "tcp" {
			return 7777, true
		}
		return 0, false
	}
	for _, tc := range []struct {
		format Format
		src    string
		want   string
	}{
		{Keepalived, "virtual_server 192.0.2.1 zzsvc {\n real_server 10.0.0.1 zzsvc {\n }\n}\n", `address = "192.0.2.1:7777"`},
		{Ldirectord, "virtual=192.0.2.1:zzsvc\n\treal=10.0.0.1:zzsvc masq\n", `address = "192.0.2.1:7777"`},
		{Ipvsadm, "-A -t 192.0.2.1:zzsvc -s rr\n-a -t 192.0.2.1:zzsvc -r 10.0.0.1:zzsvc -m\n", `address = "192.0.2.1:7777"`},
	} {
		res, err := Import(tc.format, "f", []byte(tc.src), nil, lookup)
		if err != nil {
			t.Errorf("%s: %v", tc.format, err)
			continue
		}
		if !strings.Contains(res.TOML, tc.want) || !strings.Contains(res.TOML, `address = "10.0.0.1:7777"`) {
			t.Errorf("%s: output lacks %q:\n%s\n%s", tc.format, tc.want, res.TOML, res.Report())
		}
		res, err = Import(tc.format, "f", []byte(tc.src), nil, nil)
		if err == nil && strings.Contains(res.TOML, "7777") {
			t.Errorf("%s without a lookup: zzsvc resolved:\n%s", tc.format, res.TOML)
		}
		if err == nil && !strings.Contains(res.Report(), "not converted") {
			t.Errorf("%s without a lookup: the unknown name is not reported:\n%s", tc.format, res.Report())
		}
	}
}

func TestExpandRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		last string
	}{{"10.0.0.1-20", 20, "10.0.0.20"}, {"10.0.0.5", 1, "10.0.0.5"}, {"2001:db8::1-a", 10, "2001:db8::a"}, {"10.0.0.9-3", 0, ""}, {"x-1", 0, ""}} {
		got, ok := expandRange(tc.in)
		if len(got) != tc.n || ok != (tc.n > 0) || (tc.n > 0 && got[len(got)-1].String() != tc.last) {
			t.Errorf("expandRange(%q) = %v, %v", tc.in, got, ok)
		}
	}
}

func FuzzKeepalived(f *testing.F) {
	seed(f, "testdata/keepalived")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		_, _ = Import(Keepalived, "/k/keepalived.conf", data, mapSource{"/k/inc.conf": "virtual_server 192.0.2.1 80 {\n}\n"}, nil)
	})
}

func FuzzLdirectord(f *testing.F) {
	seed(f, "testdata/ldirectord")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		_, _ = Import(Ldirectord, "ldirectord.cf", data, nil, nil)
	})
}

func FuzzIpvsadm(f *testing.F) {
	seed(f, "testdata/ipvsadm")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		_, _ = Import(Ipvsadm, "rules", data, nil, nil)
	})
}

func seed(f *testing.F, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".toml") || strings.HasSuffix(e.Name(), ".report") {
			continue
		}
		if data, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			f.Add(data)
		}
	}
}
