//go:build linux

package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ldirectord is Debian's ldirectord for the import scenario
// (e2e/guest/import_test.go, Test31): the perl script, the perl
// interpreter, and the perl modules the script loads for its connect and
// http checks, found by reading the sources (perlClosure), not the whole
// of perl's library.
var ldirectord = overlay{
	pkg: "ldirectord", recipe: "ldirectord-v1",
	files: map[string]string{"usr/sbin/ldirectord": "usr/sbin/ldirectord"},
	dirs:  []string{"etc/ha.d", "var/run"},
	take:  []string{"perl-", "netbase"},
	more: func(roots map[string]string) (map[string]string, error) {
		files, err := perlClosure(roots, filepath.Join(roots["ldirectord"], "usr/sbin/ldirectord"), ldirectordRuntimeModules, ldirectordUnused)
		if err != nil {
			return nil, err
		}
		// Its sockets are made by protocol name (getprotobyname).
		if roots["netbase"] == "" {
			return nil, errors.New("netbase (/etc/protocols) was not downloaded")
		}
		files["etc/protocols"] = filepath.Join(roots["netbase"], "etc/protocols")
		return files, nil
	},
}

// ldirectordRuntimeModules are modules ldirectord's checks load by a name
// made at run time, which reading the sources cannot see: LWP and URI pick
// theirs by the URL's scheme, File::Spec by the system, Pod::Usage its
// formatter.
var ldirectordRuntimeModules = []string{"LWP::Protocol::http", "URI::http", "File::Spec::Unix", "Pod::Text"}

// ldirectordUnused are modules that modules it loads try to load (in an
// eval, going on without them) for what the scenario does not use: TLS,
// whose libraries are most of the overlay's size.
var ldirectordUnused = []string{"IO::Socket::SSL", "Net::SSLeay"}

// perlIncDirs is Debian perl's @INC (perl -V), for perl version ver,
// without the /usr/local and /etc entries that no package fills.
func perlIncDirs(ver string) []string {
	return []string{
		"usr/lib/x86_64-linux-gnu/perl5/" + ver,
		"usr/share/perl5",
		"usr/lib/x86_64-linux-gnu/perl-base",
		"usr/lib/x86_64-linux-gnu/perl/" + ver,
		"usr/share/perl/" + ver,
	}
}

// perlClosure returns perl itself and every library file that script can
// load, guest path -> host path: the modules it uses (at compile time:
// its run-time requires are for checks the scenario does not run), what
// those modules use or require, transitively, with each module's auto/
// directory (its XS object, autoloaded subs), plus the modules named in
// runtime, but none named in unused. Reading the sources over-approximates
// (a require in a branch never taken is still taken); what is not in the
// unpacked packages is left out, as perl would not find it either.
func perlClosure(roots map[string]string, script string, runtime, unused []string) (map[string]string, error) {
	ver := ""
	for name := range roots {
		if v, ok := strings.CutPrefix(name, "perl-modules-"); ok {
			ver = v
		}
	}
	if roots["perl-base"] == "" || ver == "" {
		return nil, errors.New("perl-base and perl-modules-* were not downloaded")
	}
	type lib struct{ guest, host string }
	index := map[string]lib{} // "LWP/UserAgent.pm" -> where perl finds it first
	for _, inc := range perlIncDirs(ver) {
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range roots {
				if !yield(k) {
					return
				}
			}
		}) {
			dir, err := filepath.EvalSymlinks(filepath.Join(roots[name], inc))
			if err != nil {
				continue
			}
			err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
					return nil
				}
				rel, _ := filepath.Rel(dir, p)
				rel = filepath.ToSlash(rel)
				if _, ok := index[rel]; !ok {
					index[rel] = lib{guest: inc + "/" + rel, host: p}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	autoFiles := map[string][]string{} // "auto/POSIX" -> its files
	for rel := range index {
		if strings.HasPrefix(rel, "auto/") {
			autoFiles[path.Dir(rel)] = append(autoFiles[path.Dir(rel)], rel)
		}
	}

	out := map[string]string{"usr/bin/perl": filepath.Join(roots["perl-base"], "usr/bin/perl")}
	var queue []string // host paths to read
	take := func(rel string) {
		l, ok := index[rel]
		if !ok || out[l.guest] != "" || slices.ContainsFunc(unused, func(m string) bool { return modulePath(m) == rel }) {
			return
		}
		out[l.guest] = l.host
		if strings.HasSuffix(rel, ".pm") || strings.HasSuffix(rel, ".pl") || strings.HasSuffix(rel, ".al") {
			queue = append(queue, l.host)
		}
		if strings.HasSuffix(rel, ".pm") {
			for _, f := range autoFiles["auto/"+strings.TrimSuffix(rel, ".pm")] {
				if out[index[f].guest] == "" {
					out[index[f].guest] = index[f].host
					if strings.HasSuffix(f, ".al") {
						queue = append(queue, index[f].host)
					}
				}
			}
		}
	}
	for _, m := range runtime {
		take(modulePath(m))
	}
	src, err := os.ReadFile(script)
	if err != nil {
		return nil, err
	}
	for _, rel := range perlLoads(string(src), false) {
		take(rel)
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		for _, rel := range perlLoads(string(src), true) {
			take(rel)
		}
	}
	return out, nil
}

