package engine

import (
	"net/netip"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/announce"
	"github.com/lvsdirector/director/policy/selfhealth"
)

// Announcer takes the routes the director should announce now: the BGP
// speaker, the kernel route table (package announcer). The loop hands it
// the full set after every reconcile and every AdminPoll, which doubles as
// a heartbeat: an announcer that hears nothing for a while withdraws
// everything (the loop is stuck). Announce must return at once: it keeps
// the set and acts on it elsewhere, so a router that does not answer
// never holds up checks or reconciles.
type Announcer interface {
	Announce(routes []announce.Route)
}

// announcing is the loop's part in announcing VIPs.
type announcing struct {
	state announce.State
	// vips is the last decision of each VIP and when it last changed, for Status.
	vips    []VIPStatus
	changed map[netip.Prefix]time.Time
	metrics *metrics.Announce
}

// VIPStatus is one announced (or announceable) VIP, for Status.
type VIPStatus struct {
	Prefix         netip.Prefix
	Announced      bool
	Cause          string
	Reason         string
	Since          time.Time // last announced or withdrawn; zero: not since start
	VirtualServers []string
}

// announceVIPs decides which VIPs to announce and hands them to the
// announcer, logging and counting each change. The loop calls it after
// every reconcile and every AdminPoll.
func (e *Engine) announceVIPs(now time.Time) {
	if !e.cfg.Announcing() {
		return
	}
	a := &e.ann
	if a.changed == nil {
		a.changed = map[netip.Prefix]time.Time{}
		a.metrics = metrics.NewAnnounce(e.opts.Metrics)
	}
	in := announce.Input{Now: now, HoldDown: e.cfg.Announce.HoldDown}
	// The director's own health, as for VRRP; a stuck loop cannot see
	// itself: the announcers notice the hand-overs stopping.
	if v := selfhealth.Evaluate(e.SelfHealth(now), selfhealth.Limits{UnreconciledAfter: e.cfg.Announce.UnhealthyAfter}); !v.Healthy {
		in.Unhealthy = v.Reason
	}
	vips := e.cfg.VIPs()
	services := e.announcedServices()
	for _, v := range vips {
		av := announce.VIP{Prefix: v.Prefix(), Rule: v.Announce.Rule}
		for _, name := range v.VirtualServers {
			av.Services = append(av.Services, services[name])
		}
		in.VIPs = append(in.VIPs, av)
	}
	decisions, events := a.state.Decide(in)
	for _, ev := range events {
		a.changed[ev.Prefix] = now
		vip := ev.Prefix.Addr().String()
		a.metrics.VIP(vip, ev.Announce, string(ev.Cause), now)
		if ev.Announce {
			e.log.Info("VIP announced", "vip", vip, "cause", ev.Cause, "reason", ev.Reason)
		} else {
			e.log.Warn("VIP withdrawn", "vip", vip, "cause", ev.Cause, "reason", ev.Reason)
		}
		if ev.Cause == announce.CauseRemoved {
			a.metrics.ForgetVIP(vip)
			delete(a.changed, ev.Prefix)
		}
	}
	routes := make([]announce.Route, 0, len(decisions))
	status := make([]VIPStatus, len(decisions))
	for i, d := range decisions {
		status[i] = VIPStatus{Prefix: d.Prefix, Announced: d.Announce, Cause: string(d.Cause), Reason: d.Reason,
			Since: a.changed[d.Prefix], VirtualServers: vips[i].VirtualServers}
		if d.Announce {
			routes = append(routes, routeOf(vips[i]))
		}
	}
	if len(events) > 0 {
		e.changed(true)
	}
	a.vips = status
	if e.opts.Announcer != nil {
		e.opts.Announcer.Announce(routes)
	}
}

// announcedServices is the pool of each announcing virtual server, by name.
func (e *Engine) announcedServices() map[string]announce.Service {
	out := map[string]announce.Service{}
	view := func(id config.ServerID) desired.View { return e.view(id, e.stateOf(id)) }
	for i := range e.cfg.VirtualServers {
		vs := &e.cfg.VirtualServers[i]
		if !vs.Announce.Enabled {
			continue
		}
		s := announce.Service{Name: vs.Name, Healthy: desired.HealthyWeight(vs, view), Above: vs.Announce.Above, Below: vs.Announce.Below}
		for _, rs := range vs.RealServers {
			s.Total += uint64(rs.Weight)
			if e.stateOf(config.ServerID{VirtualServer: vs.Name, RealServer: rs.Address}) == health.Unknown {
				s.Unknown = true
			}
		}
		out[vs.Name] = s
	}
	return out
}

// routeOf is the route announcing v.
func routeOf(v config.VIP) announce.Route {
	r := announce.Route{Prefix: v.Prefix(), Communities: v.Announce.Communities}
	if v.Announce.MED != nil {
		r.HasMED, r.MED = true, *v.Announce.MED
	}
	if v.Announce.LocalPref != nil {
		r.HasLocalPref, r.LocalPref = true, *v.Announce.LocalPref
	}
	return r
}
