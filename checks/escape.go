package checks

import (
	"fmt"
	"strings"
)

// unescape turns the escapes of send strings into the bytes they stand
// for: \r, \n, \t, \0, \\ and \xNN (two hex digits, any byte). TOML's basic
// strings already turn "\r\n" into CR LF, so these matter in literal
// strings ('PING\r\n') and for bytes TOML cannot write (\x00-\xff outside
// UTF-8). Any other backslash is an error, so that a typo never goes out
// on the wire as written.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf(`a lone \ ends the string; write \\ for a backslash`)
		}
		i++
		switch s[i] {
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '0':
			b.WriteByte(0)
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", fmt.Errorf(`\x at byte %d needs two hex digits, such as \x0d`, i-1)
			}
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
		default:
			return "", fmt.Errorf(`unknown escape \%c at byte %d; escapes are \r \n \t \0 \\ and \xNN`, s[i], i-1)
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// escapeProblem says what is wrong with the escapes of s, "" when nothing
// is.
func escapeProblem(s string) string {
	if _, err := unescape(s); err != nil {
		return err.Error()
	}
	return ""
}

// sentBytes is what a send string puts on the wire, for canonical forms:
// "\x41" and "A" send the same. A string with bad escapes (which Validate
// rejects) stands for itself.
func sentBytes(s string) string {
	if b, err := unescape(s); err == nil {
		return b
	}
	return s
}
