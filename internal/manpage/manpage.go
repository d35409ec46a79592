// Package manpage turns sections of the README (the Markdown the project
// writes its reference in) into man pages, so that director(8) and
// director.toml(5) say what the README says and cannot drift from it.
//
// It knows the Markdown the README uses: headings, paragraphs, bullet and
// numbered lists (with indented continuation lines and code blocks),
// fenced code, pipe tables, `code`, **bold**, [links](url) and <url>.
// Pure: no I/O.
package manpage

import (
	"fmt"
	"regexp"
	"strings"
)

// Page is one man page.
type Page struct {
	Name    string // "director"
	Section string // "8"
	Summary string // the NAME line's description
	Date    string // "2026-12-01"
	Source  string // the footer: "director v1.2.3"
	Manual  string // the header: "System Administration"
	// Sections in order; each body is Markdown.
	Sections []Section
}

// Section is a .SH section. Literal bodies are shown as they are
// (a usage text, a config file); others are Markdown.
type Section struct {
	Title   string
	Body    string
	Literal bool
}

// Extract returns the body of the Markdown heading whose text is heading
// (any level), up to the next heading of the same or a higher level, and
// that heading's level. Headings inside fenced code do not count.
func Extract(md, heading string) (string, int, error) {
	lines := strings.Split(md, "\n")
	start, level := -1, 0
	inFence := false
	for i, line := range lines {
		if isFence(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		lv, text := headingOf(line)
		if lv == 0 {
			continue
		}
		if start < 0 {
			if text == heading {
				start, level = i+1, lv
			}
			continue
		}
		if lv <= level {
			return strings.Join(lines[start:i], "\n"), level, nil
		}
	}
	if start < 0 {
		return "", 0, fmt.Errorf("no heading %q", heading)
	}
	return strings.Join(lines[start:], "\n"), level, nil
}

// Intro returns what stands between the document's first heading and the
// next one: its introduction.
func Intro(md string) string {
	lines := strings.Split(md, "\n")
	start := -1
	for i, line := range lines {
		if headingLevel(line) == 0 {
			continue
		}
		if start >= 0 {
			return strings.Join(lines[start:i], "\n")
		}
		start = i + 1
	}
	if start < 0 {
		return ""
	}
	return strings.Join(lines[start:], "\n")
}

func isFence(line string) bool { return strings.HasPrefix(strings.TrimSpace(line), "```") }

// headingOf returns a heading line's level and text; 0 for other lines.
func headingOf(line string) (int, string) {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || n >= len(line) || line[n] != ' ' {
		return 0, ""
	}
	return n, strings.TrimSpace(line[n:])
}

// Render writes the page as roff for the man macros.
func Render(p Page) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".\\\" Generated from the project's README by tools/deb; do not edit.\n")
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", quote(strings.ToUpper(p.Name)), p.Section, quote(p.Date), quote(p.Source), quote(p.Manual))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", escape(p.Name), escape(p.Summary))
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		if s.Literal {
			literal(&b, strings.Split(strings.TrimRight(s.Body, "\n"), "\n"))
			continue
		}
		blocks(&b, strings.Split(s.Body, "\n"), 0)
	}
	return b.String()
}

// blocks renders Markdown lines. depth > 0 inside a list item, where a
// new paragraph continues the item's indentation.
func blocks(b *strings.Builder, lines []string, depth int) {
	para := func() {
		if depth > 0 {
			b.WriteString(".IP \"\" 4\n")
		} else {
			b.WriteString(".PP\n")
		}
	}
	for i := 0; i < len(lines); {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			i++
		case isFence(line):
			indent := len(line) - len(strings.TrimLeft(line, " "))
			j := i + 1
			var code []string
			for j < len(lines) && !isFence(lines[j]) {
				code = append(code, strip(lines[j], indent))
				j++
			}
			para()
			literal(b, code)
			i = j + 1
		case depth == 0 && headingLevel(line) > 0:
			_, text := headingOf(line)
			fmt.Fprintf(b, ".SS %s\n", quote(plain(text)))
			i++
		case strings.HasPrefix(trimmed, "|"):
			j := i
			for j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "|") {
				j++
			}
			table(b, lines[i:j], depth)
			i = j
		case listMarker(line) != "":
			// One item: its first line and every following line that is
			// blank or indented past the marker, until the next item.
			marker := listMarker(line)
			indent := len(line) - len(strings.TrimLeft(line, " "))
			item := []string{strings.TrimSpace(line)[len(marker):]}
			j := i + 1
			for j < len(lines) {
				l := lines[j]
				if strings.TrimSpace(l) == "" {
					// A blank line ends the item unless it continues indented.
					if k := nextNonBlank(lines, j); k < len(lines) && leading(lines[k]) > indent {
						item = append(item, "")
						j++
						continue
					}
					break
				}
				if leading(l) <= indent {
					break
				}
				item = append(item, strip(l, indent+len(marker)))
				j++
			}
			tag := "\\(bu"
			if marker != "- " && marker != "* " {
				tag = strings.TrimSpace(marker)
			}
			fmt.Fprintf(b, ".IP \"%s\" 4\n", tag) // a roff glyph or "1.": nothing to escape
			if depth > 0 {
				b.WriteString(".RS 4\n")
			}
			// The item's first paragraph follows the tag; the rest are
			// blocks of their own at the item's indentation.
			k := 0
			var first []string
			for k < len(item) && strings.TrimSpace(item[k]) != "" && !isFence(item[k]) && listMarker(item[k]) == "" &&
				!strings.HasPrefix(strings.TrimSpace(item[k]), "|") {
				first = append(first, item[k])
				k++
			}
			text(b, first)
			blocks(b, item[k:], depth+1)
			if depth > 0 {
				b.WriteString(".RE\n")
			}
			i = j
		default:
			j := i
			var p []string
			for j < len(lines) && strings.TrimSpace(lines[j]) != "" && !isFence(lines[j]) && listMarker(lines[j]) == "" &&
				headingLevel(lines[j]) == 0 && !strings.HasPrefix(strings.TrimSpace(lines[j]), "|") {
				p = append(p, lines[j])
				j++
			}
			para()
			text(b, p)
			i = j
		}
	}
}

