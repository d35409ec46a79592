// Command demo-backend is a tiny HTTP real server for trying the director
// out: it answers "ok" on /healthz, and with -flap it turns unhealthy
// (503) and healthy again on a period, so the director has something to do.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	flap := flag.Duration("flap", 0, "if set, alternate healthy and unhealthy every this long")
	flag.Parse()

	start := time.Now()
	healthy := func() bool {
		return *flap == 0 || (time.Since(start)/(*flap))%2 == 0
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !healthy() {
			http.Error(w, "unhealthy (demo flap)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", *listen)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	slog.Info("demo backend serving", "listen", *listen, "flap", *flap)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		slog.Error("demo backend", "err", err)
		os.Exit(1)
	}
}
