// Package api serves the director's HTTP endpoints: /metrics for
// Prometheus, /healthz (the process is alive), /readyz (the kernel table
// has been reconciled), /api/v1/status (JSON) and / (a status page for
// people), all read-only; and, with a token configured, the write API of
// admin.go (operator overrides, clearing a panic).
package api

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/lvsdirector/director/announcer"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/vrrp"
)

// Source is what the endpoints read: the engine.
type Source interface {
	Ready() bool
	// Snapshot is the latest status the engine published: shared and
	// immutable, never changed by the endpoints.
	Snapshot() *engine.Status
}

// Options configure the handler.
type Options struct {
	Metrics http.Handler // serves /metrics
	Version string       // the director's version, shown in status
	// Refresh is how often the status page reloads itself; 5s when zero.
	Refresh time.Duration
	Logger  *slog.Logger
	// Table, when set, is read with each status render so connection
	// counters are live rather than as of the last reconcile
	// (statusdoc.go).
	Table ipvs.Table
	// Admin, when set, serves the write API (admin.go); Token returns the
	// bearer token it requires ("" turns the write API off: 403).
	Admin Admin
	Token func() string
	// Peers, when set, lists the BGP sessions for the status.
	Peers func() []announcer.PeerStatus
	// VRRP, when set, adds the active-backup pair's state (vrrp.go).
	VRRP func() vrrp.Status
	// Refused, when set, is told of every write request refused for its
	// token ("no bearer token", "wrong bearer token"): the log shows one a
	// minute per cause, a metric can count them all.
	Refused func(cause string)
}

//go:embed page/status.html
var pageFS embed.FS

// Handler returns the router for the director's listener.
func Handler(src Source, opts Options) http.Handler {
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	page := template.Must(template.New("status.html").Funcs(pageFuncs).ParseFS(pageFS, "page/status.html"))

	mux := http.NewServeMux()
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !src.Ready() {
			http.Error(w, "not ready: the IPVS table has not been reconciled yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	status := newStatusServer(src, opts, page)
	mux.HandleFunc("GET /api/v1/status", status.serveJSON)
	if opts.Admin != nil {
		// A write changes the status: the next status request shows it.
		opts.Admin = invalidatingAdmin{opts.Admin, status}
	}
	registerAdmin(mux, opts)
	mux.HandleFunc("GET /{$}", status.servePage)
	return mux
}

// Server wraps h in an http.Server with bounded timeouts and header size,
// so a slow or hostile client cannot hold the listener.
func Server(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           http.MaxBytesHandler(h, 64<<10),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       10 * time.Second, // an idle client gives its slot back soon (listen.go)
		MaxHeaderBytes:    16 << 10,
	}
}

// invalidatingAdmin is an Admin whose every call makes the next status
// response new, so that a client reading the status after its write
// sees it.
type invalidatingAdmin struct {
	Admin
	status *statusServer
}

func (a invalidatingAdmin) SetOverride(ctx context.Context, req engine.OverrideRequest) (engine.Override, error) {
	defer a.status.invalidate()
	return a.Admin.SetOverride(ctx, req)
}

func (a invalidatingAdmin) EnableServer(ctx context.Context, vs string, rs netip.AddrPort, reason, by string) error {
	defer a.status.invalidate()
	return a.Admin.EnableServer(ctx, vs, rs, reason, by)
}

func (a invalidatingAdmin) ClearPanic(ctx context.Context, name, by string) error {
	defer a.status.invalidate()
	return a.Admin.ClearPanic(ctx, name, by)
}
