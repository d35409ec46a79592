package config

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// A loaded config does not keep its source text: the TOML decoder's
// strings are slices of one copy of the whole file, so a single name
// kept from it held all of it, comments included (1.5 MB of a 20,000
// server config, kept for as long as the config ran; docs/performance.md,
// "Memory, third pass"). config.example.toml exercises names, enums,
// paths, header tables, lists and dialogue steps; behind 8 MB of comment,
// what Parse leaves reachable must be the config alone.
func TestConfigDoesNotPinItsSource(t *testing.T) {
	example, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("# " + strings.Repeat("x", 8<<20) + "\n" + string(example))
	before := heapInUse()
	cfg, err := Parse("pin.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	kept := int64(heapInUse()) - int64(before)
	runtime.KeepAlive(cfg)
	runtime.KeepAlive(data)
	if kept > 1<<20 {
		t.Errorf("the config of %d bytes of source keeps %d bytes reachable, want under 1 MiB: some string of it holds the decoder's copy of the file", len(data), kept)
	}
}

// heapInUse is the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
