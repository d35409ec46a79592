package importer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// document is the director config being written, in the order a person
// would write it: [director], [defaults.check], then each virtual server
// with its check and real servers.
type document struct {
	header   []string
	director block
	defaults block
	email    block // [notify.email]
	vss      []*vsBlock
}

// block is one TOML table: comment lines above it, then its keys.
type block struct {
	comment []string
	items   []item
	checks  []*block // a real server's own checks
}

type item struct {
	key   string
	value string // already TOML
	from  pos
	note  string // said after the source position
}

type vsBlock struct {
	block
	checks []*block
	reals  []*block
}

func (b *block) set(key string, value any, from pos, note string) {
	v := tomlValue(value)
	for i := range b.items {
		if b.items[i].key == key {
			b.items[i] = item{key, v, from, note}
			return
		}
	}
	b.items = append(b.items, item{key, v, from, note})
}

func (b *block) get(key string) (string, bool) {
	for _, it := range b.items {
		if it.key == key {
			return it.value, true
		}
	}
	return "", false
}

func (b *block) del(key string) {
	for i, it := range b.items {
		if it.key == key {
			b.items = append(b.items[:i], b.items[i+1:]...)
			return
		}
	}
}

// rawTOML is a value already written as TOML (inline tables).
type rawTOML string

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return tomlString(v)
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			parts[i] = tomlString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case rawTOML:
		return string(v)
	}
	panic(fmt.Sprintf("importer: no TOML form for %T", v))
}

// tomlString quotes s, as a literal string when it holds backslashes
// (regular expressions read better without doubled ones) and can be one.
func tomlString(s string) string {
	if strings.Contains(s, `\`) && !strings.ContainsAny(s, "'\n\r") && printable(s) {
		return "'" + s + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func (d *document) render() string {
	var b strings.Builder
	for _, c := range d.header {
		b.WriteString(commentLine(c))
	}
	if len(d.director.items) > 0 {
		b.WriteString("\n")
		d.director.write(&b, "[director]", "", "")
	}
	if len(d.defaults.items) > 0 {
		b.WriteString("\n")
		d.defaults.write(&b, "[defaults.check]", "", "")
	}
	if len(d.email.items) > 0 {
		b.WriteString("\n")
		d.email.write(&b, "[notify.email]", "", "")
	}
	for _, vs := range d.vss {
		b.WriteString("\n")
		file := ""
		for _, it := range vs.items {
			if it.from.file != "" {
				file = it.from.file
				break
			}
		}
		vs.write(&b, "[[virtual_server]]", "", file)
		header := "[virtual_server.check]"
		if len(vs.checks) > 1 {
			header = "[[virtual_server.check]]"
		}
		for _, c := range vs.checks {
			sortCheck(c)
			b.WriteString("\n")
			c.write(&b, header, "  ", file)
		}
		for _, rs := range vs.reals {
			b.WriteString("\n")
			rs.write(&b, "[[virtual_server.real_server]]", "  ", file)
			for _, c := range rs.checks {
				sortCheck(c)
				b.WriteString("\n")
				c.write(&b, "[[virtual_server.real_server.check]]", "    ", file)
			}
		}
	}
	return b.String()
}

func sortCheck(c *block) {
	slices.SortStableFunc(c.items, func(a, b item) int { return checkKeyRank(a.key) - checkKeyRank(b.key) })
}

// checkKeyRank orders a check's keys: the common ones first, as
// config.example.toml has them.
func checkKeyRank(key string) int {
	switch key {
	case "name":
		return -1
	case "type":
		return 0
	case "interval":
		return 1
	case "timeout":
		return 2
	case "rise":
		return 3
	case "fall":
		return 4
	case "retry_interval":
		return 5
	case "port", "address", "source":
		return 6
	}
	return 10
}

func commentLine(c string) string {
	if c == "" {
		return "#\n"
	}
	return "# " + c + "\n"
}

// write prints the block's table header, comments and keys, each key with
// the source position it came from (the line alone when in file).
func (b *block) write(w *strings.Builder, header, indent, file string) {
	for _, c := range b.comment {
		w.WriteString(indent + commentLine(c))
	}
	w.WriteString(indent + header + "\n")
	width := 0
	for _, it := range b.items {
		if n := len(it.key) + 3 + len(it.value); n > width && n <= 40 {
			width = n
		}
	}
	for _, it := range b.items {
		value := it.value
		if strings.Contains(value, "\n") {
			// A multi-line array: its entries one level in, the closing
			// bracket at the key's level.
			parts := strings.Split(value, "\n")
			for i := 1; i < len(parts); i++ {
				p := strings.TrimLeft(parts[i], " ")
				if i == len(parts)-1 {
					parts[i] = indent + p
				} else {
					parts[i] = indent + "  " + p
				}
			}
			value = strings.Join(parts, "\n")
		}
		line := indent + it.key + " = " + value
		var where string
		switch {
		case it.from.line == 0:
		case it.from.file == file:
			where = "line " + strconv.Itoa(it.from.line)
		default:
			where = it.from.file + ":" + strconv.Itoa(it.from.line)
		}
		if it.note != "" {
			if where != "" {
				where += ": "
			}
			where += it.note
		}
		if where != "" {
			pad := width - (len(line) - len(indent))
			if pad < 0 {
				pad = 0
			}
			line += strings.Repeat(" ", pad) + "  # " + where
		}
		w.WriteString(line + "\n")
	}
}

// posString is file:line for a block's comment.
func (p pos) String() string { return p.file + ":" + strconv.Itoa(p.line) }

// seconds writes whole or fractional seconds as a duration string.
func seconds(s float64) string {
	if s == float64(int64(s)) {
		return strconv.FormatInt(int64(s), 10) + "s"
	}
	ms := int64(s*1000 + 0.5)
	if ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10) + "s"
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// hostPort joins an address and a port the way the director writes them.
func hostPort(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.Itoa(port)
	}
	return ip + ":" + strconv.Itoa(port)
}
