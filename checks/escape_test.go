package checks

import "testing"

func TestUnescape(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "", want: ""},
		{in: "PING\r\n", want: "PING\r\n"},
		{in: `PING\r\n`, want: "PING\r\n"},
		{in: `a\tb\0c\\d`, want: "a\tb\x00c\\d"},
		{in: `\x00\xfF\x7e`, want: "\x00\xff~"},
		{in: `caf\xc3\xa9`, want: "café"},
		{in: `\`, err: `a lone \ ends the string; write \\ for a backslash`},
		{in: `ab\x4`, err: `\x at byte 2 needs two hex digits, such as \x0d`},
		{in: `\xg0`, err: `\x at byte 0 needs two hex digits, such as \x0d`},
		{in: `a\d`, err: `unknown escape \d at byte 1; escapes are \r \n \t \0 \\ and \xNN`},
	} {
		got, err := unescape(tt.in)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("unescape(%q): error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("unescape(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if msg := escapeProblem(tt.in); msg != tt.err {
			t.Errorf("escapeProblem(%q) = %q, want %q", tt.in, msg, tt.err)
		}
	}
}
