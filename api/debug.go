package api

import (
	"net/http"
	"net/http/pprof"
)

// Go's runtime profiles (heap, goroutines, CPU, ...) under /debug/pprof/,
// for the holders of the write API's token only: a heap profile shows
// the director's memory by call site, which is how an operator (or a
// developer at a scale not reproduced here) finds what grows, but it also
// shows names and addresses, and a CPU profile costs CPU while it runs.
// Without a token configured the endpoints answer 403, as the write API
// does; a CPU or trace profile must stay within the listener's write
// timeout (30 s: ?seconds=25).
//
//	GET /debug/pprof/                 the index
//	GET /debug/pprof/heap?gc=1        live heap after a collection
//	GET /debug/pprof/goroutine?debug=1
//	GET /debug/pprof/profile?seconds=20
func registerDebug(mux *http.ServeMux, a *adminHandler) {
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if a.authorizeToken(w, r) {
				h(w, r)
			}
		}
	}
	// Index serves the named profiles (heap, goroutine, allocs, ...) by
	// the path's last element; the others have handlers of their own.
	mux.HandleFunc("GET /debug/pprof/", guard(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/cmdline", guard(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", guard(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", guard(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", guard(pprof.Trace))
}
