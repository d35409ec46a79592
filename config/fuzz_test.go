package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic or hang,
// and must return either a config or an *Errors whose problems each name
// the file (and a line within it, when they have one).
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../config.example.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n  [[virtual_server.real_server]]\n  address = \"10.0.0.1:80\"\n"))
	f.Add([]byte("[director]\ndrain_timeout = \"1m\"\nwatch_config = true\n"))
	f.Add([]byte("virtual_server = [{name = \"a\", fwmark = 1, real_server = [{address = \"10.0.0.1\"}]}]\n"))
	f.Add([]byte("[defaults.check]\nheaders = { \"X\" = \"y\" }\nexpect_status = [\"200-299\", 301]\n"))
	f.Add([]byte("a = '''\nmulti\n'''\n[x]\n\"quoted key\" = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(file, data)
		if err == nil {
			if cfg == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		if cfg != nil {
			t.Fatal("Parse returned a config along with an error")
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Problems) == 0 {
			t.Fatalf("error %T %q is not an *Errors with problems", err, err)
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, p := range errs.Problems {
			if p.File != file || p.Msg == "" {
				t.Errorf("problem %+v lacks its file or message", p)
			}
			if p.Line < 0 || p.Line > lines {
				t.Errorf("problem %q at line %d of a %d-line input", p, p.Line, lines)
			}
		}
	})
}
