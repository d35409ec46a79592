// Package api serves the director's HTTP endpoints: /metrics for
// Prometheus, /healthz (the process is alive), /readyz (the kernel table
// has been reconciled), /api/v1/status (JSON) and / (a status page for
// people), all read-only; and, with a token configured, the write API of
// admin.go (operator overrides, clearing a panic).
package api

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
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
	Status() engine.Status
}

// Options configure the handler.
type Options struct {
	Metrics http.Handler // serves /metrics
	Version string       // the director's version, shown in status
	// Refresh is how often the status page reloads itself; 5s when zero.
	Refresh time.Duration
	Logger  *slog.Logger
	// Table, when set, is read on each status request so connection
	// counters are live rather than as of the last reconcile.
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
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		body, err := json.MarshalIndent(currentStatus(r.Context(), src, opts), "", "  ")
		if err != nil {
			opts.Logger.Error("api: encoding /api/v1/status failed", "err", err)
			http.Error(w, "encoding the status failed; see the director's log", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.Write(append(body, '\n'))
	})
	registerAdmin(mux, opts)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// Render to a buffer first so a template error is a clean 500,
		// not half a page.
		var buf bytes.Buffer
		if err := page.Execute(&buf, newPageData(currentStatus(r.Context(), src, opts), opts.Refresh)); err != nil {
			opts.Logger.Error("api: rendering the status page failed", "err", err)
			http.Error(w, "rendering the status page failed; see the director's log", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		// The page needs nothing but its own inline styles: no scripts,
		// no external assets, no framing.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(buf.Bytes())
	})
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

// kernelReadTimeout bounds the live table read of a status request.
const kernelReadTimeout = 2 * time.Second

// currentStatus is the engine's status with, when a table is configured,
// the kernel's counters read now. A failed read keeps the counters of the
// engine's last read and says so in the status.
func currentStatus(ctx context.Context, src Source, opts Options) StatusV1 {
	st := src.Status()
	var readErr error
	if opts.Table != nil {
		ctx, cancel := context.WithTimeout(ctx, kernelReadTimeout)
		live, err := opts.Table.Services(ctx)
		cancel()
		if err != nil {
			readErr = err
		} else {
			overlayCounters(&st, live)
		}
	}
	out := statusV1(st, opts.Version)
	out.Director.WriteAPI = opts.Admin != nil && opts.Token != nil && opts.Token() != ""
	out.Announce = announceV1(st, opts.Peers)
	if opts.VRRP != nil {
		out.VRRP = vrrpV1(opts.VRRP())
	}
	if readErr != nil {
		out.Director.KernelError = "reading the IPVS table for live counters failed (counters are from the last reconcile): " + readErr.Error()
	}
	return out
}

func overlayCounters(st *engine.Status, live []ipvs.ServiceState) {
	type dk struct {
		svc  ipvs.ServiceKey
		addr netip.AddrPort
	}
	svcs := map[ipvs.ServiceKey]ipvs.Counters{}
	dests := map[dk]ipvs.Counters{}
	for _, s := range live {
		k := s.Key.Normalize()
		svcs[k] = s.Counters
		for _, d := range s.Destinations {
			dests[dk{k, d.Address}] = d.Counters
		}
	}
	for i := range st.VirtualServers {
		vs := &st.VirtualServers[i]
		k := vs.Service.Key.Normalize()
		vs.Counters = svcs[k]
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			rs.Counters = dests[dk{k, rs.Address}]
		}
	}
}
