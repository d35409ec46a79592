package manpage

import (
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	md := "# top\nintro\n## A\na text\n```sh\n## not a heading\n```\n### A.1\nsub\n## B\nb text\n### B.1\nlast\n"
	for _, tc := range []struct {
		heading string
		want    string
		level   int
		err     bool
	}{
		{"A", "a text\n```sh\n## not a heading\n```\n### A.1\nsub", 2, false},
		{"A.1", "sub", 3, false},
		{"B", "b text\n### B.1\nlast\n", 2, false},
		{"top", strings.TrimPrefix(md, "# top\n"), 1, false},
		{"not a heading", "", 0, true},
		{"C", "", 0, true},
	} {
		got, level, err := Extract(md, tc.heading)
		if (err != nil) != tc.err || got != tc.want || level != tc.level {
			t.Errorf("Extract(%q) = %q, %d, %v; want %q, %d, error %v", tc.heading, got, level, err, tc.want, tc.level, tc.err)
		}
	}
}

func TestIntro(t *testing.T) {
	if got := Intro("# title\n\nSome intro.\n\n- a list\n\n## First\nbody\n"); got != "\nSome intro.\n\n- a list\n" {
		t.Errorf("Intro = %q", got)
	}
}

func TestInline(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"use `-dry-run` now", `use \fB\%\-dry\-run\fR now`},
		{"a **bold** word", `a \fBbold\fR word`},
		{"`**not bold**`", `\fB\%**not bold**\fR`},
		{`a \ backslash`, `a \e backslash`},
		{"see [the docs](docs/x.md)", "see the docs (docs/x.md)"},
		{"on <http://127.0.0.1:9410/metrics>", "on http://127.0.0.1:9410/metrics"},
		{"`a\\b` and `c`", `\fB\%a\eb\fR and \fB\%c\fR`},
	} {
		if got := inline(tc.in); got != tc.want {
			t.Errorf("inline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	md := `First paragraph
continues here.

.starts with a dot

- item one
  continues
- item two:

  ` + "```sh" + `
  director run
  ` + "```" + `

  more of item two
1. numbered

| key | meaning | default |
|---|---|---|
| ` + "`listen`" + ` | where | 127.0.0.1:9410 |

### Sub heading ` + "`x`" + `

` + "```toml" + `
# comment
listen = "a\b"
` + "```"
	got := Render(Page{Name: "director", Section: "8", Summary: "a director", Date: "2026-01-02", Source: "director v1", Manual: "Manual",
		Sections: []Section{{Title: "Description", Body: md}, {Title: "Synopsis", Body: ".x\nline", Literal: true}}})
	for _, want := range []string{
		`.TH "DIRECTOR" 8 "2026-01-02" "director v1" "Manual"`,
		".SH NAME\ndirector \\- a director\n",
		".SH \"DESCRIPTION\"\n.PP\nFirst paragraph\ncontinues here.\n",
		".PP\n\\&.starts with a dot\n",
		".IP \"\\(bu\" 4\nitem one\ncontinues\n",
		".IP \"\\(bu\" 4\nitem two:\n.IP \"\" 4\n.RS 4\n.nf\ndirector run\n.fi\n.RE\n.IP \"\" 4\nmore of item two\n",
		".IP \"1.\" 4\nnumbered\n",
		".TP\n\\fB\\%listen\\fR\nmeaning: where; default: 127.0.0.1:9410\n",
		".SS \"Sub heading x\"\n",
		".nf\n# comment\nlisten = \"a\\eb\"\n.fi\n",
		".SH \"SYNOPSIS\"\n.RS 4\n.nf\n\\&.x\nline\n.fi\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered page lacks\n%s\n--- page:\n%s", want, got)
		}
	}
	if strings.Contains(got, "|") {
		t.Errorf("a table's pipes made it into the page:\n%s", got)
	}
}
