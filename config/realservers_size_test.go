package config

import (
	"fmt"
	"strings"
	"testing"
)

// A virtual server's real servers are kept at their exact number: the
// config lives as long as it runs, and a slice grown by append held up to
// twice as many (docs/performance.md, "Memory, second pass: records").
func TestRealServersAtExactSize(t *testing.T) {
	var b strings.Builder
	b.WriteString("[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\n")
	for i := range 100 {
		fmt.Fprintf(&b, "  [[virtual_server.real_server]]\n  address = \"10.0.0.%d:80\"\n", i+1)
	}
	cfg, err := Parse("size.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if rs := cfg.VirtualServers[0].RealServers; len(rs) != 100 || cap(rs) != 100 {
		t.Errorf("%d real servers in room for %d, want 100 in 100", len(rs), cap(rs))
	}
}
