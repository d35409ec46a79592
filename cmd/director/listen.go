package main

import (
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/lvsdirector/director/api"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/internal/lograte"
	"github.com/lvsdirector/director/metrics"
)

// openFileLimit is the soft RLIMIT_NOFILE in force (Go raised it to the
// hard limit at start); 0 when it cannot be read.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// limitListener caps ln's concurrent connections (api.LimitListener) at
// max_connections, or at a cap derived from the open-file limit, so that
// clients can never take the descriptors the probes need. It logs the cap
// at start and, at most once a minute, that the listener is full.
func limitListener(ln net.Listener, srv *http.Server, d config.Director, log *slog.Logger, g *metrics.Guard) net.Listener {
	nofile := openFileLimit()
	n := api.ConnectionCap(d.MaxConnections, nofile)
	g.ListenerCap(n)
	if nofile > 0 && uint64(n) > nofile/2 {
		log.Warn("max_connections is more than half the open-file limit: a flood of connections can leave the probes without file descriptors",
			"max_connections", n, "open_file_limit", nofile, "fix", "lower max_connections, or raise LimitNOFILE in the systemd unit")
	} else {
		log.Info("HTTP listener connection cap", "max_connections", n, "open_file_limit", nofile)
	}
	rate := lograte.New(time.Minute)
	return api.LimitListener(ln, n, srv, api.Saturation{Full: func(max int) {
		g.ListenerFull()
		if ok, held := rate.Allow("full", time.Now()); ok {
			log.Warn("HTTP listener full: new connections wait and idle ones are closed",
				"max_connections", max, "times_not_logged", held)
		}
	}})
}
