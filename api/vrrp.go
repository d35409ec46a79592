package api

import (
	"time"

	"github.com/lvsdirector/director/vrrp"
)

// VRRPV1 is the director's part in an active-backup pair under
// keepalived ([vrrp]); absent from the status without it.
type VRRPV1 struct {
	// Role is the director's: "MASTER" while any instance it follows is,
	// else "BACKUP", "FAULT", "STOP", or "UNKNOWN" before keepalived said.
	Role      string           `json:"role"`
	Instances []VRRPInstanceV1 `json:"instances"`
	Health    DirectorHealthV1 `json:"health"`
	TrackFile string           `json:"track_file,omitempty"`
	// TrackValue is the value last written; null before the first write.
	TrackValue      *int           `json:"track_value"`
	TrackError      string         `json:"track_error,omitempty"`
	NotifyFIFO      string         `json:"notify_fifo"`
	NotifyFIFOOpen  bool           `json:"notify_fifo_open"`
	NotifyFIFOError string         `json:"notify_fifo_error,omitempty"`
	SyncMode        string         `json:"sync_mode"`    // "follow-role" | "both-always" | "off"
	SyncDaemons     []SyncDaemonV1 `json:"sync_daemons"` // as last read back from the kernel
	SyncError       string         `json:"sync_error,omitempty"`
	// LowerPriorityMaster is when an instance, as MASTER, last heard
	// another MASTER (two masters: a split brain ending); null: never.
	LowerPriorityMaster *time.Time `json:"lower_priority_master"`
}

// VRRPInstanceV1 is one VRRP instance as keepalived last reported it.
type VRRPInstanceV1 struct {
	Name     string     `json:"name"`
	State    string     `json:"state"` // "MASTER" | "BACKUP" | "FAULT" | "STOP" | "UNKNOWN"
	Priority int        `json:"priority"`
	Since    *time.Time `json:"since"` // null before keepalived's first report
}

// DirectorHealthV1 is whether the director counts itself healthy
// (policy/selfhealth): what the track file tells keepalived.
type DirectorHealthV1 struct {
	Healthy bool      `json:"healthy"`
	Cause   string    `json:"cause"` // "healthy" | "starting" | "loop_stuck" | "not_reconciled" | "pools_low"
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
}

// SyncDaemonV1 is one running kernel sync daemon.
type SyncDaemonV1 struct {
	State     string `json:"state"` // "master" | "backup"
	Interface string `json:"interface"`
	SyncID    uint8  `json:"sync_id"`
	Group     string `json:"group,omitempty"`
	Port      uint16 `json:"port,omitempty"`
	TTL       uint8  `json:"ttl,omitempty"`
	MaxLen    uint16 `json:"maxlen,omitempty"`
}

func vrrpV1(st vrrp.Status) *VRRPV1 {
	out := &VRRPV1{
		Role: st.Role.String(), Instances: []VRRPInstanceV1{}, TrackFile: st.TrackFile, TrackError: st.TrackError,
		NotifyFIFO: st.NotifyFIFO, NotifyFIFOOpen: st.FIFOOpen, NotifyFIFOError: st.FIFOError,
		SyncMode: st.SyncMode, SyncDaemons: []SyncDaemonV1{}, SyncError: st.SyncError,
		Health: DirectorHealthV1{Healthy: st.Health.Healthy, Cause: string(st.Health.Cause), Reason: st.Health.Reason,
			Since: st.HealthSince.UTC()},
		LowerPriorityMaster: optTime(st.LowerPriorityMaster),
	}
	if st.TrackWritten {
		v := st.TrackValue
		out.TrackValue = &v
	}
	for _, in := range st.Instances {
		out.Instances = append(out.Instances, VRRPInstanceV1{Name: in.Name, State: in.State.String(), Priority: in.Priority, Since: optTime(in.Since)})
	}
	for _, d := range st.SyncDaemons {
		s := SyncDaemonV1{State: d.State.String(), Interface: d.Interface, SyncID: d.SyncID, Port: d.Port, TTL: d.TTL, MaxLen: d.MaxLen}
		if d.Group.IsValid() {
			s.Group = d.Group.String()
		}
		out.SyncDaemons = append(out.SyncDaemons, s)
	}
	return out
}
