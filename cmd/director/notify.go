package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/notify"
	"github.com/lvsdirector/director/vrrp"
)

// startNotifier starts delivering transition events to the notify_command
// and notify_url of the running config (current reads it, so a reload
// applies to the next event), the panic guard's events (vsHook), and the
// active-backup pair's (vrrpHook: [director]'s notify_command and
// notify_url). stop ends delivery and waits for it.
func startNotifier(log *slog.Logger, m *metrics.Metrics, cfg *config.Config, current func() *config.Config) (hook func(engine.Event), vsHook func(engine.VirtualServerEvent), vrrpHook func(vrrp.Notice), stop func()) {
	n := notify.New(notify.Options{
		Targets: func(vs string) notify.Target {
			c := current()
			if vs == "" { // the director's own events
				return notify.Target{Command: c.Notify.Command, URL: c.Notify.URL}
			}
			for i := range c.VirtualServers {
				if c.VirtualServers[i].Name == vs {
					nt := c.VirtualServers[i].Notify
					return notify.Target{Command: nt.Command, URL: nt.URL}
				}
			}
			return notify.Target{}
		},
		Email: emailSettings(log, current),
		// notify_timeout is read at start; a reload does not change it.
		Timeout:  cfg.Notify.Timeout,
		Recorder: m,
		Logger:   log,
		Killed:   metrics.NewGuard(m).NotifyKilled,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	hook = func(ev engine.Event) { n.Notify(notifyEvent(ev)) }
	vsHook = func(ev engine.VirtualServerEvent) { n.Notify(vsNotifyEvent(ev)) }
	vrrpHook = func(ev vrrp.Notice) { n.Notify(vrrpNotifyEvent(ev)) }
	return hook, vsHook, vrrpHook, func() { cancel(); <-done }
}

// emailSettings returns the running config's [notify.email] for the
// notifier, converted once per config (the notifier asks per event).
func emailSettings(log *slog.Logger, current func() *config.Config) func() *notify.EmailSettings {
	var (
		mu   sync.Mutex
		from *config.Config
		out  *notify.EmailSettings
	)
	return func() *notify.EmailSettings {
		c := current()
		mu.Lock()
		defer mu.Unlock()
		if c == from {
			return out
		}
		from, out = c, nil
		if e := c.Email; e != nil {
			out = &notify.EmailSettings{Server: e.Server, From: e.From, To: e.To, StartTLS: e.StartTLS,
				Username: e.Username, PasswordFile: e.PasswordFile, Repeat: e.Repeat}
			if e.Subject != "" {
				t, err := notify.ParseSubject(e.Subject) // checked at load; cannot fail here
				if err != nil {
					log.Error("notify: [notify.email] subject", "err", err)
				}
				out.Subject = t
			}
		}
		return out
	}
}

// vrrpNotifyEvent is a VRRP instance's state change (type "vrrp", the
// instance in vrrp_instance, from and to its states) or a change of the
// director's own health (type "director_health", from and to the causes:
// "healthy", "loop_stuck", ...).
func vrrpNotifyEvent(ev vrrp.Notice) notify.Event {
	out := notify.Event{Type: "vrrp", Time: ev.Time.UTC(), VRRPInstance: ev.Instance, From: ev.From, To: ev.To, Reason: ev.Reason}
	if ev.Instance == "" {
		out.Type = "director_health"
	}
	return out
}

// vsNotifyEvent is a panic guard event as sinks see it: type "panic" (from
// "normal" to "panic") or "panic_end" (back), the servers concerned in
// real_server, comma-separated.
func vsNotifyEvent(ev engine.VirtualServerEvent) notify.Event {
	out := notify.Event{Type: ev.Type, Time: ev.Time.UTC(), VirtualServer: ev.VirtualServer, From: "normal", To: "panic", Reason: ev.Reason}
	if ev.Type == "panic_end" {
		out.From, out.To = "panic", "normal"
	}
	addrs := make([]string, len(ev.RealServers))
	for i, a := range ev.RealServers {
		addrs[i] = a.String()
	}
	out.RealServer = strings.Join(addrs, ",")
	return out
}

func notifyEvent(ev engine.Event) notify.Event {
	out := notify.Event{
		Time: ev.Time.UTC(), VirtualServer: ev.VirtualServer, RealServer: ev.RealServer.String(),
		From: ev.From.String(), To: ev.To.String(), Reason: ev.Reason, Check: ev.Check,
	}
	for i := len(ev.Recent) - 1; i >= 0; i-- {
		r := ev.Recent[i]
		out.Recent = append(out.Recent, notify.Result{Time: r.Time.UTC(), OK: r.OK, Reason: r.Reason, DurationSeconds: r.Duration.Seconds()})
	}
	return out
}
