// Command deb builds director's Debian package:
//
//	go run ./tools/deb [-o dist] [-version V] [-arch amd64]
//
// It builds the static binary, renders the man pages director(8) and
// director.toml(5) from the README, stages the unit, the conffile, the
// bash completion and the maintainer scripts from deploy/, and packs them
// with dpkg-deb (part of dpkg, on every Debian machine), printing the
// path of the .deb. .ci/run installs the result into a clean Debian 12
// root and checks it (.ci/deb-test).
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lvsdirector/director/internal/manpage"
)

func main() {
	out := flag.String("o", "dist", "directory for the .deb")
	version := flag.String("version", "", "package version (default: from git describe)")
	arch := flag.String("arch", runtime.GOARCH, "Debian architecture: amd64, arm64, ... (GOARCH names)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	path, err := build(ctx, *out, *version, *arch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tools/deb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// file is one file of the package: where it goes, its bytes and mode.
type file struct {
	path string // absolute, in the installed system
	data []byte
	mode fs.FileMode
}

func build(ctx context.Context, outDir, version, arch string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return "", errors.New("dpkg-deb not found: it comes with dpkg (apt-get install dpkg)")
	}
	date, err := sourceDate(ctx, root)
	if err != nil {
		return "", err
	}
	if version == "" {
		if version, err = gitVersion(ctx, root, date); err != nil {
			return "", err
		}
	}
	if !validVersion.MatchString(version) {
		return "", fmt.Errorf("version %q is not a Debian version (digits first; letters, digits and .+~ after)", version)
	}

	tmp, err := os.MkdirTemp("", "director-deb")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	binary := filepath.Join(tmp, "director")
	fmt.Fprintf(os.Stderr, "building director %s for linux/%s\n", version, arch)
	if err := goBuild(ctx, root, binary, version, arch); err != nil {
		return "", err
	}
	usage, err := usageText(ctx, root, tmp, binary, arch)
	if err != nil {
		return "", err
	}
	files, err := contents(root, binary, usage, version, date)
	if err != nil {
		return "", err
	}
	stage := filepath.Join(tmp, "stage")
	if err := writeTree(root, stage, files, version, arch, date); err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	deb := filepath.Join(outDir, fmt.Sprintf("director_%s_%s.deb", version, arch))
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, deb)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(date.Unix(), 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb: %v\n%s", err, out)
	}
	return deb, nil
}

// validVersion is what dpkg accepts for a native package's version.
var validVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the director repository (no go.mod above the working directory)")
		}
		dir = parent
	}
}

// sourceDate is $SOURCE_DATE_EPOCH, else the last commit's time: the
// package's files, man page dates and archive carry it, so that the same
// commit builds the same package.
func sourceDate(ctx context.Context, root string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %v", s, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	out, err := exec.CommandContext(ctx, "git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("git log (for the build date; or set SOURCE_DATE_EPOCH): %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0).UTC(), nil
}

// gitVersion makes a Debian version of `git describe`: v1.2.3 → 1.2.3,
// v1.2.3-4-gabc → 1.2.3+git4.abc, no tag → 0~gitYYYYMMDD.abc; a tree with
// changes adds ~dirty (sorting before the clean build).
func gitVersion(ctx context.Context, root string, date time.Time) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--tags", "--always", "--dirty", "--match", "v[0-9]*").Output()
	if err != nil {
		return "", fmt.Errorf("git describe (or pass -version): %v", err)
	}
	return debianVersion(strings.TrimSpace(string(out)), date), nil
}

