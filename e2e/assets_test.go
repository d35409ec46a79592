//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// recipe names the layout of the cached base initramfs: change it when
// buildBase changes, so old cache entries are not used.
const recipe = "base-v2"

// guestPackages are the Debian packages the guest needs besides the kernel:
// busybox for a shell and its tools, ipvsadm (an independent IPVS client
// to cross-check the director) and the shared libraries ipvsadm needs, and
// prometheus-node-exporter, whose ipvs collector is a second independent
// reader of the kernel's counters (a Go binary that needs only libc).
var guestPackages = []string{"busybox-static", "ipvsadm", "libnl-3-200", "libnl-genl-3-200", "libpopt0", "libc6", "prometheus-node-exporter"}

// guestModules are loaded by /init in this order (busybox insmod does not
// resolve dependencies): IPVS and its schedulers, veth for namespaces,
// the bridge for the shared segment of the BGP and VRRP scenarios, and
// ipip, fou (gue) and ip_gre for the tunnelling real servers and the
// data-path checks, macvlan for the data-path checks.
var guestModules = []string{
	"crc32c_generic", "libcrc32c", "nf_defrag_ipv4", "nf_defrag_ipv6", "nf_conntrack", "ip_vs",
	"ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_dh",
	"ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_mh", "ip_vs_fo", "ip_vs_ovf",
	"veth", "llc", "stp", "bridge", "tunnel4", "ip_tunnel", "ipip", "macvlan",
	"udp_tunnel", "ip6_udp_tunnel", "fou", "gre", "ip_gre",
}

// guestLibs are the shared objects ipvsadm needs, by soname.
var guestLibs = []string{"libnl-3.so.200", "libnl-genl-3.so.200", "libpopt.so.0", "libc.so.6"}

// prereqError is a missing prerequisite: the suite skips (or, under CI, fails).
type prereqError struct{ err error }

func (e prereqError) Error() string { return e.err.Error() }
func (e prereqError) Unwrap() error { return e.err }

func missing(format string, args ...any) error { return prereqError{fmt.Errorf(format, args...)} }

// assets are the cached inputs of a boot.
type assets struct {
	dir    string // cache entry
	kernel string // bzImage
	base   string // gzip'd cpio: busybox, ipvsadm and libraries, modules
	kver   string
	key    string
}

// run runs a command and returns its stdout, with stderr in the error.
func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// resolvePackages finds the kernel package linux-image-amd64 points at and
// the candidate version of every package, through apt's local lists.
func resolvePackages(ctx context.Context) (map[string]string, string, error) {
	out, err := run(ctx, "", "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return nil, "", missing("resolving the kernel package: %v", err)
	}
	kpkg := ""
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			kpkg = f[1]
			break
		}
	}
	if kpkg == "" {
		return nil, "", missing("apt-cache depends linux-image-amd64 names no linux-image-* package (is this Debian with apt lists? run apt-get update)")
	}
	names := append([]string{kpkg}, guestPackages...)
	out, err = run(ctx, "", "apt-cache", append([]string{"policy"}, names...)...)
	if err != nil {
		return nil, "", missing("apt-cache policy: %v", err)
	}
	versions := map[string]string{}
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":") {
			cur = strings.TrimSuffix(line, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && cur != "" && v != "(none)" {
			versions[cur] = v
		}
	}
	for _, n := range names {
		if versions[n] == "" {
			return nil, "", missing("apt has no candidate version of %s (run apt-get update)", n)
		}
	}
	return versions, kpkg, nil
}

