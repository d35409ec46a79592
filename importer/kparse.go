package importer

import (
	"path/filepath"
	"regexp"
	"strings"
)

// keepalived.conf syntax, as keepalived's parser reads it: statements of
// whitespace-separated words, one a line (a trailing \ joins the next
// line); "!" or "#" outside double quotes starts a comment, "\#" and "\!"
// are the characters themselves; "{" opens a block and "}" closes it,
// wherever they stand; "include GLOB" splices files in, relative to the
// including file's directory. "$NAME=value" defines a parameter that
// "$NAME" and "${NAME}" then stand for; a line starting "@id" applies only
// to the keepalived whose config id is id.

// knode is one statement: its words and, for a block, its children.
type knode struct {
	at       pos
	words    []string
	children []*knode
	block    bool
}

func (n *knode) name() string { return n.words[0] }

// arg returns word i (1 = the first argument), "" when absent.
func (n *knode) arg(i int) string {
	if i < len(n.words) {
		return n.words[i]
	}
	return ""
}

// Limits that keep hostile input bounded.
const (
	maxIncludeDepth = 8
	maxBlockDepth   = 32
	maxStatements   = 200000
)

type kparser struct {
	src      Source
	params   map[string]string
	skipped  []pos // "@id" lines, reported by the converter
	count    int
	root     knode
	stack    []*knode
	pending  *knode // the statement being collected
	lastDone *knode // the last finished statement, for "{" on the next line
}

var paramRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func parseKeepalived(name string, data []byte, src Source) (*knode, *kparser, error) {
	p := &kparser{src: src, params: map[string]string{}}
	p.stack = []*knode{&p.root}
	if err := p.file(name, data, 0); err != nil {
		return nil, nil, err
	}
	p.finish()
	if len(p.stack) > 1 {
		open := p.stack[len(p.stack)-1]
		return nil, nil, &ParseError{File: open.at.file, Line: open.at.line, Msg: "block " + open.name() + " is never closed with }"}
	}
	return &p.root, p, nil
}

func (p *kparser) file(name string, data []byte, depth int) error {
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		text := strings.TrimRight(lines[i], "\r")
		clean, cont, err := decomment(text)
		if err != "" {
			return &ParseError{File: name, Line: lineNo, Msg: err}
		}
		for cont && i+1 < len(lines) {
			i++
			var more string
			more, cont, err = decomment(strings.TrimRight(lines[i], "\r"))
			if err != "" {
				return &ParseError{File: name, Line: i + 1, Msg: err}
			}
			clean += " " + more
		}
		if clean == "" {
			continue
		}
		if strings.HasPrefix(clean, "@") {
			p.skipped = append(p.skipped, pos{name, lineNo})
			continue
		}
		if strings.HasPrefix(clean, "$") {
			if eq := strings.IndexByte(clean, '='); eq > 1 && !strings.ContainsAny(clean[1:eq], " \t{}") {
				p.params[clean[1:eq]] = strings.TrimSpace(clean[eq+1:])
				continue
			}
		}
		if strings.Contains(clean, "$") {
			clean = paramRef.ReplaceAllStringFunc(clean, func(ref string) string {
				k := strings.Trim(ref, "${}")
				if v, ok := p.params[k]; ok {
					return v
				}
				return ref
			})
		}
		words, werr := splitWords(clean)
		if werr != "" {
			return &ParseError{File: name, Line: lineNo, Msg: werr}
		}
		if len(words) > 0 && words[0] == "include" {
			if err := p.include(name, lineNo, words, depth); err != nil {
				return err
			}
			continue
		}
		for _, w := range words {
			if err := p.word(w, pos{name, lineNo}); err != nil {
				return err
			}
		}
		p.finish()
	}
	return nil
}

func (p *kparser) include(name string, line int, words []string, depth int) error {
	if len(words) != 2 {
		return &ParseError{File: name, Line: line, Msg: "include takes one file name or pattern"}
	}
	if depth >= maxIncludeDepth {
		return &ParseError{File: name, Line: line, Msg: "includes nested too deep (a file including itself?)"}
	}
	if p.src == nil {
		return &ParseError{File: name, Line: line, Msg: "include " + words[1] + ": includes cannot be read here"}
	}
	pattern := words[1]
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(name), pattern)
	}
	files, err := p.src.Glob(pattern)
	if err != nil {
		return &ParseError{File: name, Line: line, Msg: "include " + words[1] + ": " + err.Error()}
	}
	p.finish()
	for _, f := range files {
		if err := p.file(f.Name, f.Data, depth+1); err != nil {
			return err
		}
		p.finish()
	}
	return nil
}

func (p *kparser) word(w string, at pos) error {
	top := p.stack[len(p.stack)-1]
	switch w {
	case "{":
		n := p.pending
		if n == nil {
			// "{" on a line of its own opens the previous statement.
			n = p.lastDone
			if n == nil || n.block || len(top.children) == 0 || top.children[len(top.children)-1] != n {
				return &ParseError{File: at.file, Line: at.line, Msg: "{ without a keyword before it"}
			}
		} else {
			p.finish()
		}
		if len(p.stack) > maxBlockDepth {
			return &ParseError{File: at.file, Line: at.line, Msg: "blocks nested too deep"}
		}
		n.block = true
		p.stack = append(p.stack, n)
		p.lastDone = nil
	case "}":
		p.finish()
		if len(p.stack) == 1 {
			return &ParseError{File: at.file, Line: at.line, Msg: "} without a block to close"}
		}
		p.stack = p.stack[:len(p.stack)-1]
		p.lastDone = nil
	default:
		if p.pending == nil {
			p.count++
			if p.count > maxStatements {
				return &ParseError{File: at.file, Line: at.line, Msg: "too many statements"}
			}
			p.pending = &knode{at: at}
		}
		p.pending.words = append(p.pending.words, w)
	}
	return nil
}

// finish ends the statement being collected.
func (p *kparser) finish() {
	if p.pending == nil {
		return
	}
	top := p.stack[len(p.stack)-1]
	top.children = append(top.children, p.pending)
	p.lastDone = p.pending
	p.pending = nil
}

// decomment strips a comment and surrounding blanks from one line and says
// whether it ends in a continuing backslash.
func decomment(s string) (string, bool, string) {
	var b strings.Builder
	quote := false
	cont := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
		case c == '\\' && i+1 < len(s):
			if !quote && (s[i+1] == '#' || s[i+1] == '!') {
				i++
				c = s[i]
			} else {
				b.WriteByte(c)
				i++
				c = s[i]
			}
		case c == '\\':
			cont = true
			c = 0
		case !quote && (c == '!' || c == '#'):
			return strings.TrimSpace(b.String()), false, ""
		}
		if c != 0 {
			b.WriteByte(c)
		}
	}
	if quote {
		return "", false, "unterminated quote"
	}
	return strings.TrimSpace(b.String()), cont, ""
}

// splitWords splits a line into words: blanks separate them, double
// quotes group (and are dropped), braces stand alone.
func splitWords(s string) ([]string, string) {
	var words []string
	var cur strings.Builder
	in := false // a word is being built
	quote := false
	flush := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quote = !quote
			in = true
		case quote:
			cur.WriteByte(c)
		case c == ' ' || c == '\t':
			flush()
		case c == '{' || c == '}':
			flush()
			words = append(words, string(c))
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote {
		return nil, "unterminated quote"
	}
	flush()
	return words, ""
}