var described = regexp.MustCompile(`^v([0-9][A-Za-z0-9.]*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)

func debianVersion(desc string, date time.Time) string {
	if m := described.FindStringSubmatch(desc); m != nil {
		v := m[1]
		if m[2] != "" {
			v += "+git" + m[2] + "." + m[3]
		}
		if m[4] != "" {
			v += "~dirty"
		}
		return v
	}
	hash, dirty := strings.CutSuffix(desc, "-dirty")
	v := "0~git" + date.Format("20060102") + "." + hash
	if dirty {
		v += "~dirty"
	}
	return v
}

func goBuild(ctx context.Context, root, out, version, arch string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/director")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// usageText is the binary's own usage, the man page's synopsis. For
// another architecture a host build tells it.
func usageText(ctx context.Context, root, tmp, binary, arch string) (string, error) {
	if arch != runtime.GOARCH || runtime.GOOS != "linux" {
		binary = filepath.Join(tmp, "director-host")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd/director")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build (host, for the usage text): %v\n%s", err, out)
		}
	}
	out, err := exec.CommandContext(ctx, binary, "help").Output()
	if err != nil {
		return "", fmt.Errorf("director help: %v", err)
	}
	return string(out), nil
}

// contents lists every file of the package but the control files.
func contents(root, binary, usage, version string, date time.Time) ([]file, error) {
	read := func(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(root, rel)) }
	var files []file
	add := func(path string, mode fs.FileMode, data []byte) { files = append(files, file{path, data, mode}) }
	for _, f := range []struct {
		src, dst string
		mode     fs.FileMode
	}{
		{"deploy/systemd/director.service", "/usr/lib/systemd/system/director.service", 0o644},
		{"deploy/systemd/notify-reload.conf", "/usr/share/director/notify-reload.conf", 0o644},
		{"deploy/debian/director.toml", "/etc/director/director.toml", 0o640},
		{"deploy/bash-completion/director", "/usr/share/bash-completion/completions/director", 0o644},
		{"config.example.toml", "/usr/share/doc/director/examples/director.toml", 0o644},
	} {
		data, err := read(f.src)
		if err != nil {
			return nil, err
		}
		add(f.dst, f.mode, data)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	add("/usr/sbin/director", 0o755, bin)

	readme, err := read("README.md")
	if err != nil {
		return nil, err
	}
	example, err := read("config.example.toml")
	if err != nil {
		return nil, err
	}
	pages, err := manPages(string(readme), string(example), usage, version, date)
	if err != nil {
		return nil, err
	}
	for path, text := range pages {
		add(path, 0o644, gz([]byte(text)))
	}
	add("/usr/share/doc/director/copyright", 0o644, []byte(copyright))
	add("/usr/share/doc/director/changelog.gz", 0o644, gz([]byte(fmt.Sprintf(
		"director %s\n\n  Built from the project's repository on %s; its git log is the change history.\n",
		version, date.Format("2006-01-02")))))
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.path, b.path) })
	return files, nil
}

const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: director
Source: https://github.com/lvsdirector/director

Files: *
Copyright: the director authors
License: see the project's repository
`

// gz compresses as Debian wants man pages: best compression, no name or
// time in the header, so the bytes depend on the text alone.
func gz(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// manSections says which README sections make up each man page, in order.
// A section's title is the man page's .SH heading.
var manSections = map[string][]struct{ readme, title string }{
	"director.8": {
		{"Using it", "Usage"},
		{"Running under systemd", "Running under systemd"},
		{"Status page, JSON API and `director status`", "Status page, JSON API and director status"},
		{"Notifications", "Notifications"},
		{"Metrics", "Metrics"},
	},
	"director.toml.5": {
		{"Configuration", "Description"},
	},
}

// manPages renders director(8) and director.toml(5) from the README: the
// same text, so that the two cannot say different things.
func manPages(readme, example, usage, version string, date time.Time) (map[string]string, error) {
	section := func(heading string) (string, error) {
		body, _, err := manpage.Extract(readme, heading)
		if err != nil {
			return "", fmt.Errorf("README.md: %v (the man pages are made from it: tools/deb/main.go, manSections)", err)
		}
		return body, nil
	}
	pages := map[string]string{}
	files := "/etc/director/director.toml\n  the config, director.toml(5); a conffile\n" +
		"/var/lib/director/state.json\n  operator overrides and the virtual services the director manages (state_file)\n" +
		"/usr/lib/systemd/system/director.service\n  the systemd unit\n" +
		"/usr/share/director/notify-reload.conf\n  its drop-in for systemd 253 or later, linked into /etc/systemd/system/director.service.d/ there\n" +
		"/usr/share/doc/director/examples/director.toml\n  every option, with its ldirectord and keepalived equivalents\n"

	desc := manpage.Intro(readme)
	var director []manpage.Section
	director = append(director, manpage.Section{Title: "Synopsis", Body: usage, Literal: true}, manpage.Section{Title: "Description", Body: desc})
	for _, s := range manSections["director.8"] {
		body, err := section(s.readme)
		if err != nil {
			return nil, err
		}
		director = append(director, manpage.Section{Title: s.title, Body: body})
	}
	director = append(director,
		manpage.Section{Title: "Files", Body: files, Literal: true},
		manpage.Section{Title: "See also", Body: "director.toml(5), ipvsadm(8), systemctl(1)"})
	source := "director " + version
	day := date.Format("2006-01-02")
	pages["/usr/share/man/man8/director.8.gz"] = manpage.Render(manpage.Page{
		Name: "director", Section: "8", Summary: "health-checking director for Linux IPVS",
		Date: day, Source: source, Manual: "System Administration", Sections: director,
	})

	var conf []manpage.Section
	for _, s := range manSections["director.toml.5"] {
		body, err := section(s.readme)
		if err != nil {
			return nil, err
		}
		// The unit is director(8)'s subject.
		if sys, _, err := manpage.Extract(body, "Running under systemd"); err == nil {
			body = strings.Replace(body, "### Running under systemd\n"+sys, "", 1)
		}
		conf = append(conf, manpage.Section{Title: s.title, Body: body})
	}
	conf = append(conf,
		manpage.Section{Title: "Example", Body: example, Literal: true},
		manpage.Section{Title: "See also", Body: "director(8)"})
	pages["/usr/share/man/man5/director.toml.5.gz"] = manpage.Render(manpage.Page{
		Name: "director.toml", Section: "5", Summary: "configuration of director, the health-checking director for Linux IPVS",
		Date: day, Source: source, Manual: "File Formats", Sections: conf,
	})
	return pages, nil
}

// writeTree writes the files and the control files (the maintainer
// scripts from root's deploy/debian) under stage.
func writeTree(root, stage string, files []file, version, arch string, date time.Time) error {
	var sums strings.Builder
	size := int64(0)
	dirs := map[string]bool{}
	for _, f := range files {
		dst := filepath.Join(stage, f.path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		for d := filepath.Dir(f.path); d != "/"; d = filepath.Dir(d) {
			dirs[d] = true
		}
		if err := os.WriteFile(dst, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(dst, f.mode); err != nil { // past the umask
			return err
		}
		fmt.Fprintf(&sums, "%x  %s\n", md5.Sum(f.data), strings.TrimPrefix(f.path, "/"))
		size += (int64(len(f.data)) + 1023) / 1024
	}
	// The state directory ships empty; postinst gives it to the director user.
	if err := os.MkdirAll(filepath.Join(stage, "var/lib"), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(stage, "var/lib/director"), 0o750); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(stage, "etc/director"), 0o750); err != nil {
		return err
	}
	dirs["/var/lib/director"], dirs["/var/lib"], dirs["/var"] = true, true, true

	control := fmt.Sprintf(`Package: director
Version: %s
Architecture: %s
Maintainer: director developers <director@lvsdirector.invalid>
Installed-Size: %d
Depends: passwd, procps
Suggests: ipvsadm
Section: net
Priority: optional
Homepage: https://github.com/lvsdirector/director
Description: health-checking director for Linux IPVS
 director keeps the kernel's IPVS (LVS) table right: it reads a TOML config
 of virtual services and their real servers, checks every real server with
 HTTP, HTTPS, TCP or ICMP probes, and programs the kernel over netlink,
 taking failed servers out and putting them back. It does what ldirectord
 or keepalived's checker does, as one static daemon with Prometheus
 metrics, a status page, drains and operator overrides.
 .
 The package installs the daemon, a systemd unit and an example config;
 it does not start the daemon: edit /etc/director/director.toml, then
 systemctl enable --now director.
`, version, arch, size+int64(len(dirs)))
	debian := filepath.Join(stage, "DEBIAN")
	if err := os.MkdirAll(debian, 0o755); err != nil {
		return err
	}
	for name, data := range map[string]string{
		"control":   control,
		"conffiles": "/etc/director/director.toml\n",
		"md5sums":   sums.String(),
	} {
		if err := os.WriteFile(filepath.Join(debian, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		data, err := os.ReadFile(filepath.Join(root, "deploy/debian", script))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(debian, script), data, 0o755); err != nil {
			return err
		}
	}
	// Every path gets the source date, so the archive does not depend on
	// when it was built.
	return filepath.WalkDir(stage, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(path, date, date)
	})
}
