package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/lvsdirector/director/internal/apitoken"
	"github.com/lvsdirector/director/internal/safefile"
)

// Admin overrides, flap damping, the panic guard and quorum: the settings
// that decide when the director keeps a server out (or in) against what
// its checks say. See README, "Admin overrides" and "Damping and safety".

// DefaultStateFile is where overrides set through the API are kept across
// restarts when [director] state_file is not set.
const DefaultStateFile = "/var/lib/director/state.json"

// MinTokenLength is the shortest API token accepted: shorter ones can be
// guessed.
const MinTokenLength = apitoken.MinLength

// Damping is flap damping, BGP style (RFC 2439): every time a real server
// goes from up to down it gains Penalty; the penalty halves every
// HalfLife; once it is above Suppress the server is held out even while
// its checks pass, until it has decayed below Reuse. The penalty never
// exceeds what takes MaxSuppress to decay to Reuse.
type Damping struct {
	Enabled     bool          // default false
	Penalty     float64       // default 1000
	Suppress    float64       // default 2000
	Reuse       float64       // default 750
	HalfLife    time.Duration // default 5m
	MaxSuppress time.Duration // default 30m
}

// Damping defaults.
const (
	DefaultFlapPenalty     = 1000
	DefaultFlapSuppress    = 2000
	DefaultFlapReuse       = 750
	DefaultFlapHalfLife    = 5 * time.Minute
	DefaultFlapMaxSuppress = 30 * time.Minute
)

// DefaultQuorum is the healthy weight below which the fallback takes over
// when quorum is not set: 1, so the fallback serves only when no real
// server with a weight above 0 is up.
const DefaultQuorum = 1

func defaultDamping() Damping {
	return Damping{Penalty: DefaultFlapPenalty, Suppress: DefaultFlapSuppress, Reuse: DefaultFlapReuse,
		HalfLife: DefaultFlapHalfLife, MaxSuppress: DefaultFlapMaxSuppress}
}

// path resolves a path setting against the config file's directory.
func (l *loader) path(t table, key string) (string, node, bool) {
	s, n, ok := t.str(key)
	if !ok {
		return "", n, false
	}
	if s == "" {
		l.errorf(n, "must not be empty; leave %s out to turn it off", key)
		return "", n, false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(l.dir, s)
	}
	return filepath.Clean(s), n, true
}

// admin reads the [director] keys of this file.
func (l *loader) admin(t table, d *Director) {
	if p, n, ok := l.path(t, "maintenance_dir"); ok {
		d.MaintenanceDir = p
		if fi, err := os.Stat(p); err != nil {
			l.warnf(n, "%s: %v; no server is in maintenance until it exists", p, unwrapPath(err))
		} else if !fi.IsDir() {
			l.errorf(n, "%s is not a directory", p)
		}
	}
	if p, n, ok := l.path(t, "api_token_file"); ok {
		d.APITokenFile = p
		tok, err := apitoken.Read(p)
		switch {
		case errors.Is(err, apitoken.ErrNoToken):
			// Emptying or removing the file is how an operator revokes
			// the token: it turns the write API off, and must not make a
			// reload fail (which would keep the old token).
			l.warnf(n, "%v", err)
		case err != nil:
			l.errorf(n, "%v", err)
		default:
			d.APIToken = tok
			if msg := apitoken.Exposure(p); msg != "" {
				l.warnf(n, "%s", msg)
			}
		}
	}
	if p, n, ok := l.path(t, "state_file"); ok {
		if msg := checkStateFile(p); msg != "" {
			l.errorf(n, "%s", msg)
		} else {
			d.StateFile = p
		}
	}
	if v, ok := l.share(t, "panic_threshold"); ok {
		d.PanicThreshold = v
	}
	if v, _, ok := t.boolean("flap_damping"); ok {
		d.Damping.Enabled = v
	}
	dm := &d.Damping
	for _, f := range []struct {
		key string
		dst *float64
	}{{"flap_penalty", &dm.Penalty}, {"flap_suppress", &dm.Suppress}, {"flap_reuse", &dm.Reuse}} {
		if v, n, ok := t.number(f.key); ok {
			if v <= 0 {
				l.errorf(n, "must be greater than 0, not %v", v)
			} else {
				*f.dst = v
			}
		}
	}
	if v, _, ok := t.positive("flap_half_life"); ok {
		dm.HalfLife = v
	}
	if v, _, ok := t.positive("flap_max_suppress"); ok {
		dm.MaxSuppress = v
	}
	if dm.Reuse >= dm.Suppress {
		l.errorf(t.n.child("flap_reuse"), "%v must be below flap_suppress (%v): a server is held out above flap_suppress and let back in below flap_reuse", dm.Reuse, dm.Suppress)
	}
	if dm.Enabled && dm.Penalty*2 <= dm.Reuse {
		l.warnf(t.n.child("flap_penalty"), "%v is small against flap_reuse (%v); it takes many flaps in quick succession to be suppressed", dm.Penalty, dm.Reuse)
	}
}

