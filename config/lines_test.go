package config

import "testing"

func TestIndexLines(t *testing.T) {
	src := `# comment [not] a = 1
[director]
listen = "x" # trailing [comment]
"quoted.key" = 1
multi = """
[fake]
fake = 1
"""
lit = '''
[[fake]]'''
arr = [
  "a", # ]
  [1, 2],
  "b",
]

[[virtual_server]]
name = "a"
  [virtual_server.check]
  path = "/"
  [[virtual_server.real_server]]
  address = "x"
  [[virtual_server.real_server]]
  address = "y"
[[virtual_server]]
check.type = "tcp"
real_server = [
  { address = "z" },
  {
    address = "w" },
]
[[virtual_server.real_server]]
address = "v"
`
	idx := indexLines(src)
	for _, tt := range []struct {
		segs []string
		want int
	}{
		{[]string{"director"}, 2},
		{[]string{"director", "listen"}, 3},
		{[]string{"director", "quoted.key"}, 4},
		{[]string{"director", "multi"}, 5},
		{[]string{"director", "lit"}, 9},
		{[]string{"director", "arr"}, 11},
		{[]string{"director", "arr", indexSeg(2)}, 14},
		{[]string{"virtual_server"}, 17},
		{[]string{"virtual_server", indexSeg(0)}, 17},
		{[]string{"virtual_server", indexSeg(0), "name"}, 18},
		{[]string{"virtual_server", indexSeg(0), "check", "path"}, 20},
		{[]string{"virtual_server", indexSeg(0), "real_server", indexSeg(1), "address"}, 24},
		{[]string{"virtual_server", indexSeg(1)}, 25},
		{[]string{"virtual_server", indexSeg(1), "check", "type"}, 26},
		{[]string{"virtual_server", indexSeg(1), "real_server", indexSeg(0), "address"}, 28},
		{[]string{"virtual_server", indexSeg(1), "real_server", indexSeg(1), "address"}, 30},
	} {
		if got, _ := idx.line(tt.segs); got != tt.want {
			t.Errorf("line of %q = %d, want %d", tt.segs, got, tt.want)
		}
	}
	for _, k := range []string{"fake", "comment", "not"} {
		if _, ok := idx.line([]string{k}); ok {
			t.Errorf("%q indexed from inside a string or comment", k)
		}
	}
}
