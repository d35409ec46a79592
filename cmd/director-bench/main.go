// Command director-bench is the load harness: it measures the director
// (a real `director run -dry-run` process) against N loopback backends,
// beside a minimal reference checker, and prints what each did and cost.
//
//	director-bench -director ./director -kind http -n 1000 -interval 1s -window 30s -floor
//	director-bench -director ./director -kind tcp -n 1000 -storm 1000 -fall 3
//	director-bench -reconcile -n 10000 -changes 1000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lvsdirector/director/bench"
	"github.com/lvsdirector/director/ipvs"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "backends" || os.Args[1] == "floor") {
		os.Exit(childMain(os.Args[1], os.Args[2:]))
	}
	os.Exit(harnessMain(os.Args[1:]))
}

// childMain runs one of the harness's own child processes.
func childMain(mode string, args []string) int {
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	kind := fs.String("kind", "http", "http or tcp")
	n := fs.Int("n", 100, "backends")
	port := fs.Int("port", 8080, "backend port")
	interval := fs.Duration("interval", time.Second, "check interval")
	timeout := fs.Duration("timeout", 500*time.Millisecond, "check timeout")
	fs.Parse(args)
	var err error
	if mode == "backends" {
		err = bench.BackendsMain(*kind, *n, *port, os.Stdin, os.Stdout)
	} else {
		err = bench.FloorMain(*kind, *n, *port, *interval, *timeout, os.Stdin, os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "director-bench %s: %v\n", mode, err)
		return 1
	}
	return 0
}

func harnessMain(args []string) int {
	fs := flag.NewFlagSet("director-bench", flag.ExitOnError)
	var o bench.Options
	fs.StringVar(&o.DirectorBin, "director", "./director", "director binary to measure")
	fs.StringVar(&o.Kind, "kind", "http", "check type: http or tcp")
	fs.IntVar(&o.N, "n", 1000, "real servers (one loopback backend each)")
	fs.IntVar(&o.VirtualServers, "vs", 10, "virtual servers the real servers are spread over")
	fs.DurationVar(&o.Interval, "interval", time.Second, "check interval")
	fs.DurationVar(&o.Timeout, "timeout", 500*time.Millisecond, "check timeout")
	fs.IntVar(&o.Rise, "rise", 2, "rise")
	fs.IntVar(&o.Fall, "fall", 3, "fall")
	fs.DurationVar(&o.Window, "window", 30*time.Second, "measurement window per checker")
	fs.BoolVar(&o.Floor, "floor", false, "also measure the minimal reference checker on the same backends")
	fs.IntVar(&o.Storm, "storm", 0, "after the window, kill this many backends at once and time the director's reaction")
	fs.IntVar(&o.Port, "port", 8080, "backend port")
	reconcile := fs.Bool("reconcile", false, "measure table reconcile on the in-memory table instead (uses -n, -vs, -changes)")
	changes := fs.Int("changes", 1000, "with -reconcile: weight changes to apply")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	fs.Parse(args)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var out any
	if *reconcile {
		s, err := bench.RunReconcile(ctx, ipvs.NewMemory(), "in-memory", o.N, o.VirtualServers, *changes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
		s.Print(os.Stdout)
		out = s
	} else {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
		o.SelfBin = self
		o.Progress = os.Stderr
		if o.WorkDir, err = os.MkdirTemp("", "director-bench"); err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
		defer os.RemoveAll(o.WorkDir)
		rep, err := bench.Run(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
		rep.Print(os.Stdout)
		out = rep
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
	}
	return 0
}
