// Package syncdaemon decides which of the kernel's IPVS connection sync
// daemons a director of an active-backup pair runs, and what to change to
// get there from what runs now. It is pure.
//
// Modes (config.VRRPSync):
//   - follow-role: a MASTER director runs the master daemon (it sends the
//     entries of the connections it carries), any other one the backup
//     daemon (it installs what the master sends), both with sync_id. A
//     director that comes back as MASTER has no entries for the
//     connections opened during its absence.
//   - both-always: every director runs both daemons all the time, its
//     master with sync_id and its backup with peer_sync_id, so entries
//     flow both ways and fail-back keeps the connections opened on the
//     peer too (the fix keepalived's maintainers give for keepalived
//     #1076).
//   - off: none.
package syncdaemon

import (
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
)

// Want is the daemons to run in mode, for a director that is MASTER of
// at least one VRRP instance (master) or not.
func Want(s config.VRRPSync, master bool) []ipvs.SyncDaemon {
	d := func(state ipvs.SyncState, id uint8) ipvs.SyncDaemon {
		return ipvs.SyncDaemon{State: state, Interface: s.Interface, SyncID: id,
			Group: s.Group, Port: s.Port, TTL: s.TTL, MaxLen: s.MaxLen}
	}
	switch s.Mode {
	case config.SyncFollowRole:
		if master {
			return []ipvs.SyncDaemon{d(ipvs.SyncMaster, s.SyncID)}
		}
		return []ipvs.SyncDaemon{d(ipvs.SyncBackup, s.SyncID)}
	case config.SyncBothAlways:
		return []ipvs.SyncDaemon{d(ipvs.SyncMaster, s.SyncID), d(ipvs.SyncBackup, s.PeerSyncID)}
	}
	return nil
}

// Changes are the commands that take the kernel from what runs to what
// is wanted: stops first, so a daemon whose settings change can start again.
type Changes struct {
	Stop  []ipvs.SyncState
	Start []ipvs.SyncDaemon
}

// Empty reports whether nothing needs to change.
func (c Changes) Empty() bool { return len(c.Stop) == 0 && len(c.Start) == 0 }

// Plan compares what runs (as the kernel reports it, with its defaults
// filled in) with what is wanted.
func Plan(want, running []ipvs.SyncDaemon) Changes {
	var c Changes
	for _, state := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		w, wok := find(want, state)
		r, rok := find(running, state)
		switch {
		case wok && rok && Matches(r, w):
		case wok && rok:
			c.Stop = append(c.Stop, state)
			c.Start = append(c.Start, w)
		case wok:
			c.Start = append(c.Start, w)
		case rok:
			c.Stop = append(c.Stop, state)
		}
	}
	return c
}

// Matches reports whether a running daemon has what want asks for; zero
// fields in want are the kernel's choice.
func Matches(running, want ipvs.SyncDaemon) bool {
	return running.State == want.State && running.Interface == want.Interface && running.SyncID == want.SyncID &&
		(!want.Group.IsValid() || running.Group == want.Group) &&
		(want.Port == 0 || running.Port == want.Port) &&
		(want.TTL == 0 || running.TTL == want.TTL) &&
		(want.MaxLen == 0 || running.MaxLen == want.MaxLen)
}

func find(ds []ipvs.SyncDaemon, s ipvs.SyncState) (ipvs.SyncDaemon, bool) {
	for _, d := range ds {
		if d.State == s {
			return d, true
		}
	}
	return ipvs.SyncDaemon{}, false
}
