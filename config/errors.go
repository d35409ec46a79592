package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one error or warning found in a configuration file.
//
// Key is the path of the offending key, written with the names used in the
// file: tables and keys joined by dots, array elements in brackets. A
// virtual server is named by its name when it has a non-empty one
// ("virtual_server[web]") and by its 0-based position otherwise
// ("virtual_server[0]"); real servers always by 0-based position within
// their virtual server ("virtual_server[web].real_server[1].weight").
// Keys that are not bare TOML keys are quoted ("headers.\"X Y\"").
type Problem struct {
	File string
	Line int // 1-based; 0 when the problem has no line (e.g. unreadable file)
	Key  string
	Msg  string
}

// String renders the problem as "FILE:LINE: KEY: MSG", leaving out the
// line and key when they are unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem that made a configuration invalid, sorted by
// line. Load and Parse return it as *Errors.
type Errors struct {
	Problems []Problem
}

// Error lists all problems, one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// tidy sorts problems by line (stable, so problems on one line keep the
// order they were found in) and drops exact duplicates, which arise when a
// bad value in [defaults.check] is seen through every virtual server.
func tidy(ps []Problem) []Problem {
	seen := make(map[Problem]bool, len(ps))
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}