// cacheRoot is where downloads and the base initramfs are kept.
func cacheRoot() (string, error) {
	if d := os.Getenv("DIRECTOR_E2E_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "director-e2e"), nil
}

// lockCache takes an exclusive lock on the cache, so concurrent test runs
// do not build the same entry twice. It returns the unlock function.
func lockCache(root string) (func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// prepareAssets returns the cached kernel and base initramfs for the
// current package versions, downloading and building them on a miss.
func prepareAssets(ctx context.Context, root string, logf func(string, ...any)) (*assets, error) {
	versions, kpkg, err := resolvePackages(ctx)
	if err != nil && os.Geteuid() == 0 {
		// A fresh image often has no apt lists yet.
		logf("%v; running apt-get update", err)
		if _, uerr := run(ctx, "", "apt-get", "update", "-q"); uerr == nil {
			versions, kpkg, err = resolvePackages(ctx)
		}
	}
	if err != nil {
		return nil, err
	}
	var keyText []string
	for n, v := range versions {
		keyText = append(keyText, n+"="+v)
	}
	sort.Strings(keyText)
	keyText = append(keyText, recipe, strings.Join(guestModules, ","), strings.Join(guestLibs, ","))
	sum := sha256.Sum256([]byte(strings.Join(keyText, "\n")))
	key := hex.EncodeToString(sum[:8])
	a := &assets{dir: filepath.Join(root, kpkg+"-"+key), key: key}
	a.kernel = filepath.Join(a.dir, "vmlinuz")
	a.base = filepath.Join(a.dir, "base.cpio.gz")

	unlock, err := lockCache(root)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", root, err)
	}
	defer unlock()
	if kv, err := os.ReadFile(filepath.Join(a.dir, "ok")); err == nil {
		a.kver = strings.TrimSpace(string(kv))
		now := time.Now()
		os.Chtimes(filepath.Join(a.dir, "ok"), now, now) // in use: keep it
		return a, nil
	}
	logf("cache miss: fetching %s and %s with apt into %s", kpkg, strings.Join(guestPackages, " "), a.dir)
	work, err := os.MkdirTemp(root, "work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	debs := filepath.Join(work, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	var specs []string
	for _, n := range append([]string{kpkg}, guestPackages...) {
		specs = append(specs, n+"="+versions[n])
	}
	if _, err := run(ctx, debs, "apt-get", append([]string{"download", "-q"}, specs...)...); err != nil {
		return nil, missing("downloading packages: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	roots := map[string]string{} // package -> extracted tree
	for _, f := range files {
		pkg, _, _ := strings.Cut(filepath.Base(f), "_")
		dst := filepath.Join(work, "root", pkg)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, err
		}
		if _, err := run(ctx, "", "dpkg-deb", "-x", f, dst); err != nil {
			return nil, missing("unpacking %s: %v", filepath.Base(f), err)
		}
		roots[pkg] = dst
	}
	for _, n := range append([]string{kpkg}, guestPackages...) {
		if roots[n] == "" {
			return nil, missing("apt-get download gave no .deb for %s", n)
		}
	}
	if err := os.RemoveAll(a.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return nil, err
	}
	kver, err := buildBase(ctx, roots, kpkg, a)
	if err != nil {
		return nil, err
	}
	a.kver = kver
	// Written last: its presence marks a complete entry.
	if err := os.WriteFile(filepath.Join(a.dir, "ok"), []byte(kver+"\n"), 0o644); err != nil {
		return nil, err
	}
	// Older entries are dead weight (a kernel's modules are large), once
	// unused for a day: branches with another module list, run at the
	// same time, must not delete each other's entry.
	old, _ := filepath.Glob(filepath.Join(root, "linux-image-*"))
	for _, o := range old {
		if fi, err := os.Stat(filepath.Join(o, "ok")); o != a.dir && (err != nil || time.Since(fi.ModTime()) > 24*time.Hour) {
			os.RemoveAll(o)
		}
	}
	return a, nil
}

// buildBase writes the kernel and the base initramfs into a.dir.
func buildBase(ctx context.Context, roots map[string]string, kpkg string, a *assets) (string, error) {
	kroot := roots[kpkg]
	mods, _ := filepath.Glob(filepath.Join(kroot, "lib/modules/*"))
	if len(mods) != 1 {
		return "", fmt.Errorf("%s: want one lib/modules/* directory, found %d", kpkg, len(mods))
	}
	kver := filepath.Base(mods[0])
	if err := copyHostFile(filepath.Join(kroot, "boot", "vmlinuz-"+kver), a.kernel); err != nil {
		return "", err
	}
	byName := map[string]string{}
	filepath.WalkDir(mods[0], func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ko") {
			byName[strings.TrimSuffix(d.Name(), ".ko")] = p
		}
		return nil
	})

	f, err := os.Create(a.base)
	if err != nil {
		return "", err
	}
	defer f.Close()
	c := newCpio(f)
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc", "sbin"} {
		c.mkdirAll(d)
	}
	var order []string
	for _, m := range guestModules {
		p := byName[m]
		if p == "" {
			if m == "crc32c_generic" { // built in on some kernels
				continue
			}
			return "", fmt.Errorf("%s has no module %s.ko", kpkg, m)
		}
		c.copyFile("mods/"+m+".ko", 0o644, p)
		order = append(order, m)
	}
	c.file("mods/order", 0o644, []byte(strings.Join(order, "\n")+"\n"))

	bb := filepath.Join(roots["busybox-static"], "bin", "busybox")
	c.copyFile("bin/busybox", 0o755, bb)
	applets := []string{"sh", "mount", "insmod", "ip", "poweroff", "nsenter", "unshare", "sleep", "cat", "echo", "ls", "sysctl", "kill", "ps"}
	if out, err := run(ctx, "", bb, "--list"); err == nil {
		applets = strings.Fields(string(out))
	}
	for _, ap := range applets {
		if ap != "busybox" && !strings.ContainsAny(ap, "/[") {
			c.symlink("bin/"+ap, "busybox")
		}
	}

	c.copyFile("sbin/ipvsadm", 0o755, filepath.Join(roots["ipvsadm"], "sbin", "ipvsadm"))
	c.copyFile("sbin/node_exporter", 0o755, filepath.Join(roots["prometheus-node-exporter"], "usr", "bin", "prometheus-node-exporter"))
	for _, lib := range guestLibs {
		p, err := findLib(roots, lib)
		if err != nil {
			return "", err
		}
		c.copyFile("lib/x86_64-linux-gnu/"+lib, 0o755, p)
	}
	ld, err := findLib(roots, "ld-linux-x86-64.so.2")
	if err != nil {
		return "", err
	}
	c.copyFile("lib64/ld-linux-x86-64.so.2", 0o755, ld)
	c.symlink("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2")
	if err := c.close(); err != nil {
		return "", err
	}
	return kver, f.Close()
}

// findLib finds a shared object in the unpacked packages, following
// symlinks inside the package tree (absolute ones included).
func findLib(roots map[string]string, soname string) (string, error) {
	for _, r := range roots {
		for _, dir := range []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64"} {
			rel := filepath.Join(dir, soname)
			for range 10 {
				fi, err := os.Lstat(filepath.Join(r, rel))
				if err != nil {
					break
				}
				if fi.Mode()&fs.ModeSymlink == 0 {
					return filepath.Join(r, rel), nil
				}
				target, err := os.Readlink(filepath.Join(r, rel))
				if err != nil {
					break
				}
				if filepath.IsAbs(target) {
					rel = target
				} else {
					rel = filepath.Join(filepath.Dir(rel), target)
				}
			}
		}
	}
	return "", errors.New("no " + soname + " in the downloaded packages")
}

func copyHostFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
