package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The state file keeps the overrides set through the API across restarts
// (maintenance files need no keeping: they are their own record). It is
// small JSON, written whole on every change: to a temporary file in the
// same directory, synced, then renamed over the old one, and the directory
// synced, so a crash leaves either the old file or the new one.

// stateVersion is the state file's format version.
const stateVersion = 1

type stateFile struct {
	Version   int             `json:"version"`
	Overrides []stateOverride `json:"overrides"`
}

type stateOverride struct {
	VirtualServer string     `json:"virtual_server"`
	RealServer    string     `json:"real_server"`
	Kind          string     `json:"kind"`
	Reason        string     `json:"reason"`
	By            string     `json:"by,omitempty"`
	Since         time.Time  `json:"since"`
	Expires       *time.Time `json:"expires,omitempty"`
}

// encodeState renders the API overrides, sorted, as the state file.
func encodeState(api map[serverID]Override) ([]byte, error) {
	st := stateFile{Version: stateVersion, Overrides: []stateOverride{}}
	for id, o := range api {
		so := stateOverride{VirtualServer: id.vs, RealServer: id.rs.String(), Kind: o.Kind, Reason: o.Reason, By: o.By, Since: o.Since.UTC()}
		if !o.Expires.IsZero() {
			t := o.Expires.UTC()
			so.Expires = &t
		}
		st.Overrides = append(st.Overrides, so)
	}
	slices.SortFunc(st.Overrides, func(a, b stateOverride) int {
		if a.VirtualServer != b.VirtualServer {
			if a.VirtualServer < b.VirtualServer {
				return -1
			}
			return 1
		}
		pa, _ := netip.ParseAddrPort(a.RealServer)
		pb, _ := netip.ParseAddrPort(b.RealServer)
		return pa.Compare(pb)
	})
	data, err := json.MarshalIndent(st, "", "  ")
	return append(data, '\n'), err
}

// decodeState parses a state file.
func decodeState(data []byte) (map[serverID]Override, error) {
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("version %d, this director reads version %d", st.Version, stateVersion)
	}
	out := map[serverID]Override{}
	for i, so := range st.Overrides {
		rs, err := netip.ParseAddrPort(so.RealServer)
		if err != nil {
			return nil, fmt.Errorf("override %d: real_server %q: %v", i, so.RealServer, err)
		}
		o := Override{Kind: so.Kind, Reason: so.Reason, Source: SourceAPI, By: so.By, Since: so.Since}
		if o.kind() == overrideNone {
			return nil, fmt.Errorf("override %d: unknown kind %q", i, so.Kind)
		}
		if so.Expires != nil {
			o.Expires = *so.Expires
		}
		out[serverID{so.VirtualServer, rs}] = o
	}
	return out, nil
}

// writeFileAtomic replaces path with data: temporary file, fsync, rename,
// fsync of the directory. The file is readable by its owner only.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some file systems refuse to sync a directory
		d.Close()
	}
	return nil
}

// saveStateLocked writes the API overrides to Options.StateFile (nothing
// when it is ""). Callers hold mu.
func (e *Engine) saveStateLocked() error {
	if e.opts.StateFile == "" {
		e.adm.dirty = false
		return nil
	}
	data, err := encodeState(e.adm.api)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(e.opts.StateFile, data); err != nil {
		return err
	}
	e.adm.dirty = false
	return nil
}

func (e *Engine) saveState() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.saveStateLocked()
}

// loadStateLocked reads the overrides kept by the last run, at start.
// A missing file is a first start. An unreadable or corrupt one is logged,
// moved aside (for the operator to look at) and the director starts
// without overrides: a director that refuses to start is worse than one
// that forgot a drain. Overrides of servers the config no longer has, and
// expired ones, are dropped. Callers hold mu.
func (e *Engine) loadStateLocked(now time.Time) {
	path := e.opts.StateFile
	if path == "" {
		return
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var api map[serverID]Override
	if err == nil {
		api, err = decodeState(data)
	}
	if err != nil {
		aside := path + ".corrupt"
		if os.Rename(path, aside) != nil {
			aside = "" // left in place; the next save replaces it
		}
		e.log.Error("the override state file is unreadable; starting without API overrides (servers drained or disabled through the API are back under their checks)",
			"path", path, "err", err, "moved_to", aside,
			"fix", "set the overrides again through the API; the old file shows what they were")
		return
	}
	for id, o := range api {
		if !o.Expires.IsZero() && !o.Expires.After(now) {
			delete(api, id)
			e.adm.dirty = true
			e.log.Info("override expired while the director was stopped", "virtual_server", id.vs, "real_server", id.rs.String(), "kind", o.Kind, "reason", o.Reason)
		}
	}
	e.adm.api = api
	for id, o := range api {
		e.log.Info("override restored from the state file", "virtual_server", id.vs, "real_server", id.rs.String(),
			"kind", o.Kind, "reason", o.Reason, "since", o.Since.UTC().Format(time.RFC3339))
	}
}
