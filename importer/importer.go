// Package importer turns the configuration of another LVS director
// (keepalived.conf, ldirectord.cf, the rules ipvsadm -S prints) into a
// director TOML file, and says for every source option how it fared:
// converted exactly, approximated, or not converted and why.
//
// It is pure: sources come in as bytes (keepalived's include files through
// a Source the caller provides), the TOML text and the report go out. One
// file per source format; this file holds what they share: the report and
// the document written out.
package importer

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Format is a source format.
type Format string

const (
	Keepalived Format = "keepalived"
	Ldirectord Format = "ldirectord"
	Ipvsadm    Format = "ipvsadm"
)

// Formats lists the formats in the order the command line shows them.
var Formats = []Format{Keepalived, Ldirectord, Ipvsadm}

// Outcome is how one source option fared.
type Outcome int

const (
	Exact        Outcome = iota // same behaviour
	Approximate                 // converted to something close; the note says what differs
	NotConverted                // the director has no equivalent; the note says why
	Ignored                     // not the director's job (VRRP, logging, ...)
)

// Note is one line of the report: a source option that was not converted
// exactly.
type Note struct {
	File    string
	Line    int
	Option  string
	Outcome Outcome
	Msg     string
}

func (n Note) String() string {
	var what string
	switch n.Outcome {
	case Approximate:
		what = "approximated as " + n.Msg
	case NotConverted:
		what = "not supported: " + n.Msg
	case Ignored:
		what = "ignored: " + n.Msg
	default:
		what = n.Msg
	}
	return fmt.Sprintf("%s:%d: %s: %s", n.File, n.Line, n.Option, what)
}

// Result is what an import produced.
type Result struct {
	TOML  string
	Notes []Note
	// Counts by Outcome: every source option is counted once.
	Exact, Approximate, NotConverted, Ignored int
}

// Options returns the number of source options seen.
func (r *Result) Options() int { return r.Exact + r.Approximate + r.NotConverted + r.Ignored }

// Summary is the report's last line.
func (r *Result) Summary() string {
	s := fmt.Sprintf("%d options: %d exact, %d approximate, %d not converted", r.Options(), r.Exact, r.Approximate, r.NotConverted+r.Ignored)
	if r.Ignored > 0 {
		s += fmt.Sprintf(" (%d of them not the director's job)", r.Ignored)
	}
	return s
}

// Report is the whole report: one line per note, then the summary.
func (r *Result) Report() string {
	var b strings.Builder
	for _, n := range r.Notes {
		b.WriteString(n.String())
		b.WriteByte('\n')
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	return b.String()
}

// ParseError is a source the importer cannot read: a syntax error at a line.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Source reads the files a configuration includes. Glob returns the files
// matching pattern (already made absolute against the including file's
// directory by the caller's rules) in lexical order with their contents.
type Source interface {
	Glob(pattern string) ([]File, error)
}

// File is one source file's name and contents.
type File struct {
	Name string
	Data []byte
}

// PortLookup resolves a port name the importer's own table lacks (the
// system's services database, read by the caller): its port under
// protocol ("tcp", "udp").
type PortLookup func(name, protocol string) (uint16, bool)

// Import converts data, read from the file called name, from format.
// src reads included files (keepalived's include); nil refuses includes.
// ports resolves port names beyond the built-in table; nil knows no more.
func Import(format Format, name string, data []byte, src Source, ports PortLookup) (*Result, error) {
	switch format {
	case Keepalived:
		return importKeepalived(name, data, src, ports)
	case Ldirectord:
		return importLdirectord(name, data, ports)
	case Ipvsadm:
		return importIpvsadm(name, data, ports)
	}
	return nil, fmt.Errorf("unknown format %q (keepalived, ldirectord or ipvsadm)", format)
}

// Guess names the format data is most likely in, from its words.
func Guess(name string, data []byte) Format {
	text := string(data)
	score := map[Format]int{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "!") {
			continue
		}
		w := f[0]
		switch {
		case w == "ipvsadm" || w == "-A" || w == "-a" || w == "--add-service" || w == "--add-server":
			score[Ipvsadm] += 2
		case strings.HasPrefix(w, "virtual=") || strings.HasPrefix(w, "real=") || strings.HasPrefix(w, "checktype=") ||
			strings.HasPrefix(w, "virtual6=") || strings.HasPrefix(w, "real6="):
			score[Ldirectord] += 2
		case w == "virtual_server" || w == "real_server" || w == "global_defs" || w == "vrrp_instance" || w == "virtual_server_group":
			score[Keepalived] += 2
		case strings.Contains(w, "=") || (len(f) > 1 && f[1] == "="):
			score[Ldirectord]++
		case strings.HasSuffix(line, "{"):
			score[Keepalived]++
		}
	}
	base := strings.ToLower(filepath.Base(name))
	switch {
	case strings.Contains(base, "keepalived"):
		score[Keepalived] += 3
	case strings.Contains(base, "ldirectord"):
		score[Ldirectord] += 3
	case strings.Contains(base, "ipvs"):
		score[Ipvsadm] += 3
	}
	best := Keepalived
	for _, f := range Formats {
		if score[f] > score[best] {
			best = f
		}
	}
	return best
}

// pos is where a source option was written.
type pos struct {
	file string
	line int
}

// tally counts outcomes and collects notes.
type tally struct {
	notes  []Note
	counts [4]int
}

func (t *tally) exact(pos, string) { t.counts[Exact]++ }

func (t *tally) note(p pos, opt string, o Outcome, format string, args ...any) {
	t.counts[o]++
	t.notes = append(t.notes, Note{File: p.file, Line: p.line, Option: opt, Outcome: o, Msg: fmt.Sprintf(format, args...)})
}

func (t *tally) approx(p pos, opt, format string, args ...any) {
	t.note(p, opt, Approximate, format, args...)
}

func (t *tally) unsupported(p pos, opt, format string, args ...any) {
	t.note(p, opt, NotConverted, format, args...)
}

func (t *tally) ignored(p pos, opt, format string, args ...any) {
	t.note(p, opt, Ignored, format, args...)
}

func (t *tally) result(d *document) *Result {
	return &Result{TOML: d.render(), Notes: t.notes,
		Exact: t.counts[Exact], Approximate: t.counts[Approximate], NotConverted: t.counts[NotConverted], Ignored: t.counts[Ignored]}
}

// sortNotes orders notes by file and line, keeping the order of notes on
// one line.
func sortNotes(notes []Note) {
	slices.SortStableFunc(notes, func(a, b Note) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		return a.Line - b.Line
	})
}