// modulePath is where perl looks for module m under an @INC directory.
func modulePath(m string) string { return strings.ReplaceAll(m, "::", "/") + ".pm" }

var (
	// use/no Module, require Module
	perlUse     = regexp.MustCompile(`\b(?:use|no)\s+([A-Za-z_]\w*(?:::\w+)*)`)
	perlRequire = regexp.MustCompile(`\brequire\s+([A-Za-z_]\w*(?:::\w+)*)`)
	// require "File.pl" / 'Dir/File.pm'
	perlRequireFile = regexp.MustCompile(`\brequire\s*\(?\s*["']([\w/.-]+\.p[lm])["']`)
	// use parent/base/if/autouse ... : the modules named in its arguments
	perlUseList = regexp.MustCompile(`\buse\s+(?:parent|base|if|autouse)\b([^;]*)`)
	perlName    = regexp.MustCompile(`[A-Za-z_]\w*(?:::\w+)*`)
	perlPOD     = regexp.MustCompile(`(?ms)^=[a-zA-Z].*?(?:^=cut\b[^\n]*$|\z)`)
	perlEnd     = regexp.MustCompile(`(?m)^__(?:END|DATA)__\s*$`)
	perlComment = regexp.MustCompile(`(?m)^\s*#.*$`)
)

// perlLoads lists the library files (paths under an @INC directory) a
// perl source may load, read from its text without its POD, comment
// lines and data section: what it uses, and with requires what it
// requires too.
func perlLoads(src string, requires bool) []string {
	if loc := perlEnd.FindStringIndex(src); loc != nil {
		src = src[:loc[0]]
	}
	src = perlPOD.ReplaceAllString(src, "")
	src = perlComment.ReplaceAllString(src, "")
	var rels []string
	for _, m := range perlUse.FindAllStringSubmatch(src, -1) {
		rels = append(rels, modulePath(m[1]))
	}
	if requires {
		for _, m := range perlRequire.FindAllStringSubmatch(src, -1) {
			rels = append(rels, modulePath(m[1]))
		}
		for _, m := range perlRequireFile.FindAllStringSubmatch(src, -1) {
			rels = append(rels, m[1])
		}
	}
	for _, m := range perlUseList.FindAllStringSubmatch(src, -1) {
		for _, n := range perlName.FindAllString(m[1], -1) {
			rels = append(rels, modulePath(n))
		}
	}
	slices.Sort(rels)
	return slices.Compact(rels)
}

func TestPerlLoads(t *testing.T) {
	src := `#!/usr/bin/perl
=head1 NAME

use Not::In::Pod;

=cut

use strict;
no warnings 'once';
  # use Not::A::Comment;
use POSIX qw(setsid);
use parent -norequire, 'Base::One';
use base qw(Base::Two Base::Three);
use if $] < 5.008, 'Cond::Mod' => ();
require Net::SMTP;
eval { require IO::Socket::IP };
require 'Config_heavy.pl';
my $x = "use"; # not a module
__END__
use After::End;
`
	got := perlLoads(src, true)
	want := []string{"Base/One.pm", "Base/Three.pm", "Base/Two.pm", "Cond/Mod.pm", "Config_heavy.pl", "IO/Socket/IP.pm",
		"Net/SMTP.pm", "POSIX.pm", "base.pm", "if.pm", "parent.pm", "strict.pm", "warnings.pm"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("perlLoads misses %s; got %v", w, got)
		}
	}
	for _, bad := range []string{"Not/In/Pod.pm", "Not/A/Comment.pm", "After/End.pm"} {
		if slices.Contains(got, bad) {
			t.Errorf("perlLoads takes %s (POD, comment or data)", bad)
		}
	}
	if uses := perlLoads(src, false); slices.Contains(uses, "Net/SMTP.pm") || !slices.Contains(uses, "POSIX.pm") {
		t.Errorf("perlLoads without requires = %v", uses)
	}
}
