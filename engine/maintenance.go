package engine

import (
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
// files). The directory is read every second.

// maintFile is one maintenance file.
type maintFile struct {
	vs      string // "" at the top level
	name    string // the file name
	path    string
	content string // first line, at most maxMaintLine bytes
	mtime   time.Time
}

const maxMaintLine = MaxReasonLength

// readMaintenance lists the files of dir and its virtual server
// subdirectories. dir "" is no directory. A directory that does not exist
// holds no files; any other error is returned (and the caller keeps what
// it had, rather than putting every server back because of a hiccup).
func readMaintenance(dir string) ([]maintFile, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []maintFile
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		if ent.IsDir() {
			sub, err := os.ReadDir(filepath.Join(dir, ent.Name()))
			if err != nil {
				return nil, err
			}
			for _, s := range sub {
				if strings.HasPrefix(s.Name(), ".") || s.IsDir() {
					continue
				}
				out = append(out, readMaintFile(filepath.Join(dir, ent.Name(), s.Name()), ent.Name(), s.Name()))
			}
			continue
		}
		out = append(out, readMaintFile(filepath.Join(dir, ent.Name()), "", ent.Name()))
	}
	return out, nil
}

func readMaintFile(path, vs, name string) maintFile {
	f := maintFile{vs: vs, name: name, path: path}
	fh, err := os.Open(path)
	if err != nil {
		return f // it still counts: the name is what matters
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil {
		f.mtime = fi.ModTime()
	}
	buf := make([]byte, maxMaintLine)
	n, _ := io.ReadFull(fh, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	f.content = strings.TrimSpace(line)
	return f
}

// parseMaintName reads a maintenance file name: an address with an
// optional port (0: any port).
func parseMaintName(name string) (netip.Addr, uint16, bool) {
	if ap, err := netip.ParseAddrPort(name); err == nil {
		return ap.Addr().Unmap(), ap.Port(), true
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

// parseMaintContent reads a file's first line: the kind and the reason.
func parseMaintContent(line string) (kind, reason string) {
	kind = OverrideDrain
	word, rest, _ := strings.Cut(line, ":")
	w := strings.ToLower(strings.TrimSpace(word))
	if w == OverrideDisable || w == OverrideDrain {
		kind, line = w, strings.TrimSpace(rest)
	} else if f := strings.Fields(line); len(f) > 0 && (strings.EqualFold(f[0], OverrideDisable) || strings.EqualFold(f[0], OverrideDrain)) {
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

// maintenanceOverrides matches maintenance files to the running config's
// real servers. It also returns the files that match nothing. It is pure.
func maintenanceOverrides(files []maintFile, servers []serverID) (map[serverID]Override, []maintFile) {
	out := map[serverID]Override{}
	var unmatched []maintFile
	for _, f := range files {
		addr, port, ok := parseMaintName(f.name)
		matched := false
		if ok {
			for _, id := range servers {
				if (f.vs != "" && f.vs != id.vs) || id.rs.Addr().Unmap() != addr || (port != 0 && id.rs.Port() != port) {
					continue
				}
				matched = true
				kind, reason := parseMaintContent(f.content)
				o := Override{Kind: kind, Reason: reason, Source: SourceMaintenance, By: f.path, Since: f.mtime}
				if prev, ok := out[id]; !ok || o.kind() > prev.kind() {
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

// applyMaintenanceLocked makes the files read from dir the maintenance
// overrides, logging each change, and reports whether any changed.
// Callers hold mu.
func (e *Engine) applyMaintenanceLocked(dir string, files []maintFile, readErr error, now time.Time) bool {
	if readErr != nil {
		if msg := readErr.Error(); msg != e.adm.maintErr {
			e.adm.maintErr = msg
			e.log.Error("maintenance_dir: reading it failed; the servers in maintenance stay as they were until it can be read",
				"dir", dir, "err", readErr, "fix", "make the directory readable by the director's user")
		}
		return false
	}
	if e.adm.maintErr != "" {
		e.adm.maintErr = ""
		e.log.Info("maintenance_dir: readable again", "dir", dir)
	}
	var servers []serverID
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		for _, rs := range vs.RealServers {
			servers = append(servers, serverID{vs.Name, rs.Address})
		}
	}
	next, unmatched := maintenanceOverrides(files, servers)
	seen := map[string]bool{}
	for _, f := range unmatched {
		seen[f.path] = true
		if !e.adm.warned[f.path] {
			e.adm.warned[f.path] = true
			e.log.Warn("maintenance_dir: file matches no real server of the running config; ignored", "file", f.path,
				"fix", "name it <ip>, <ip>_<port> or <ip>:<port>, optionally in a subdirectory named after the virtual server")
		}
	}
	for p := range e.adm.warned {
		if !seen[p] {
			delete(e.adm.warned, p)
		}
	}
	changed := false
	for id, o := range next {
		prev, had := e.adm.maint[id]
		if had && prev.Kind == o.Kind && prev.Reason == o.Reason && prev.By == o.By {
			continue
		}
		changed = true
		e.log.Warn("real server override set", "virtual_server", id.vs, "real_server", id.rs.String(),
			"kind", o.Kind, "reason", o.Reason, "source", SourceMaintenance, "file", o.By)
	}
	for id, prev := range e.adm.maint {
		if _, still := next[id]; !still {
			changed = true
			e.log.Warn("real server override ended; its health decides again", "virtual_server", id.vs,
				"real_server", id.rs.String(), "source", SourceMaintenance, "file", prev.By, "ended", prev.Kind)
		}
	}
	if !changed {
		return false
	}
	e.adm.maint = next
	for _, id := range servers {
		e.adm.metrics.Override(id.vs, id.rs.String(), e.overrideKindLocked(id))
	}
	return true
}
