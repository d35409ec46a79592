package announcer

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/lvsdirector/director/policy/announce"
)

// DryRun stands in for a backend under -dry-run: it logs what it would
// announce and withdraw and touches neither routers nor routes, as a dry
// run leaves the kernel's IPVS table alone. Announcing VIPs from a
// director whose table is only in memory would draw traffic it drops.
type DryRun struct {
	Of  string // the backend it stands in for: "bgp", "route_table"
	Log *slog.Logger
}

// Name is the stood-in backend's name.
func (d DryRun) Name() string { return d.Of }

// Add logs the announcement.
func (d DryRun) Add(_ context.Context, r announce.Route) error {
	d.Log.Info("dry-run: would announce (nothing sent)", "announcer", d.Of, "prefix", r.Prefix)
	return nil
}

// Delete logs the withdrawal.
func (d DryRun) Delete(_ context.Context, p netip.Prefix) error {
	d.Log.Info("dry-run: would withdraw (nothing sent)", "announcer", d.Of, "prefix", p)
	return nil
}
