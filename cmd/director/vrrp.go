package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/vrrp"
)

// pair is the director's part in an active-backup pair ([vrrp]); nil
// without it, and every method works on nil.
type pair struct {
	log  *slog.Logger
	ctl  *vrrp.Controller
	sync *ipvs.SyncNetlink // nil with -dry-run or without [vrrp.sync]
	cfg  *config.VRRP
}

// newVRRP builds the controller; nothing runs until start. With -dry-run
// the sync daemon is in memory and the FIFO and track file in the
// temporary directory.
func newVRRP(log *slog.Logger, m *metrics.Metrics, cfg *config.Config, eng *engine.Engine, dryRun bool, onNotice func(vrrp.Notice)) (*pair, error) {
	v := cfg.VRRP
	if v == nil {
		return nil, nil
	}
	if dryRun {
		// keepalived may be reading the real files of a director that
		// runs: a trial run must neither change nor remove its health.
		dry := *v
		dry.NotifyFIFO = filepath.Join(os.TempDir(), "director-dry-run-keepalived.fifo")
		if v.TrackFile != "" {
			dry.TrackFile = filepath.Join(os.TempDir(), "director-dry-run-vrrp-track")
		}
		log.Info("dry-run: the notify FIFO and the track file are in the temporary directory, not where [vrrp] says",
			"notify_fifo", dry.NotifyFIFO, "track_file", dry.TrackFile)
		v = &dry
	}
	p := &pair{log: log, cfg: v}
	var sc ipvs.SyncControl
	switch {
	case v.Sync.Mode == config.SyncOff:
	case dryRun:
		sc = ipvs.NewMemorySync()
	default:
		s, err := ipvs.NewSyncNetlink()
		if err != nil {
			return nil, fmt.Errorf("[vrrp.sync]: %w", err)
		}
		p.sync, sc = s, s
	}
	if !dryRun {
		values := vrrp.ReadSysctls("/proc")
		log.Info("sysctls for the active-backup pair", "values", values)
		for _, w := range vrrp.SysctlWarnings(cfg, values) {
			log.Warn("kernel setting works against the active-backup pair: "+w.Msg, "sysctl", w.Sysctl, "value", w.Value, "fix", w.Fix)
		}
	}
	p.ctl = vrrp.New(vrrp.Options{Config: v, Signals: eng.SelfHealth, StuckAfter: eng.StuckAfter(), Sync: sc,
		Logger: log, Metrics: metrics.NewVRRP(m), OnNotice: onNotice})
	return p, nil
}

// status is the controller's status for the API; nil without [vrrp].
func (p *pair) status() func() vrrp.Status {
	if p == nil {
		return nil
	}
	return p.ctl.Status
}

// start writes the track file (the director is not ready yet), starts
// the sync daemon as a backup, and follows keepalived until ctx ends. The
// returned stop waits for that and removes the track file: keepalived
// reads a missing file as 0, so a stopped director's bonus goes with it.
// The kernel's sync daemons keep running, as the IPVS table does with
// on_shutdown = "keep".
func (p *pair) start(ctx context.Context) (stop func()) {
	if p == nil {
		return func() {}
	}
	p.ctl.Start(ctx)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.ctl.Run(ctx) })
	return func() {
		cancel()
		wg.Wait()
		if p.cfg.TrackFile != "" {
			if err := os.Remove(p.cfg.TrackFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
				p.log.Error("stopping: the track file could not be removed; keepalived keeps its last value", "path", p.cfg.TrackFile, "err", err)
			} else {
				p.log.Info("stopping: track file removed; keepalived counts this director without its health bonus", "path", p.cfg.TrackFile)
			}
		}
		if p.sync != nil {
			p.sync.Close()
		}
	}
}

// vrrpConfigCmd prints the keepalived.conf for this director's [vrrp].
func vrrpConfigCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vrrp-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/director/director.toml", "the director's config")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	text, err := vrrp.KeepalivedConf(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "director vrrp-config: %v\n", err)
		return 1
	}
	io.WriteString(stdout, text)
	return 0
}
