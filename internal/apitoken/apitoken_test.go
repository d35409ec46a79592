package apitoken

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/logbuf"
)

const goodToken = "s3cret-token-0123456789"

func TestRead(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(name, content string) {
		if err := os.WriteFile(p(name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good", "  "+goodToken+"\n")
	write("empty", "\n \n")
	write("short", "abc\n")
	write("spaces", "s3cret token 0123456789\n")
	write("big", strings.Repeat("x", 5000))
	if err := syscall.Mkfifo(p("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", p("socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Mkdir(p("dir"), 0o700)
	os.Symlink("/dev/zero", p("zero-link"))
	os.Symlink(p("good"), p("own-link"))
	os.Symlink(p("gone"), p("dangling"))

	tests := []struct {
		name    string
		want    string
		noToken bool   // ErrNoToken: the write API off, not a config error
		msg     string // in the error
	}{
		{name: "good", want: goodToken},
		{name: "own-link", want: goodToken}, // a link to a file of the director's own user
		{name: "missing", noToken: true, msg: "does not exist; the write API is off until it holds a token"},
		{name: "dangling", noToken: true, msg: "does not exist"},
		{name: "empty", noToken: true, msg: "is empty; the write API is off"},
		{name: "short", msg: "the token is too short; use at least 16 characters"},
		{name: "spaces", msg: "the token must be one line without spaces"},
		{name: "big", msg: "is larger than 4096 bytes"},
		{name: "fifo", msg: "is a named pipe (FIFO), not a regular file; api_token_file must name a regular file"},
		{name: "socket", msg: "is a socket, not a regular file"},
		{name: "dir", msg: "is a directory, not a regular file"},
		{name: "zero-link", msg: "is a character device, not a regular file"},
	}
	if os.Geteuid() == 0 {
		write("theirs", goodToken)
		if err := os.Chown(p("theirs"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		os.Symlink(p("theirs"), p("their-link"))
		tests = append(tests, struct {
			name    string
			want    string
			noToken bool
			msg     string
		}{name: "their-link", msg: "is a symbolic link to " + p("theirs") + ", which belongs to "})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var tok string
			var err error
			go func() {
				defer close(done)
				tok, err = Read(p(tc.name))
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Read blocked")
			}
			if tc.msg == "" {
				if err != nil || tok != tc.want {
					t.Fatalf("Read = %q, %v; want %q", tok, err, tc.want)
				}
				return
			}
			if err == nil || tok != "" {
				t.Fatalf("Read = %q, %v; want an error", tok, err)
			}
			if errors.Is(err, ErrNoToken) != tc.noToken {
				t.Errorf("errors.Is(%v, ErrNoToken) = %v, want %v", err, !tc.noToken, tc.noToken)
			}
			if !strings.Contains(err.Error(), p(tc.name)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q should name the file and say %q", err, tc.msg)
			}
		})
	}
}

func TestExposure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(goodToken), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		gid  int
		want string
	}{
		{0o600, -1, ""},
		{0o640, os.Getegid(), ""}, // the director's group: the usual root:director 0640
		{0o644, -1, "is readable by every user (mode 0644)"},
		{0o604, -1, "is readable by every user"},
		{0o640, 65534, "is readable by group "},
	} {
		if tc.gid == 65534 && os.Geteuid() != 0 {
			continue // chgrp to a group of someone else's needs root
		}
		if tc.gid >= 0 {
			if err := os.Chown(path, -1, tc.gid); err != nil {
				t.Fatal(err)
			}
		}
		os.Chmod(path, tc.mode)
		got := Exposure(path)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("mode %04o gid %d: Exposure = %q, want %q", tc.mode, tc.gid, got, tc.want)
		}
	}
}

// TestWatcherRevokes: emptying or removing the file turns the write API
// off within a poll, once logged; a new token takes effect; a FIFO put in
// its place turns it off without hanging.
func TestWatcherRevokes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(goodToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	w := NewWatcher(path, slog.New(slog.NewTextHandler(&logs, nil)))
	w.interval = 10 * time.Millisecond
	w.Reload(path)
	if w.Token() != goodToken {
		t.Fatalf("Token = %q after the first read", w.Token())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	waitToken := func(what, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for w.Token() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: Token = %q, want %q", what, w.Token(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	os.WriteFile(path, nil, 0o600)
	waitToken("emptied", "")
	time.Sleep(100 * time.Millisecond) // ten more polls of the empty file
	if n := strings.Count(logs.String(), "API token gone"); n != 1 {
		t.Errorf("the revocation was logged %d times, want once:\n%s", n, logs.String())
	}

	const second = "another-token-9876543210"
	os.WriteFile(path, []byte(second), 0o600)
	waitToken("new token", second)

	os.Remove(path)
	waitToken("removed", "")

	os.WriteFile(path, []byte(goodToken), 0o600)
	waitToken("back", goodToken)
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	waitToken("a FIFO", "")
	if !strings.Contains(logs.String(), "named pipe (FIFO)") {
		t.Errorf("the FIFO was not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), goodToken) || strings.Contains(logs.String(), second) {
		t.Errorf("a token was logged:\n%s", logs.String())
	}
}

// TestWatcherReload: a reload to another file, or to none, takes effect
// at once.
func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte(goodToken), 0o600)
	os.WriteFile(b, []byte("second-token-0123456789"), 0o600)
	w := NewWatcher(a, slog.New(slog.DiscardHandler))
	w.Reload(a)
	w.Reload(b)
	if w.Token() != "second-token-0123456789" {
		t.Errorf("after a reload to b: %q", w.Token())
	}
	w.Reload("")
	if w.Token() != "" {
		t.Errorf("after a reload without api_token_file: %q", w.Token())
	}
}

// TestWatcherReadTimeout: a read that hangs turns the write API off after
// the read timeout instead of holding up the reload, and no second read
// is started while it hangs.
func TestWatcherReadTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	w := NewWatcher(path, slog.New(slog.DiscardHandler))
	w.readTimeout = 50 * time.Millisecond
	w.read = func(string) (string, error) { return goodToken, nil }
	w.Reload(path)
	if w.Token() != goodToken {
		t.Fatalf("Token = %q", w.Token())
	}
	release := make(chan struct{})
	var reads sync.WaitGroup
	var started int
	var mu sync.Mutex
	w.read = func(string) (string, error) {
		mu.Lock()
		started++
		mu.Unlock()
		reads.Add(1)
		defer reads.Done()
		<-release
		return goodToken, nil
	}
	start := time.Now()
	w.refresh()
	w.refresh()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("two refreshes took %s", took)
	}
	if w.Token() != "" {
		t.Errorf("Token = %q while the read hangs, want off", w.Token())
	}
	mu.Lock()
	if started != 1 {
		t.Errorf("%d reads started, want 1 while the first hangs", started)
	}
	mu.Unlock()
	close(release)
	w.refresh()
	if w.Token() != goodToken {
		t.Errorf("Token = %q once the read returned", w.Token())
	}
	reads.Wait()
}
