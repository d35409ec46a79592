package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private, so the line of every key is
// found by scanning the raw text again. The text has already been parsed
// successfully by the time this runs, so the scanner can be forgiving: it
// only needs to follow table headers, keys, strings (which may span lines
// and contain anything), arrays and inline tables.
//
// Paths are sequences of segments: a key name, or an array index made by
// indexSeg. [[x]] headers and inline arrays both produce index segments, so
// "virtual_server[1].real_server[0].weight" is found whichever way the file
// spells it.
//
// The scan takes time linear in the file: a path is a number, a child is
// found from its parent and one segment, so a value nested n deep costs
// one step, not n (20,000 nested arrays once took 13 s and 3.8 GB).

// pathID names a path; 0 is the document root.
type pathID int32

const rootPath pathID = 0

type pathStep struct {
	parent pathID
	seg    string
}

// lineIndex maps paths to the line where each first appears.
type lineIndex struct {
	ids   map[pathStep]pathID
	lines []int // by pathID; 0 where the path was never recorded
}

func newLineIndex() *lineIndex {
	return &lineIndex{ids: map[pathStep]pathID{}, lines: []int{0}}
}

// child returns the path of seg within parent, making it if new.
func (x *lineIndex) child(parent pathID, seg string) pathID {
	k := pathStep{parent, seg}
	if id, ok := x.ids[k]; ok {
		return id
	}
	id := pathID(len(x.lines))
	x.lines = append(x.lines, 0)
	x.ids[k] = id
	return id
}

// line returns the line where the path segs first appears.
func (x *lineIndex) line(segs []string) (int, bool) {
	p := rootPath
	for _, seg := range segs {
		id, ok := x.ids[pathStep{p, seg}]
		if !ok {
			return 0, false
		}
		p = id
	}
	return x.lines[p], x.lines[p] != 0
}

func indexSeg(i int) string { return "\x01" + strconv.Itoa(i) }

// join returns a new slice: a followed by b, never sharing a's array.
func join(a []string, b ...string) []string {
	out := make([]string, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

type lineScanner struct {
	src    string
	pos    int
	line   int
	idx    *lineIndex
	arrays map[pathID]int // an array of tables -> elements so far
	cur    pathID         // current table
}

func indexLines(src string) *lineIndex {
	s := &lineScanner{src: src, line: 1, idx: newLineIndex(), arrays: map[pathID]int{}}
	s.document()
	return s.idx
}

// MaxNesting is how deep arrays and tables may nest in a config file.
// The director's own configs need three levels; the bound keeps a hostile
// or broken file from costing time and memory with its depth.
const MaxNesting = 32

// nestedTooDeep returns the line where arrays and tables (headers, inline
// tables) of src first nest deeper than limit, or 0. It runs before the
// parser, in one pass; brackets in strings and comments do not count.
func nestedTooDeep(src string, limit int) int {
	s := &lineScanner{src: src, line: 1}
	depth := 0
	for !s.eof() {
		if s.skipString() {
			continue
		}
		switch c := s.peek(); {
		case c == '#':
			s.skipToEOL()
		case c == '[' || c == '{':
			if depth++; depth > limit {
				return s.line
			}
			s.advance()
		case c == ']' || c == '}':
			depth = max(depth-1, 0)
			s.advance()
		default:
			s.advance()
		}
	}
	return 0
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *lineScanner) peekAt(off int) byte {
	if s.pos+off >= len(s.src) {
		return 0
	}
	return s.src[s.pos+off]
}

func (s *lineScanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

func (s *lineScanner) record(p pathID, line int) {
	if s.idx.lines[p] == 0 {
		s.idx.lines[p] = line
	}
}

func (s *lineScanner) skipSpace() {
	for c := s.peek(); c == ' ' || c == '\t' || c == '\r'; c = s.peek() {
		s.advance()
	}
}

func (s *lineScanner) skipToEOL() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

// skipBlank skips spaces, newlines and comments.
func (s *lineScanner) skipBlank() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.advance()
		case '#':
			s.skipToEOL()
		default:
			return
		}
	}
}

func (s *lineScanner) document() {
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		start := s.pos
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyval(s.cur)
		}
		s.skipToEOL()
		if s.pos == start {
			s.advance()
		}
	}
}

