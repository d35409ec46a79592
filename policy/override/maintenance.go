package override

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lvsdirector/director/config"
)

// The maintenance directory (maintenance_dir, like ldirectord's
// maintenancedir): a file named after a real server takes it out. Names:
//
//	<ip>             every real server on that address, any port
//	<ip>_<port>      that address and port ("10.0.0.11_8080", "2001:db8::11_443")
//	<ip>:<port>      the same ("10.0.0.11:8080", "[2001:db8::11]:443")
//	<virtual_server>/<name>   any of the above, in a subdirectory named
//	                 after a virtual server: only in that virtual server
//
// The file's first line says what to do and why: "disable: <reason>"
// removes the server from the table, "drain: <reason>" (or any other
// text, the reason alone, or an empty file) sets weight 0. Removing the
// file ends it. Names starting with "." are ignored (editors' temporary
// files). Reading the directory is the engine's; this file only reads
// what was read.

// MaintFile is one maintenance file as read.
type MaintFile struct {
	VirtualServer string // "" at the top level
	Name          string // the file name
	Path          string
	Content       string // first line, at most MaxReasonLength bytes
	ModTime       time.Time
}

// ParseMaintName reads a maintenance file name: an address with an
// optional port (0: any port).
func ParseMaintName(name string) (netip.Addr, uint16, bool) {
	if ap, err := netip.ParseAddrPort(name); err == nil {
		// Port 0 is not a port: "<ip>:0" must not mean "every port".
		return ap.Addr().Unmap(), ap.Port(), ap.Port() != 0 && ap.Addr().Zone() == ""
	}
	if a, err := netip.ParseAddr(name); err == nil && a.Zone() == "" {
		return a.Unmap(), 0, true
	}
	if i := strings.LastIndexByte(name, '_'); i > 0 {
		a, err := netip.ParseAddr(name[:i])
		p, perr := strconv.ParseUint(name[i+1:], 10, 16)
		if err == nil && perr == nil && a.Zone() == "" && p > 0 {
			return a.Unmap(), uint16(p), true
		}
	}
	return netip.Addr{}, 0, false
}

// ParseMaintContent reads a file's first line: the kind and the reason.
func ParseMaintContent(line string) (kind, reason string) {
	kind = Drain
	word, rest, _ := strings.Cut(line, ":")
	w := strings.ToLower(strings.TrimSpace(word))
	if w == Disable || w == Drain {
		kind, line = w, strings.TrimSpace(rest)
	} else if f := strings.Fields(line); len(f) > 0 && (strings.EqualFold(f[0], Disable) || strings.EqualFold(f[0], Drain)) {
		kind, line = strings.ToLower(f[0]), strings.TrimSpace(strings.TrimPrefix(line, f[0]))
	}
	if CheckReason(line, false) != "" {
		line = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, line)
	}
	if line == "" {
		line = "maintenance file"
	}
	return kind, line
}

// MatchMaintenance matches maintenance files to real servers. It also
// returns the files that match nothing.
func MatchMaintenance(files []MaintFile, servers []config.ServerID) (map[config.ServerID]Override, []MaintFile) {
	out := map[config.ServerID]Override{}
	var unmatched []MaintFile
	for _, f := range files {
		addr, port, ok := ParseMaintName(f.Name)
		matched := false
		if ok {
			for _, id := range servers {
				if (f.VirtualServer != "" && f.VirtualServer != id.VirtualServer) || id.RealServer.Addr().Unmap() != addr || (port != 0 && id.RealServer.Port() != port) {
					continue
				}
				matched = true
				kind, reason := ParseMaintContent(f.Content)
				o := Override{Kind: kind, Reason: reason, Source: SourceMaintenance, By: f.Path, Since: f.ModTime}
				if prev, ok := out[id]; !ok || o.Hold() > prev.Hold() {
					out[id] = o
				}
			}
		}
		if !matched {
			unmatched = append(unmatched, f)
		}
	}
	return out, unmatched
}
