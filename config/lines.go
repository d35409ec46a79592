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

// lineIndex maps pathKey(segments) to the line where the path first appears.
type lineIndex map[string]int

func pathKey(segs []string) string { return strings.Join(segs, "\x00") }

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
	idx    lineIndex
	arrays map[string]int // pathKey of an array of tables -> elements so far
	cur    []string       // current table
}

func indexLines(src string) lineIndex {
	s := &lineScanner{src: src, line: 1, idx: lineIndex{}, arrays: map[string]int{}}
	s.document()
	return s.idx
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

func (s *lineScanner) record(segs []string, line int) {
	k := pathKey(segs)
	if _, ok := s.idx[k]; !ok {
		s.idx[k] = line
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
	var segs []string
	for i, k := range keys {
		segs = join(segs, k)
		last := i == len(keys)-1
		pk := pathKey(segs)
		if last && isArray {
			n := s.arrays[pk]
			s.arrays[pk] = n + 1
			s.record(segs, line)
			segs = join(segs, indexSeg(n))
		} else if n, ok := s.arrays[pk]; ok {
			s.record(segs, line)
			segs = join(segs, indexSeg(n-1))
		}
		s.record(segs, line)
	}
	s.cur = segs
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

func (s *lineScanner) keyval(table []string) {
	line := s.line
	keys := s.keys()
	if len(keys) == 0 {
		return
	}
	segs := table
	for _, k := range keys {
		segs = join(segs, k)
		s.record(segs, line)
	}
	s.skipSpace()
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.value(segs)
}

func (s *lineScanner) value(segs []string) {
	s.skipSpace()
	switch c := s.peek(); {
	case strings.HasPrefix(s.src[s.pos:], `"""`):
		s.multiline(`"""`)
	case strings.HasPrefix(s.src[s.pos:], `'''`):
		s.multiline(`'''`)
	case c == '"':
		s.basicString()
	case c == '\'':
		s.literalString()
	case c == '[':
		s.array(segs)
	case c == '{':
		s.inlineTable(segs)
	default:
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.advance()
		}
	}
}

// basicString reads a "..." string and returns its decoded value (or the
// raw text between the quotes if it uses an escape Go does not know).
func (s *lineScanner) basicString() string {
	start := s.pos
	s.advance()
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		if s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	s.advance()
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

func (s *lineScanner) array(segs []string) {
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
		elem := join(segs, indexSeg(i))
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

func (s *lineScanner) inlineTable(segs []string) {
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
		s.keyval(segs)
		s.skipBlank()
		if s.peek() == ',' {
			s.advance()
		}
		if s.pos == start {
			s.advance()
		}
	}
}