func headingLevel(line string) int { n, _ := headingOf(line); return n }

func nextNonBlank(lines []string, i int) int {
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	return i
}

func leading(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// strip removes up to n leading spaces.
func strip(s string, n int) string {
	for n > 0 && strings.HasPrefix(s, " ") {
		s, n = s[1:], n-1
	}
	return s
}

var numbered = regexp.MustCompile(`^\d+\. `)

// listMarker returns the "- " or "1. " that starts a list item, or "".
func listMarker(line string) string {
	t := strings.TrimLeft(line, " ")
	if strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") {
		return t[:2]
	}
	return numbered.FindString(t)
}

// literal writes lines unfilled, as a code block.
func literal(b *strings.Builder, lines []string) {
	b.WriteString(".RS 4\n.nf\n")
	for _, l := range lines {
		b.WriteString(lineStart(escape(l)) + "\n")
	}
	b.WriteString(".fi\n.RE\n")
}

// text writes a paragraph's lines with inline formatting; roff fills them.
func text(b *strings.Builder, lines []string) {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		b.WriteString(lineStart(inline(l)) + "\n")
	}
}

// table renders a pipe table as one tagged paragraph per row: the first
// cell as the tag, the others as "header: value" (a table's wide cells
// wrap badly at 80 columns in tbl).
func table(b *strings.Builder, rows []string, depth int) {
	var header []string
	for n, row := range rows {
		cells := splitRow(row)
		if n == 0 {
			header = cells
			continue
		}
		if isRule(cells) {
			continue
		}
		if depth > 0 {
			b.WriteString(".RS 4\n")
		}
		fmt.Fprintf(b, ".TP\n%s\n", lineStart(inline(cells[0])))
		var parts []string
		for c := 1; c < len(cells); c++ {
			if cells[c] == "" {
				continue
			}
			h := ""
			if c < len(header) && header[c] != "" {
				h = header[c] + ": "
			}
			parts = append(parts, h+cells[c])
		}
		b.WriteString(lineStart(inline(strings.Join(parts, "; "))) + "\n")
		if depth > 0 {
			b.WriteString(".RE\n")
		}
	}
}

func splitRow(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	// A | inside `code` is part of the cell.
	var cells []string
	var cur strings.Builder
	inCode := false
	for _, r := range row {
		switch {
		case r == '`':
			inCode = !inCode
			cur.WriteRune(r)
		case r == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

func isRule(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

var (
	codeSpan  = regexp.MustCompile("`([^`]+)`")
	boldSpan  = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	link      = regexp.MustCompile(`\[([^\]]+)\]\(([^)]+)\)`)
	autolink  = regexp.MustCompile(`<(https?://[^>]+)>`)
	codeToken = regexp.MustCompile("\x00(\\d+)\x00")
)

// inline converts one line's Markdown spans to roff fonts. Code spans
// are set aside first so that nothing inside them is taken as Markdown.
func inline(s string) string {
	var codes []string
	s = codeSpan.ReplaceAllStringFunc(s, func(m string) string {
		codes = append(codes, m[1:len(m)-1])
		return fmt.Sprintf("\x00%d\x00", len(codes)-1)
	})
	s = link.ReplaceAllString(s, "$1 ($2)")
	s = autolink.ReplaceAllString(s, "$1")
	s = escape(s)
	s = boldSpan.ReplaceAllString(s, `\fB$1\fR`)
	return codeToken.ReplaceAllStringFunc(s, func(m string) string {
		var n int
		fmt.Sscanf(strings.Trim(m, "\x00"), "%d", &n)
		return `\fB\%` + strings.ReplaceAll(escape(codes[n]), "-", `\-`) + `\fR` // \% : never hyphenated
	})
}

// plain drops Markdown spans, for headings.
func plain(s string) string {
	s = codeSpan.ReplaceAllString(s, "$1")
	return boldSpan.ReplaceAllString(s, "$1")
}

// escape makes text safe in roff: a backslash is \e.
func escape(s string) string { return strings.ReplaceAll(s, `\`, `\e`) }

// lineStart keeps a line that starts with . or ' from being read as a
// request.
func lineStart(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}

// quote makes a macro argument of s.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}
