package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/lvsdirector/director/announcer"
	"github.com/lvsdirector/director/api"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/metrics"
)

// announcers are the BGP speaker and the route table, each in a Runner of
// its own, outside the engine loop.
type announcers struct {
	log     *slog.Logger
	runners announcer.Runners
	bgp     *announcer.BGP // nil without [bgp]
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once // withdraw
}

// startAnnouncers starts what cfg asks for; with neither [bgp] nor
// [route_table] it starts nothing. With dryRun the announcers only log:
// a director whose table is in memory must not draw traffic.
func startAnnouncers(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, dryRun bool) (*announcers, error) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &announcers{log: log, cancel: cancel}
	opts := announcer.Options{Logger: log, Metrics: metrics.NewAnnounce(m), StuckAfter: cfg.Announce.UnhealthyAfter}
	if dryRun {
		for name, on := range map[string]bool{"bgp": cfg.BGP != nil, "route_table": cfg.RouteTable != nil} {
			if on {
				a.runners = append(a.runners, announcer.NewRunner(announcer.DryRun{Of: name, Log: log}, opts))
				log.Warn("dry-run: announcing VIPs is only logged; no BGP session, no route", "announcer", name)
			}
		}
		for _, r := range a.runners {
			a.wg.Go(func() { r.Run(ctx) })
		}
		return a, nil
	}
	if cfg.BGP != nil {
		b, err := announcer.StartBGP(ctx, *cfg.BGP, log, opts.Metrics)
		if err != nil {
			a.stop()
			return nil, err
		}
		a.bgp = b
		a.runners = append(a.runners, announcer.NewRunner(b, opts))
		log.Info("BGP speaker started", "asn", cfg.BGP.ASN, "router_id", cfg.BGP.RouterID, "peers", len(cfg.BGP.Peers), "listen_port", cfg.BGP.ListenPort)
	}
	if cfg.RouteTable != nil {
		rt, err := announcer.NewRouteTable(*cfg.RouteTable, nil)
		if err != nil {
			a.stop()
			return nil, err
		}
		a.runners = append(a.runners, announcer.NewRunner(rt, opts))
		log.Info("route-table mode", "table", cfg.RouteTable.Table, "device", cfg.RouteTable.Device, "proto", announcer.RouteProtocol)
	}
	for _, r := range a.runners {
		a.wg.Go(func() { r.Run(ctx) })
	}
	return a, nil
}

// engineAnnouncer is what the engine hands its routes to; nil when
// nothing announces.
func (a *announcers) engineAnnouncer() engine.Announcer {
	if len(a.runners) == 0 {
		return nil
	}
	return a.runners
}

// peers lists the BGP sessions for the status; nil without [bgp].
func (a *announcers) peers() func() []announcer.PeerStatus {
	if a.bgp == nil {
		return nil
	}
	return a.bgp.Peers
}

// withdraw withdraws every VIP, then waits grace for the routers to move
// traffic away: the first thing a stopping director does.
// Only the first call does it; later ones wait for it.
func (a *announcers) withdraw(reason string, grace time.Duration) {
	if len(a.runners) == 0 {
		return
	}
	a.once.Do(func() { a.withdrawNow(reason, grace) })
}

func (a *announcers) withdrawNow(reason string, grace time.Duration) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := a.runners.WithdrawAll(ctx, reason)
	cancel()
	if err != nil {
		a.log.Error("withdrawing every VIP did not finish in 5s; stopping anyway", "err", err)
	}
	a.log.Info("every VIP withdrawn; waiting for the routers to move traffic away", "took", time.Since(start).Round(time.Millisecond), "withdraw_grace", grace)
	time.Sleep(grace)
}

// stop withdraws anything left, ends the runners and stops the speaker.
func (a *announcers) stop() {
	a.cancel()
	a.wg.Wait()
	if a.bgp != nil {
		a.bgp.Stop()
	}
}

// warnAnnounceReload says that [bgp] and [route_table] changes wait for a restart.
func warnAnnounceReload(log *slog.Logger, old, next *config.Config) {
	if !reflect.DeepEqual(old.BGP, next.BGP) || !reflect.DeepEqual(old.RouteTable, next.RouteTable) {
		log.Warn("[bgp] or [route_table] changed; it takes effect on restart (announce settings of virtual servers take effect now)")
	}
}

// printAnnounce lists the VIPs with the last decision and the BGP
// sessions, for `director status`.
func printAnnounce(w io.Writer, a *api.AnnounceV1, now time.Time) {
	if a == nil {
		return
	}
	fmt.Fprintln(w, "\nAnnounced VIPs:")
	for _, v := range a.VIPs {
		state := "WITHDRAWN"
		if v.Announced {
			state = "announced"
		}
		fmt.Fprintf(w, "  %-20s %-9s %s  %s\n", v.Prefix, state, sinceOpt(v.Since, now), v.Reason)
	}
	for _, p := range a.Peers {
		bfd := ""
		if p.BFD {
			bfd = " bfd"
		}
		fmt.Fprintf(w, "  bgp peer %s AS%d %s%s %s\n", p.Address, p.ASN, p.State, bfd, sinceOpt(p.Since, now))
	}
}

func sinceOpt(t *time.Time, now time.Time) string {
	if t == nil {
		return "since start"
	}
	return "for " + since(*t, now)
}
