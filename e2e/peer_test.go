//go:build linux

package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The peer bench measures keepalived's checker beside the director and
// the floor checker inside the e2e VM: keepalived refuses to run checks on
// a kernel without IPVS, so this is the only place it can be measured
// here. It is opt-in (minutes under TCG, and never part of the suite):
//
//	DIRECTOR_PEER_BENCH=1 go test ./e2e/ -run TestPeerBench -v -timeout 30m
//
// It boots the e2e kernel once, with Debian's keepalived and the shared
// objects it needs (found by walking its ELF DT_NEEDED entries through the
// downloaded packages) added to the initramfs, and runs in the guest:
// `director-bench -floor -peers keepalived` for each check kind (the
// floor, keepalived and the director, each in its own window, on the same
// backends), then `director-bench -reconcile -table netlink` on the
// kernel's IPVS table. Figures are emulated (qemu TCG unless KVM boots):
// compare them with each other, never with host figures.
//
// Environment: DIRECTOR_PEER_BENCH_N (real servers, default 100),
// DIRECTOR_PEER_BENCH_WINDOW (per checker, default 30s),
// DIRECTOR_PEER_BENCH_KINDS (default "tcp,http"),
// DIRECTOR_PEER_BENCH_RECONCILE (destination counts for the kernel
// reconcile, default "1000,10000"; "none" skips it),
// DIRECTOR_PEER_BENCH_OUT (directory for the reports; default a new
// directory in the e2e cache, named in the log).

// keepalivedRecipe names the layout of the cached keepalived overlay.
const keepalivedRecipe = "keepalived-v1"

// Console markers written by the peer bench's /init.
const (
	peerMarkBegin = "PEER-BENCH-BEGIN "
	peerMarkEnd   = "PEER-BENCH-END "
	peerMarkJSON  = "PEER-BENCH-JSON "
	peerMarkDone  = "PEER-BENCH-DONE"
)

