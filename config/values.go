package config

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// node is a place in the file: segs finds its line, key is how messages
// name it (see Problem).
type node struct {
	segs []string
	key  string
}

func (n node) child(name string) node {
	k := quoteKey(name)
	if n.key != "" {
		k = n.key + "." + k
	}
	return node{segs: join(n.segs, name), key: k}
}

func (n node) elem(i int, label string) node {
	return node{segs: join(n.segs, indexSeg(i)), key: n.key + "[" + label + "]"}
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyChar(k[i]) {
			return strconv.Quote(k)
		}
	}
	return k
}

// loader collects problems while walking the decoded document.
type loader struct {
	file  string
	dir   string // for relative ca_file paths
	lines *lineIndex
	ports *portNames // port names, from the services database
	errs  []Problem
	warns []Problem
}

// lineOf returns the line of n, or of its nearest ancestor that appears in
// the file (a missing key is reported at its table's header).
func (l *loader) lineOf(n node) int {
	for i := len(n.segs); i > 0; i-- {
		if line, ok := l.lines.line(n.segs[:i]); ok {
			return line
		}
	}
	return 0
}

func (l *loader) errorf(n node, format string, a ...any) {
	l.errs = append(l.errs, Problem{File: l.file, Line: l.lineOf(n), Key: n.key, Msg: fmt.Sprintf(format, a...)})
}

func (l *loader) warnf(n node, format string, a ...any) {
	// The key may be the decoder's, a slice of the whole file (detach):
	// warnings are kept with the config.
	p := Problem{File: l.file, Line: l.lineOf(n), Key: strings.Clone(n.key), Msg: fmt.Sprintf(format, a...)}
	// A table merged into several checks (a virtual server's check under
	// each real server's override) warns once.
	if !slices.Contains(l.warns, p) {
		l.warns = append(l.warns, p)
	}
}

// table is one decoded TOML table and where it is.
type table struct {
	l *loader
	n node
	m map[string]any
}

func (t table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

func (t table) get(key string) (any, node, bool) {
	v, ok := t.m[key]
	return v, t.n.child(key), ok
}

// describe names a decoded value's TOML type for messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("a string (%q)", v)
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%v)", v)
	case bool:
		return fmt.Sprintf("a boolean (%v)", v)
	case map[string]any:
		return "a table"
	case []map[string]any, []any:
		return "an array"
	default:
		return "a date-time"
	}
}

// The getters below report a wrong type themselves and return ok=false
// both when the key is absent and when its value is unusable.

func (t table) str(key string) (string, node, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return "", n, false
	}
	s, ok := v.(string)
	if !ok {
		t.l.errorf(n, "must be a string, not %s", describe(v))
	}
	return s, n, ok
}

func (t table) integer(key string) (int64, node, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return 0, n, false
	}
	i, ok := v.(int64)
	if !ok {
		t.l.errorf(n, "must be an integer, not %s", describe(v))
	}
	return i, n, ok
}

// intRange reads an integer that must lie within [lo, hi]; what ends the
// out-of-range message ("IPVS weights are 0-65535").
func (t table) intRange(key string, lo, hi int64, what string) (int64, node, bool) {
	i, n, ok := t.integer(key)
	if ok && (i < lo || i > hi) {
		t.l.errorf(n, "%d is out of range; %s", i, what)
		return 0, n, false
	}
	return i, n, ok
}

func (t table) boolean(key string) (bool, node, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return false, n, false
	}
	b, ok := v.(bool)
	if !ok {
		t.l.errorf(n, "must be true or false, not %s", describe(v))
	}
	return b, n, ok
}

// duration reads a Go duration string such as "5s". A bare number is
// rejected: decoded straight into a time.Duration it would mean
// nanoseconds, which is never what anyone writing interval = 5 wants.
func (t table) duration(key string) (time.Duration, node, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return 0, n, false
	}
	switch v := v.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			t.l.errorf(n, "%q is not a duration; write a number with a unit, such as \"5s\", \"500ms\" or \"1m\"", v)
			return 0, n, false
		}
		return d, n, true
	case int64:
		t.l.errorf(n, "a bare number is not a duration; write a string with a unit, such as \"%ds\"", v)
	case float64:
		t.l.errorf(n, "a bare number is not a duration; write a string with a unit, such as \"%vs\"", v)
	default:
		t.l.errorf(n, "must be a duration string such as \"5s\", not %s", describe(v))
	}
	return 0, n, false
}

