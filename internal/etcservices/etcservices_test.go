package etcservices

import (
	"errors"
	"os"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	data, err := os.ReadFile("testdata/services")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, proto string
		port        uint16
		ok          bool
	}{
		{"http", "tcp", 80, true},
		{"www", "tcp", 80, true}, // alias; the later "www 8000/tcp" loses
		{"webcache", "tcp", 8080, true},
		{"http-alt", "tcp", 8080, true},
		{"domain", "udp", 53, true},
		{"https", "udp", 443, true},
		{"radius", "udp", 1812, true},
		{"radius", "tcp", 0, false}, // only listed for udp
		{"mysql", "udp", 0, false},
		{"HTTP", "tcp", 0, false}, // case-sensitive, as getservbyname
		{"mail", "tcp", 25, true},
		{"nosuch", "tcp", 0, false},
		{"http", "sctp", 0, false},
	} {
		p, ok := tab.Port(c.name, c.proto)
		if p != c.port || ok != c.ok {
			t.Errorf("Port(%q, %q) = %d, %v; want %d, %v", c.name, c.proto, p, ok, c.port, c.ok)
		}
	}
	if names := tab.Names("udp"); !slices.Contains(names, "domain") || slices.Contains(names, "mysql") {
		t.Errorf("Names(udp) = %v", names)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		line int
	}{
		{"http 80/tcp\nbroken\n", 2},
		{"http 80\n", 1},
		{"http 80/\n", 1},
		{"\n\nhttp 70000/tcp\n", 3},
		{"http x/tcp\n", 1},
	} {
		_, err := Parse([]byte(c.in))
		var le *LineError
		if !errors.As(err, &le) || le.Line != c.line {
			t.Errorf("Parse(%q) = %v; want an error on line %d", c.in, err, c.line)
		}
	}
	for _, ok := range []string{"", "# only a comment\n", "  \t\n", "x 1/tcp # c\n", "x 1/TCP"} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
	var nilTable *Table
	if _, ok := nilTable.Port("http", "tcp"); ok {
		t.Error("a nil table knows a port")
	}
}