// checkStateFile returns why p cannot be the state file, or "". The state
// file is replaced whole on every change, and a file that does not parse is
// moved aside at start: neither may ever happen to a directory (with the
// operator's files in it) or a device, so anything but a regular file, or
// a path that does not exist yet, is refused here, before the daemon
// touches it.
func checkStateFile(p string) string {
	var nre *safefile.NotRegularError
	if !errors.As(safefile.CheckRegular(p), &nre) {
		return ""
	}
	if nre.Kind == "directory" {
		return fmt.Sprintf("%s; state_file names the file itself, such as %q", nre, filepath.Join(p, "state.json"))
	}
	return fmt.Sprintf("%s; state_file must name a regular file (or one that does not exist yet), which the director replaces on every change", nre)
}

// vsAdmin reads a virtual server's quorum, hysteresis and panic_threshold.
func (l *loader) vsAdmin(t table, d Director, vs *VirtualServer) {
	vs.Quorum = DefaultQuorum
	vs.PanicThreshold = d.PanicThreshold
	if v, _, ok := t.intRange("quorum", 1, 1<<32-1, "quorum is a sum of weights, 1-4294967295"); ok {
		vs.Quorum = uint64(v)
	}
	if v, _, ok := t.intRange("hysteresis", 0, 1<<32-1, "hysteresis is a weight, 0-4294967295"); ok {
		vs.Hysteresis = uint64(v)
	}
	if vs.Hysteresis >= vs.Quorum && t.has("hysteresis") {
		l.errorf(t.n.child("hysteresis"), "%d must be below quorum (%d): quorum is lost below quorum - hysteresis and regained at quorum + hysteresis",
			vs.Hysteresis, vs.Quorum)
	}
	if v, ok := l.share(t, "panic_threshold"); ok {
		vs.PanicThreshold = v
	}
}

// quorumWarnings warns about a quorum the real servers cannot reach.
func (l *loader) quorumWarnings(t table, vs *VirtualServer) {
	if !t.has("quorum") {
		return
	}
	var total uint64
	for _, rs := range vs.RealServers {
		total += uint64(rs.Weight)
	}
	if vs.Quorum+vs.Hysteresis > total {
		l.warnf(t.n.child("quorum"), "%d (+ hysteresis %d) is more than the weights of all real servers together (%d): quorum can never be met",
			vs.Quorum, vs.Hysteresis, total)
	}
	if !vs.Fallback.IsValid() {
		l.warnf(t.n.child("quorum"), "has no effect on the table without a fallback; losing quorum is only logged, counted and notified")
	}
}

// share reads a fraction: 0 (off) or above 0 and below 1.
func (l *loader) share(t table, key string) (float64, bool) {
	v, n, ok := t.number(key)
	if !ok {
		return 0, false
	}
	if v < 0 || v >= 1 {
		l.errorf(n, "%v is out of range; write a share of the servers such as 0.5 (more than half), or 0 to turn it off", v)
		return 0, false
	}
	return v, true
}

// number reads a float or an integer.
func (t table) number(key string) (float64, node, bool) {
	v, n, ok := t.get(key)
	if !ok {
		return 0, n, false
	}
	switch v := v.(type) {
	case float64:
		return v, n, true
	case int64:
		return float64(v), n, true
	}
	t.l.errorf(n, "must be a number, not %s", describe(v))
	return 0, n, false
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
