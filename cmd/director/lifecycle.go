package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/systemd"
)

// watchDebounce is how long the config file must stay quiet after a
// change before it is reloaded: long enough for an editor or a config
// manager to finish writing, short enough to feel immediate.
const watchDebounce = 500 * time.Millisecond

// lifecycle connects a running director to its service manager (systemd's
// notify protocol and watchdog; nothing happens when not run by systemd)
// and to its config file (watch_config).
type lifecycle struct {
	log *slog.Logger
	sd  *systemd.Notifier
	// changed fires when the config file's content changed; nil (never
	// fires) without watch_config.
	changed   <-chan struct{}
	stopWatch func()
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func startLifecycle(ctx context.Context, log *slog.Logger, eng *engine.Engine, cfg *config.Config, maxConfigBytes int64) *lifecycle {
	ctx, cancel := context.WithCancel(ctx)
	l := &lifecycle{log: log, sd: systemd.FromEnv(os.Getenv), stopWatch: func() {}, cancel: cancel}
	if cfg.Director.WatchConfig {
		ch, stop, err := config.WatchFile(ctx, cfg.Path, cfg.SHA256, maxConfigBytes, watchDebounce, log)
		if err != nil {
			log.Error("watch_config: cannot watch the config file; reload with SIGHUP instead", "path", cfg.Path, "err", err)
		} else {
			l.changed, l.stopWatch = ch, stop
			log.Info("watching the config file; a change is reloaded like SIGHUP", "path", cfg.Path)
		}
	}
	l.wg.Go(func() {
		select {
		case <-eng.Started():
			l.notify(l.sd.Ready(fmt.Sprintf("running %d virtual servers", len(cfg.VirtualServers))))
		case <-ctx.Done():
		}
		<-ctx.Done()
		l.notify(l.sd.Stopping())
	})
	if interval := l.sd.WatchdogInterval(); interval > 0 {
		l.wg.Go(func() { l.watchdog(ctx, eng, interval) })
	}
	return l
}

// watchdog pings the manager at half its interval, but only while the
// engine's loop answers: a wedged engine is restarted, not kept alive by a
// timer that knows nothing of it.
func (l *lifecycle) watchdog(ctx context.Context, eng *engine.Engine, interval time.Duration) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval/2)
		err := eng.Ping(pctx)
		cancel()
		switch {
		case err == nil:
			l.notify(l.sd.Watchdog())
		case ctx.Err() == nil:
			l.log.Error("watchdog: the engine did not answer in time; systemd restarts the director if this goes on", "waited", interval/2)
		}
	}
}

// reload runs do between RELOADING=1 and READY=1, as Type=notify-reload
// expects, whatever the outcome: a refused reload leaves the previous
// config running, which is ready.
func (l *lifecycle) reload(do func()) {
	l.notify(l.sd.Reloading())
	do()
	l.notify(l.sd.Ready("running"))
}

func (l *lifecycle) notify(err error) {
	if err != nil {
		l.log.Warn("systemd notify failed", "err", err)
	}
}

// stop ends the watch, says STOPPING=1 and waits for its goroutines.
func (l *lifecycle) stop() {
	l.cancel()
	l.stopWatch()
	l.wg.Wait()
}

// warnKernel logs the IPVS sysctls that make the kernel behave unlike the
// config asks (see README, "Graceful drain and the kernel").
func warnKernel(log *slog.Logger, cfg *config.Config) {
	for _, w := range engine.KernelWarnings(cfg, "/proc") {
		log.Warn("kernel setting works against the config: "+w.Msg, "sysctl", w.Sysctl, "value", w.Value,
			"virtual_servers", w.VirtualServers, "fix", w.Fix)
	}
}
