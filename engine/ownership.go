package engine

import (
	"maps"
	"slices"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// Ownership across restarts. The director deletes only the services it
// manages, and the running config says which those are: a service dropped
// from the config is retired and deleted by the next reconcile. If the
// director stops before that (killed, restarted, a reload cut short), the
// next run's config no longer names the service and nothing would ever
// delete it. So the state file (statefile.go) also lists every service the
// director answers for, managed or retired: written before a start or a
// reload can create one in the kernel (a crash right after the create
// still finds it listed), and again once a retired one is deleted. At
// start, listed services that the config no longer declares and that the
// kernel still holds are retired: deleted by the first reconcile, after
// their connections drain.
//
// A dry run neither acts on the list nor changes it: its table is in
// memory, and with state_file set it shares the real director's file.

// ownership is the list of services the state file keeps.
type ownership struct {
	// keys is what the state file lists (normalized keys); nil leaves the
	// list out of the file.
	keys map[ipvs.ServiceKey]bool
	// saved reports whether the file holds keys.
	saved bool
	// loaded is the list the state file held at start; nil when it had
	// none (no file, a corrupt one, or one written by an older director).
	loaded map[ipvs.ServiceKey]bool
	// failing is set while writing the list fails: logged once.
	failing bool
}

// sortedKeys lists a set of keys in ServiceKey.Compare order.
func sortedKeys(set map[ipvs.ServiceKey]bool) []ipvs.ServiceKey {
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, ipvs.ServiceKey.Compare)
	return out
}

// recordOwnedLocked brings the state file's list to the services the
// director answers for (managed and retired) plus extra (those a reload is
// about to create), writing the file when they differ. A failed write is
// logged once and retried at the next call; it holds nothing up. Callers
// hold mu.
func (e *Engine) recordOwnedLocked(extra ...ipvs.ServiceKey) {
	if e.opts.StateFile == "" || e.opts.DryRun {
		return
	}
	want := make(map[ipvs.ServiceKey]bool, len(e.managed)+len(e.retired)+len(extra))
	for k := range e.managed {
		want[k.Normalize()] = true
	}
	for k := range e.retired {
		want[k.Normalize()] = true
	}
	for _, k := range extra {
		want[k.Normalize()] = true
	}
	if e.own.saved && maps.Equal(want, e.own.keys) {
		return
	}
	e.own.keys = want
	if err := e.saveStateLocked(); err != nil {
		e.own.saved = false
		if !e.own.failing {
			e.own.failing = true
			e.log.Error("writing the state file failed; the services this director manages are not recorded, so one dropped from the config could stay in the kernel after a restart; retried at each reconcile",
				"path", e.opts.StateFile, "err", err)
		}
		return
	}
	if e.own.failing {
		e.own.failing = false
		e.log.Info("state file written again; the services this director manages are recorded", "path", e.opts.StateFile)
	}
}

// retireRecordedLocked, at start, after adoptConfig, retires the services
// the last run managed that the config no longer declares, so that the
// first reconcile deletes them; real servers with connections drain
// first, as when a reload drops a virtual server. Callers hold mu.
func (e *Engine) retireRecordedLocked(now time.Time) {
	if e.opts.DryRun {
		e.own.keys = e.own.loaded // kept as it was when overrides are saved
		return
	}
	managed := map[ipvs.ServiceKey]bool{}
	for k := range e.managed {
		managed[k.Normalize()] = true
	}
	kernel := map[ipvs.ServiceKey]*ipvs.ServiceState{}
	for i := range e.actual {
		kernel[e.actual[i].Key.Normalize()] = &e.actual[i]
	}
	for _, k := range sortedKeys(e.own.loaded) {
		svc := kernel[k]
		if managed[k] || svc == nil {
			continue // still configured, or already gone
		}
		e.retired[k] = true
		draining := e.drainRetiredLocked(svc, now)
		e.log.Warn("deleting a virtual service this director no longer manages", "service", k.String(),
			"real_servers", len(svc.Destinations), "draining", draining,
			"reason", "managed by this director before the restart; no longer in the config")
	}
}

// drainRetiredLocked drains the destinations with connections of a
// service retired at start, with [director] drain_timeout (UDP services
// delete at once, as they do by default), and returns how many. Its
// virtual server's name is unknown: drains show the service key instead.
// Callers hold mu.
func (e *Engine) drainRetiredLocked(svc *ipvs.ServiceState, now time.Time) int {
	timeout := e.cfg.Director.DrainTimeout
	if svc.Key.Protocol == ipvs.UDP || timeout <= 0 {
		return 0
	}
	n := 0
	for _, d := range svc.Destinations {
		if connections(d) == 0 {
			continue
		}
		n++
		e.prod.drains[normKey(svc.Key, d.Address)] = &drain{
			id: serverID{svc.Key.String(), d.Address}, service: svc.Service, since: now, timeout: timeout,
			dest: ipvs.Destination{Address: d.Address, Weight: 0, Forwarding: d.Forwarding},
		}
		e.log.Info("real server draining: weight 0 until its connections end", "service", svc.Key.String(),
			"real_server", d.Address.String(), "connections", connections(d), "drain_timeout", timeout,
			"reason", "its virtual service left the config while the director was stopped")
	}
	return n
}

// recordFlushed empties the state file's list once on_shutdown = flush has
// deleted every service the director answered for.
func (e *Engine) recordFlushed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.opts.StateFile == "" || e.opts.DryRun {
		return
	}
	e.own.keys = map[ipvs.ServiceKey]bool{}
	if err := e.saveStateLocked(); err != nil {
		e.own.saved = false
		e.log.Error("on_shutdown = flush: writing the state file failed; the next start deletes the services it lists if they are back in the kernel and not in the config",
			"path", e.opts.StateFile, "err", err)
	}
}
