//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// overlay is a Debian program for the guest beside the base initramfs:
// its package, the files it needs from it (path in the guest -> path in
// the package) and the directories it writes to.
type overlay struct {
	pkg    string
	recipe string            // names the layout of the cached archive: change it when the fields change
	files  map[string]string // guest path -> path inside the unpacked package
	dirs   []string
	// take names, by prefix, more of the package's dependencies to
	// download than its libraries (such as "perl-" for an interpreter).
	take []string
	// more, when set, lists further files the program needs from the
	// unpacked packages (by package name): guest path -> path on the host.
	// Those that are ELF objects get the same walk for the shared objects
	// they load.
	more func(roots map[string]string) (map[string]string, error)
}

// prepareOverlay returns a cached initramfs overlay holding o's files and
// every shared object they need that the base lacks (found by walking
// their ELF DT_NEEDED entries through the downloaded packages), and the
// package's version; it downloads and builds it on a miss.
func prepareOverlay(ctx context.Context, root string, o overlay, logf func(string, ...any)) (string, string, error) {
	out, err := run(ctx, "", "apt-cache", "policy", o.pkg)
	if err != nil {
		return "", "", missing("apt-cache policy %s: %v", o.pkg, err)
	}
	version := ""
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && v != "(none)" {
			version = v
		}
	}
	if version == "" {
		return "", "", missing("apt has no candidate version of %s (run apt-get update)", o.pkg)
	}
	dir := filepath.Join(root, o.pkg+"-"+strings.NewReplacer(":", "_", "/", "_").Replace(version)+"-"+o.recipe)
	archive := filepath.Join(dir, o.pkg+".cpio.gz")
	unlock, err := lockCache(root)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "ok")); err == nil {
		return archive, version, nil
	}
	logf("cache miss: fetching %s %s and its libraries with apt into %s", o.pkg, version, dir)

	// The library packages it depends on, transitively; the ELF walk
	// below takes only what the binaries really load.
	out, err = run(ctx, "", "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends", o.pkg)
	if err != nil {
		return "", "", missing("apt-cache depends %s: %v", o.pkg, err)
	}
	pkgs := []string{o.pkg + "=" + version}
	for _, line := range strings.Split(string(out), "\n") {
		name := strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(name, "<") || name == o.pkg {
			continue
		}
		// libelogind0 provides a libsystemd.so.0 too: take libsystemd0's.
		taken := slices.ContainsFunc(o.take, func(p string) bool { return strings.HasPrefix(name, p) })
		if (taken || strings.HasPrefix(name, "lib") || strings.HasPrefix(name, "zlib")) && name != "libelogind0" && !slices.Contains(pkgs, name) {
			pkgs = append(pkgs, name)
		}
	}
	work, err := os.MkdirTemp(root, "work-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(work)
	debs := filepath.Join(work, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", "", err
	}
	if _, err := run(ctx, debs, "apt-get", append([]string{"download", "-q"}, pkgs...)...); err != nil {
		return "", "", missing("downloading %s and its libraries: %v", o.pkg, err)
	}
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	roots := map[string]string{}
	for _, f := range files {
		pkg, _, _ := strings.Cut(filepath.Base(f), "_")
		dst := filepath.Join(work, "root", pkg)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return "", "", err
		}
		if _, err := run(ctx, "", "dpkg-deb", "-x", f, dst); err != nil {
			return "", "", missing("unpacking %s: %v", filepath.Base(f), err)
		}
		roots[pkg] = dst
	}
	if roots[o.pkg] == "" {
		return "", "", missing("apt-get download gave no %s .deb", o.pkg)
	}

	if err := os.RemoveAll(dir); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	f, err := os.Create(archive)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	c := newCpio(f)
	for _, d := range o.dirs {
		c.mkdirAll(d)
	}
	// The base has the loader and ipvsadm's libraries.
	have := map[string]bool{"ld-linux-x86-64.so.2": true}
	for _, l := range guestLibs {
		have[l] = true
	}
	var queue []string
	for _, dst := range slices.Sorted(func(yield func(string) bool) {
		for k := range o.files {
			if !yield(k) {
				return
			}
		}
	}) {
		src := filepath.Join(roots[o.pkg], o.files[dst])
		c.copyFile(dst, 0o755, src)
		if isELF(src) {
			queue = append(queue, src)
		}
	}
	if o.more != nil {
		more, err := o.more(roots)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", o.pkg, err)
		}
		for _, dst := range slices.Sorted(maps.Keys(more)) {
			src := more[dst]
			fi, err := os.Stat(src)
			if err != nil {
				return "", "", err
			}
			c.copyFile(dst, uint32(fi.Mode().Perm()), src)
			if isELF(src) {
				queue = append(queue, src)
			}
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		needed, err := elfNeeded(p)
		if err != nil {
			return "", "", fmt.Errorf("reading %s: %w", p, err)
		}
		for _, so := range needed {
			if have[so] {
				continue
			}
			have[so] = true
			lib, err := findLib(roots, so)
			if err != nil {
				return "", "", fmt.Errorf("%s needs %s: %w", o.pkg, so, err)
			}
			c.copyFile("lib/x86_64-linux-gnu/"+so, 0o755, lib)
			queue = append(queue, lib)
		}
	}
	if err := c.close(); err != nil {
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "ok"), []byte(version+"\n"), 0o644); err != nil {
		return "", "", err
	}
	old, _ := filepath.Glob(filepath.Join(root, o.pkg+"-*"))
	for _, d := range old {
		if d != dir {
			os.RemoveAll(d)
		}
	}
	return archive, version, nil
}

// isELF says whether the file at path is an ELF object (and not, say, a
// script).
func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, _ := f.Read(magic)
	return bytes.Equal(magic[:n], []byte("\x7fELF"))
}

// bird is BIRD 2, the router of the BGP scenarios.
var bird = overlay{
	pkg: "bird2", recipe: "bird2-v1",
	files: map[string]string{"usr/sbin/bird": "usr/sbin/bird", "usr/sbin/birdc": "usr/sbin/birdc"},
	dirs:  []string{"run/bird", "etc/bird"},
}
