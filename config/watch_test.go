package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "director.toml")
	first := []byte("# one\n")
	if err := os.WriteFile(path, first, 0o644); err != nil {
		t.Fatal(err)
	}
	changes, stop, err := WatchFile(context.Background(), path, sha(first), DefaultMaxBytes, 50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	expect := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no change reported", what)
		}
	}
	// quiet waits long enough for a debounced event to have been sent, then
	// checks that none was. A wrong "nothing" can only pass, not flake.
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("%s: reported a change", what)
		case <-time.After(500 * time.Millisecond):
		}
	}

	now := time.Now()
	os.Chtimes(path, now, now)
	quiet("touch")

	if err := os.WriteFile(path, []byte("# two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("write in place")

	// An editor's save: write a temporary file, rename it over the old one.
	tmp := filepath.Join(dir, ".director.toml.swp")
	if err := os.WriteFile(tmp, []byte("# three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expect("replace by rename")

	if err := os.WriteFile(path, []byte("# three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	quiet("same content rewritten")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	quiet("file removed")

	// Many writes in a burst are one change.
	for i := range 5 {
		if err := os.WriteFile(path, []byte{'#', byte('a' + i), '\n'}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect("burst")
	quiet("after the burst")
}

func TestWatchFileStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, stop, err := WatchFile(ctx, filepath.Join(dir, "x.toml"), "", DefaultMaxBytes, time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return after the context ended")
	}
	if _, _, err := WatchFile(context.Background(), filepath.Join(dir, "missing", "x.toml"), "", DefaultMaxBytes, time.Millisecond, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("watching a file in a missing directory succeeded")
	}
}
