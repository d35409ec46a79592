// Package api serves the director's HTTP endpoints: /metrics for
// Prometheus, /healthz (the process is alive) and /readyz (the kernel
// table has been reconciled).
package api

import (
	"fmt"
	"net/http"
	"time"
)

// Readiness reports whether the director has reconciled the kernel table.
type Readiness interface{ Ready() bool }

// Handler returns the router for the director's listener.
func Handler(ready Readiness, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Ready() {
			http.Error(w, "not ready: the IPVS table has not been reconciled yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "director: /metrics /healthz /readyz")
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
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}
