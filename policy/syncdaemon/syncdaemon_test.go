package syncdaemon

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/ipvs"
)

func TestWant(t *testing.T) {
	follow := config.VRRPSync{Mode: config.SyncFollowRole, Interface: "eth0", SyncID: 7, Port: 9000}
	both := config.VRRPSync{Mode: config.SyncBothAlways, Interface: "eth1", SyncID: 1, PeerSyncID: 2}
	for _, tt := range []struct {
		name   string
		s      config.VRRPSync
		master bool
		want   []ipvs.SyncDaemon
	}{
		{"follow-role, master", follow, true, []ipvs.SyncDaemon{{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 7, Port: 9000}}},
		{"follow-role, not master", follow, false, []ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth0", SyncID: 7, Port: 9000}}},
		{"both-always, master", both, true, []ipvs.SyncDaemon{
			{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 1}, {State: ipvs.SyncBackup, Interface: "eth1", SyncID: 2}}},
		{"both-always, not master: the same", both, false, []ipvs.SyncDaemon{
			{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 1}, {State: ipvs.SyncBackup, Interface: "eth1", SyncID: 2}}},
		{"off", config.VRRPSync{Mode: config.SyncOff, Interface: "eth0"}, true, nil},
	} {
		if got := Want(tt.s, tt.master); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestPlan(t *testing.T) {
	master := ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 7}
	backup := ipvs.SyncDaemon{State: ipvs.SyncBackup, Interface: "eth0", SyncID: 7}
	// As the kernel reports them: defaults filled in.
	filled := func(d ipvs.SyncDaemon) ipvs.SyncDaemon {
		d.Group, d.Port, d.TTL, d.MaxLen = ipvs.DefaultSyncGroup, ipvs.DefaultSyncPort, ipvs.DefaultSyncTTL, 1472
		return d
	}
	otherID := filled(master)
	otherID.SyncID = 8
	withPort := master
	withPort.Port = 9000
	for _, tt := range []struct {
		name          string
		want, running []ipvs.SyncDaemon
		changes       Changes
	}{
		{"nothing runs", []ipvs.SyncDaemon{master}, nil, Changes{Start: []ipvs.SyncDaemon{master}}},
		{"already so, kernel defaults aside", []ipvs.SyncDaemon{master, backup}, []ipvs.SyncDaemon{filled(master), filled(backup)}, Changes{}},
		{"backup to master", []ipvs.SyncDaemon{master}, []ipvs.SyncDaemon{filled(backup)},
			Changes{Stop: []ipvs.SyncState{ipvs.SyncBackup}, Start: []ipvs.SyncDaemon{master}}},
		{"another sync id: restart", []ipvs.SyncDaemon{master}, []ipvs.SyncDaemon{otherID},
			Changes{Stop: []ipvs.SyncState{ipvs.SyncMaster}, Start: []ipvs.SyncDaemon{master}}},
		{"a port asked for and not the kernel's", []ipvs.SyncDaemon{withPort}, []ipvs.SyncDaemon{filled(master)},
			Changes{Stop: []ipvs.SyncState{ipvs.SyncMaster}, Start: []ipvs.SyncDaemon{withPort}}},
		{"mode off stops both", nil, []ipvs.SyncDaemon{filled(master), filled(backup)},
			Changes{Stop: []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup}}},
	} {
		got := Plan(tt.want, tt.running)
		if !reflect.DeepEqual(got, tt.changes) || got.Empty() != tt.changes.Empty() {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.changes)
		}
	}
	group := master
	group.Group = netip.MustParseAddr("239.0.0.1")
	if Matches(filled(master), group) {
		t.Error("a daemon on the default group matches one that asks for 239.0.0.1")
	}
}
