package engine

import (
	"strings"
	"testing"
)

// A check the director ran late is logged as the director short of CPU;
// one it could not make for want of descriptors or memory, as that.
func TestInconclusiveHintByCause(t *testing.T) {
	for _, c := range []struct{ reason, want string }{
		{"local: late: request not sent before the deadline", "short of CPU"},
		{"local: deadline passed before the probe started", "short of CPU"},
		{"local: too many open files", "LimitNOFILE"},
		{"local: out of memory", "LimitNOFILE"},
	} {
		if got := inconclusiveHint(c.reason); !strings.Contains(got, c.want) {
			t.Errorf("%q: hint %q, want it to say %q", c.reason, got, c.want)
		}
	}
}
