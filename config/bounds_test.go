package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nested is a value of n nested arrays, 2n+5 bytes.
func nested(n int) string {
	return "a = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n"
}

// within runs f, failing the test if it has not returned after a generous
// guard: the assertions are on what f returns, the guard only keeps a
// regression from hanging the suite.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("did not return within 60s")
	}
}

func TestNestingRefusedBeforeParsing(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
	}{
		{"40 KB of nested arrays", nested(20_000), 1},
		{"nested inline tables", "[director]\nx = " + strings.Repeat("{a = ", 40) + "1" + strings.Repeat("}", 40) + "\n", 2},
		{"spread over lines", "a = [\n" + strings.Repeat("[\n", 40) + strings.Repeat("]\n", 41), 33},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			within(t, func() { got = problems(t, tc.src) })
			want := "director.toml:" + strconv.Itoa(tc.line) + ": arrays and tables nested more than 32 deep; a director config needs no more than a few levels"
			sameLines(t, got, []string{want})
		})
	}
}

// Brackets inside strings and comments are not nesting; 32 levels are
// allowed.
func TestNestingNotFooledByStrings(t *testing.T) {
	deep := strings.Repeat("[", 40)
	for _, src := range []string{
		`a = "` + deep + `"`,
		`a = '` + deep + `'`,
		"a = \"\"\"\n" + deep + "\n\"\"\"",
		"a = '''\n" + deep + "'''",
		"# " + deep,
		`a = "\"` + deep + `"`,
		nested(31), // plus the header-free top level: 31 arrays
	} {
		if line := nestedTooDeep(src, MaxNesting); line != 0 {
			t.Errorf("nestedTooDeep(%.40q) = line %d, want 0", src, line)
		}
	}
	if line := nestedTooDeep(nested(33), MaxNesting); line != 1 {
		t.Errorf("33 nested arrays: line %d, want 1", line)
	}
}

// TestIndexLinesLinear: the line scanner's cost grows linearly with
// nesting depth (it once grew with its square: 20,000 nested arrays took
// 13 s and 3.8 GB). Measured in bytes allocated, which do not depend on
// the machine's speed: doubling the depth must not much more than double
// them.
func TestIndexLinesLinear(t *testing.T) {
	allocated := func(src string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		indexLines(src)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	allocated(nested(100)) // warm up
	small, large := allocated(nested(4_000)), allocated(nested(8_000))
	t.Logf("indexLines allocated %d bytes at depth 4,000 and %d at 8,000", small, large)
	if large > 3*small {
		t.Errorf("doubling the depth multiplied the allocations by %.1f: not linear", float64(large)/float64(small))
	}
	// Wide as well as deep: 50,000 array elements.
	wide := "a = [" + strings.Repeat("1, ", 50_000) + "]\n"
	wider := "a = [" + strings.Repeat("1, ", 100_000) + "]\n"
	small, large = allocated(wide), allocated(wider)
	if large > 3*small {
		t.Errorf("doubling the width multiplied the allocations by %.1f: not linear", float64(large)/float64(small))
	}
}

func BenchmarkIndexLinesDeep(b *testing.B) {
	src := nested(8_000)
	b.ReportAllocs()
	for b.Loop() {
		indexLines(src)
	}
}

func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("# padding\n"+strings.Repeat("#", 2000)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		max  int64
		want string
	}{
		{big, 1000, big + ": larger than 1000 bytes, the most a config file may be; if it is meant to be this large, raise -max-config-bytes"},
		{fifo, 0, fifo + ": a named pipe (FIFO), not a regular file"},
		{dir, 0, dir + ": a directory, not a regular file"},
	} {
		var err error
		within(t, func() { _, err = LoadLimited(tc.path, tc.max) })
		var errs *Errors
		if !errors.As(err, &errs) || err.Error() != tc.want {
			t.Errorf("LoadLimited(%s, %d) = %v, want %q", tc.path, tc.max, err, tc.want)
		}
	}
	if _, err := LoadLimited(big, 4000); err != nil {
		t.Errorf("a file under the limit: %v", err)
	}
}