// positive reads a duration that must be greater than zero.
func (t table) positive(key string) (time.Duration, node, bool) {
	d, n, ok := t.duration(key)
	if ok && d <= 0 {
		t.l.errorf(n, "must be greater than 0, not %s", d)
		return 0, n, false
	}
	return d, n, ok
}

func (t table) strList(key string) ([]string, node, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return nil, n, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		t.l.errorf(n, "must be an array of strings, such as [\"200-299\"], not %s", describe(v))
		return nil, n, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			t.l.errorf(n.elem(i, strconv.Itoa(i)), "must be a string, not %s", describe(e))
			ok = false
			continue
		}
		out = append(out, s)
	}
	return out, n, ok
}

func (t table) sub(key string) (table, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return table{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.l.errorf(n, "must be a table, not %s", describe(v))
		return table{}, false
	}
	return table{l: t.l, n: n, m: m}, true
}

// tables reads an array of tables; label names element i in messages.
func (t table) tables(key string, label func(i int, m map[string]any) string) []table {
	v, n, ok := t.get(key)
	if !ok {
		return nil
	}
	var ms []map[string]any
	switch v := v.(type) {
	case []map[string]any:
		ms = v
	case []any:
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				t.l.errorf(n.elem(i, strconv.Itoa(i)), "must be a table, not %s", describe(e))
				continue
			}
			ms = append(ms, m)
		}
	case map[string]any:
		t.l.errorf(n, "must be an array of tables: write [[%s]], not [%s]", strings.Join(n.segsNames(), "."), strings.Join(n.segsNames(), "."))
		return nil
	default:
		t.l.errorf(n, "must be an array of tables, not %s", describe(v))
		return nil
	}
	out := make([]table, len(ms))
	for i, m := range ms {
		out[i] = table{l: t.l, n: n.elem(i, label(i, m)), m: m}
	}
	return out
}

// segsNames is the header spelling of n's path without indices.
func (n node) segsNames() []string {
	var out []string
	for _, s := range n.segs {
		if !strings.HasPrefix(s, "\x01") {
			out = append(out, quoteKey(s))
		}
	}
	return out
}

// enum reads a string that must be one of valid. what names the setting
// in messages ("scheduler"); aliases maps common foreign spellings to a
// hint.
func (t table) enum(key, what string, valid []string, aliases map[string]string) (string, node, bool) {
	s, n, ok := t.str(key)
	if !ok {
		return "", n, false
	}
	for _, v := range valid {
		if s == v {
			return s, n, true
		}
	}
	msg := fmt.Sprintf("unknown %s %q; valid: %s", what, s, strings.Join(valid, ", "))
	if hint, ok := aliases[s]; ok {
		msg += " (" + hint + ")"
	} else if m := closest(s, valid); m != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", m)
	}
	t.l.errorf(n, "%s", msg)
	return "", n, false
}

// section says where a key belongs, for "unknown key" hints.
type section struct {
	name   string // how a hint names the table: "[[virtual_server]]"
	keys   []string
	nested map[string]string // key of another table -> that table's name
}

// unknown reports every key of t that sec does not know.
func (t table) unknown(sec section) {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if contains(sec.keys, k) {
			continue
		}
		msg := "unknown key"
		if m := closest(k, sec.keys); m != "" {
			msg += fmt.Sprintf("; did you mean %q?", m)
		} else if where, ok := sec.nested[k]; ok {
			msg += fmt.Sprintf("; %s belongs in %s", k, where)
		} else {
			msg += fmt.Sprintf("; %s takes: %s", sec.name, strings.Join(sec.keys, ", "))
		}
		t.l.errorf(t.n.child(k), "%s", msg)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// closest returns the candidate nearest to s when it is close enough to be
// a plausible typo, else "".
func closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		d := editDistance(strings.ToLower(s), c)
		limit := 2
		if len(c) <= 4 {
			limit = 1
		}
		if d <= limit && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent bytes each cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