func TestPeerBench(t *testing.T) {
	if os.Getenv("DIRECTOR_PEER_BENCH") != "1" {
		t.Skip("opt-in: DIRECTOR_PEER_BENCH=1 go test ./e2e/ -run TestPeerBench -v -timeout 30m")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skipf("no qemu-system-x86_64: apt-get install --no-install-recommends qemu-system-x86 (%v)", err)
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (%v)", tool, err)
		}
	}
	n := envInt(t, "DIRECTOR_PEER_BENCH_N", 100)
	window := 30 * time.Second
	if s := os.Getenv("DIRECTOR_PEER_BENCH_WINDOW"); s != "" {
		if window, err = time.ParseDuration(s); err != nil {
			t.Fatalf("DIRECTOR_PEER_BENCH_WINDOW: %v", err)
		}
	}
	kinds := strings.Split(envOr("DIRECTOR_PEER_BENCH_KINDS", "tcp,http"), ",")
	var reconcile []int
	if s := envOr("DIRECTOR_PEER_BENCH_RECONCILE", "1000,10000"); s != "none" {
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 1 {
				t.Fatalf("DIRECTOR_PEER_BENCH_RECONCILE: %q is not a count", f)
			}
			reconcile = append(reconcile, v)
		}
	}

	budget := 40 * time.Minute
	if dl, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(dl)-15*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()

	root, err := cacheRoot()
	if err != nil {
		t.Skipf("no cache directory: %v", err)
	}
	a, err := prepareAssets(ctx, root, t.Logf)
	if err != nil {
		if errors.As(err, new(prereqError)) {
			t.Skipf("e2e prerequisite missing: %v", err)
		}
		t.Fatal(err)
	}
	ka, kver, err := prepareKeepalived(ctx, root, t.Logf)
	if err != nil {
		if errors.As(err, new(prereqError)) {
			t.Skipf("keepalived for the guest: %v", err)
		}
		t.Fatal(err)
	}
	t.Logf("kernel %s, keepalived %s (%.1fs)", a.kver, kver, time.Since(start).Seconds())

	tmp := t.TempDir()
	director, benchBin := filepath.Join(tmp, "director"), filepath.Join(tmp, "director-bench")
	if err := buildStatic(ctx, map[string]string{director: "./cmd/director", benchBin: "./cmd/director-bench"}); err != nil {
		t.Fatal(err)
	}
	accel := chooseAccel(ctx, t, qemu, a, root)

	init := peerInit(n, window, kinds, reconcile)
	initrd := filepath.Join(tmp, "initrd.gz")
	if err := writeInitrd(initrd, a, init, map[string]string{"director": director, "director-bench": benchBin}, ka); err != nil {
		t.Fatal(err)
	}

	out := os.Getenv("DIRECTOR_PEER_BENCH_OUT")
	if out == "" {
		out = filepath.Join(root, "peer-bench-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	console, err := os.Create(filepath.Join(out, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()

	var (
		cur     string
		section bytes.Buffer
		done    bool
		reports []string
	)
	bootStart := time.Now()
	err = boot(ctx, qemu, accel, a.kernel, initrd, func(line string) {
		fmt.Fprintln(console, line)
		switch {
		case strings.Contains(line, peerMarkDone):
			done = true
		case strings.HasPrefix(line, peerMarkBegin):
			cur = strings.TrimPrefix(line, peerMarkBegin)
			section.Reset()
			t.Logf("guest: %s [%.0fs]", cur, time.Since(bootStart).Seconds())
		case strings.HasPrefix(line, peerMarkJSON):
			name, js, _ := strings.Cut(strings.TrimPrefix(line, peerMarkJSON), " ")
			if json.Valid([]byte(js)) {
				os.WriteFile(filepath.Join(out, name+".json"), []byte(js+"\n"), 0o644)
			}
		case strings.HasPrefix(line, peerMarkEnd) && cur != "":
			text := section.String()
			reports = append(reports, "== "+cur+" (emulated: qemu "+accel+")\n"+text)
			os.WriteFile(filepath.Join(out, cur+".txt"), []byte(text), 0o644)
			t.Logf("guest: %s finished [%.0fs]:\n%s", cur, time.Since(bootStart).Seconds(), text)
			cur = ""
		case cur != "":
			section.WriteString(line + "\n")
		}
	})
	t.Logf("boot to power-off %.1fs under %s; reports in %s", time.Since(bootStart).Seconds(), accel, out)
	os.WriteFile(filepath.Join(out, "report.txt"), []byte(strings.Join(reports, "\n")), 0o644)
	if err != nil {
		t.Fatalf("qemu: %v (console in %s)", err, console.Name())
	}
	if !done {
		t.Fatalf("the guest did not finish the bench (console in %s)", console.Name())
	}
	for _, r := range reports {
		if strings.Contains(r, "director-bench:") {
			t.Errorf("a bench run failed in the guest:\n%s", r)
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive count", name, s)
	}
	return v
}

// buildStatic builds static linux/amd64 binaries (output -> package).
func buildStatic(ctx context.Context, bins map[string]string) error {
	mod, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	for out, pkg := range bins {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = mod
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// peerInit is the guest's /init for the peer bench.
func peerInit(n int, window time.Duration, kinds []string, reconcile []int) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "e2e: insmod $m failed"; done
ip link set lo up
ulimit -n 65536
export PATH=/bin:/sbin:/usr/sbin HOME=/tmp
cd /tmp
`)
	section := func(name, cmd string) {
		fmt.Fprintf(&b, "echo '%s%s'\n%s -json /tmp/%s.json 2>&1\necho \"exit status $?\"\n", peerMarkBegin, name, cmd, name)
		fmt.Fprintf(&b, "echo \"%s%s $(tr -d '\\n' < /tmp/%s.json)\"\necho '%s%s'\n", peerMarkJSON, name, name, peerMarkEnd, name)
	}
	for _, kind := range kinds {
		section("keepalived-"+kind, fmt.Sprintf(
			"/director-bench -director /director -kind %s -n %d -vs %d -interval 1s -timeout 500ms -rise 2 -fall 3 -window %s -floor -peers keepalived -port 8080",
			kind, n, max(1, min(10, n/10)), window))
	}
	for _, r := range reconcile {
		b.WriteString("ipvsadm -C\n")
		section(fmt.Sprintf("reconcile-%d", r), fmt.Sprintf(
			"/director-bench -reconcile -table netlink -n %d -vs %d -changes %d", r, max(1, r/100), max(1, r/10)))
	}
	b.WriteString("echo " + peerMarkDone + "\npoweroff -f\n")
	return b.String()
}

// prepareKeepalived returns a cached initramfs overlay holding Debian's
// keepalived and every shared object it needs that the base lacks, and
// keepalived's version; it downloads and builds it on a miss.
func prepareKeepalived(ctx context.Context, root string, logf func(string, ...any)) (string, string, error) {
	return prepareOverlay(ctx, root, overlay{
		pkg: "keepalived", recipe: keepalivedRecipe,
		files: map[string]string{"usr/sbin/keepalived": "usr/sbin/keepalived"},
		dirs:  []string{"run/keepalived", "etc/keepalived"},
	}, logf)
}

// elfNeeded lists a shared object's or executable's DT_NEEDED entries.
func elfNeeded(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ImportedLibraries()
}

func TestPeerInit(t *testing.T) {
	s := peerInit(100, 30*time.Second, []string{"tcp", "http"}, []int{1000})
	for _, want := range []string{
		"-kind tcp -n 100 -vs 10 -interval 1s -timeout 500ms -rise 2 -fall 3 -window 30s -floor -peers keepalived",
		"-kind http -n 100",
		"/director-bench -reconcile -table netlink -n 1000 -vs 10 -changes 100 -json /tmp/reconcile-1000.json",
		"echo '" + peerMarkBegin + "keepalived-http'",
		peerMarkJSON + "reconcile-1000 $(tr -d '\\n' < /tmp/reconcile-1000.json)",
		"echo " + peerMarkDone,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the peer bench's /init lacks %q:\n%s", want, s)
		}
	}
}