func (s *lineScanner) header() {
	line := s.line
	isArray := s.peekAt(1) == '['
	s.advance()
	if isArray {
		s.advance()
	}
	keys := s.keys()
	p := rootPath
	for i, k := range keys {
		p = s.idx.child(p, k)
		last := i == len(keys)-1
		if last && isArray {
			n := s.arrays[p]
			s.arrays[p] = n + 1
			s.record(p, line)
			p = s.idx.child(p, indexSeg(n))
		} else if n, ok := s.arrays[p]; ok {
			s.record(p, line)
			p = s.idx.child(p, indexSeg(n-1))
		}
		s.record(p, line)
	}
	s.cur = p
}

// keys reads a possibly dotted key and returns its parts.
func (s *lineScanner) keys() []string {
	var out []string
	for {
		s.skipSpace()
		switch c := s.peek(); {
		case c == '"':
			out = append(out, s.basicString())
		case c == '\'':
			out = append(out, s.literalString())
		case isBareKeyChar(c):
			start := s.pos
			for isBareKeyChar(s.peek()) {
				s.advance()
			}
			out = append(out, s.src[start:s.pos])
		default:
			return out
		}
		s.skipSpace()
		if s.peek() != '.' {
			return out
		}
		s.advance()
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (s *lineScanner) keyval(table pathID) {
	line := s.line
	keys := s.keys()
	if len(keys) == 0 {
		return
	}
	p := table
	for _, k := range keys {
		p = s.idx.child(p, k)
		s.record(p, line)
	}
	s.skipSpace()
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.value(p)
}

// skipString moves past the string of any kind that starts here, if one
// does, and reports whether one did.
func (s *lineScanner) skipString() bool {
	switch c := s.peek(); {
	case strings.HasPrefix(s.src[s.pos:], `"""`):
		s.multiline(`"""`)
	case strings.HasPrefix(s.src[s.pos:], `'''`):
		s.multiline(`'''`)
	case c == '"':
		s.skipBasicString()
	case c == '\'':
		s.literalString()
	default:
		return false
	}
	return true
}

func (s *lineScanner) value(p pathID) {
	s.skipSpace()
	if s.skipString() {
		return
	}
	switch c := s.peek(); {
	case c == '[':
		s.array(p)
	case c == '{':
		s.inlineTable(p)
	default:
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.advance()
		}
	}
}

// skipBasicString moves past a "..." string.
func (s *lineScanner) skipBasicString() {
	s.advance()
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		if s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	s.advance()
}

// basicString reads a "..." string and returns its decoded value (or the
// raw text between the quotes if it uses an escape Go does not know).
func (s *lineScanner) basicString() string {
	start := s.pos
	s.skipBasicString()
	raw := s.src[start:min(s.pos, len(s.src))]
	if v, err := strconv.Unquote(raw); err == nil {
		return v
	}
	return strings.Trim(raw, `"`)
}

func (s *lineScanner) literalString() string {
	s.advance()
	start := s.pos
	for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
		s.advance()
	}
	v := s.src[start:s.pos]
	s.advance()
	return v
}

func (s *lineScanner) multiline(delim string) {
	for range 3 {
		s.advance()
	}
	for !s.eof() {
		if delim[0] == '"' && s.peek() == '\\' {
			s.advance()
			s.advance()
			continue
		}
		if strings.HasPrefix(s.src[s.pos:], delim) {
			for range 3 {
				s.advance()
			}
			// Up to two more quotes may end the content.
			for range 2 {
				if s.peek() == delim[0] {
					s.advance()
				}
			}
			return
		}
		s.advance()
	}
}

func (s *lineScanner) array(p pathID) {
	s.advance()
	for i := 0; ; i++ {
		s.skipBlank()
		if s.eof() {
			return
		}
		if s.peek() == ']' {
			s.advance()
			return
		}
		start := s.pos
		elem := s.idx.child(p, indexSeg(i))
		s.record(elem, s.line)
		s.value(elem)
		s.skipBlank()
		if s.peek() == ',' {
			s.advance()
		}
		if s.pos == start {
			s.advance()
		}
	}
}

func (s *lineScanner) inlineTable(p pathID) {
	s.advance()
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		if s.peek() == '}' {
			s.advance()
			return
		}
		start := s.pos
		s.keyval(p)
		s.skipBlank()
		if s.peek() == ',' {
			s.advance()
		}
		if s.pos == start {
			s.advance()
		}
	}
}
