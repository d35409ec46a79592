// Command director-bench is the load harness: it measures the director
// (a real `director run -dry-run` process) against N loopback backends,
// beside a minimal reference checker, and prints what each did and cost.
//
//	director-bench -director ./director -kind http -n 1000 -interval 1s -window 30s -floor
//	director-bench -director ./director -kind tcp -n 1000 -storm 1000 -fall 3
//	director-bench -director ./director -kind tcp -n 1000 -window 20s -floor -cfloor   # both ratios
//	director-bench -reconcile -n 10000 -changes 1000
//	director-bench -director ./director -kind http -n 1000 -interval 1s -timeout 1s -floor -peers ldirectord
//	director-bench -reconcile -table netlink -n 10000   # the kernel's table (inside the e2e VM)
//	director-bench -director ./director -mix dialogue:1000:1s -timeout 500ms -window 20s   # any kind of bench.Kinds
//	director-bench -director ./director -kinds dns,grpc,mysql,exec -n 1000 -window 20s      # CPU per check, one run per kind
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lvsdirector/director/bench"
	"github.com/lvsdirector/director/ipvs"
)

func main() {
	raiseOpenFiles()
	if len(os.Args) > 1 && (os.Args[1] == "backends" || os.Args[1] == "floor") {
		os.Exit(childMain(os.Args[1], os.Args[2:]))
	}
	os.Exit(harnessMain(os.Args[1:]))
}

// childMain runs one of the harness's own child processes.
func childMain(mode string, args []string) int {
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	kind := fs.String("kind", "http", "one of "+strings.Join(bench.Kinds, ", "))
	n := fs.Int("n", 100, "backends")
	port := fs.Int("port", 8080, "backend port")
	interval := fs.Duration("interval", time.Second, "check interval")
	timeout := fs.Duration("timeout", 500*time.Millisecond, "check timeout")
	first := fs.Int("first", 0, "backends: index of the first backend address")
	groupsFlag := fs.String("groups", "", "backends: kind:n[:interval],... instead of -kind and -n")
	fs.Parse(args)
	var err error
	if mode == "backends" {
		groups := []bench.Group{{Kind: *kind, N: *n, Interval: *interval}}
		if *groupsFlag != "" {
			if groups, err = bench.ParseGroups(*groupsFlag); err != nil {
				fmt.Fprintln(os.Stderr, "director-bench backends:", err)
				return 2
			}
		}
		err = bench.BackendsMain(groups, *first, *port, os.Stdin, os.Stdout)
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
	fs.StringVar(&o.Kind, "kind", "http", "check type: "+strings.Join(bench.Kinds, ", ")+" (the floor checker: http or tcp)")
	fs.IntVar(&o.N, "n", 1000, "real servers (one loopback backend each)")
	fs.IntVar(&o.VirtualServers, "vs", 10, "virtual servers the real servers are spread over")
	fs.DurationVar(&o.Interval, "interval", time.Second, "check interval")
	fs.DurationVar(&o.Timeout, "timeout", 500*time.Millisecond, "check timeout")
	fs.IntVar(&o.Rise, "rise", 2, "rise")
	fs.IntVar(&o.Fall, "fall", 3, "fall")
	fs.DurationVar(&o.RetryInterval, "retry-interval", 0, "retry_interval of every check (0: off); the storm's detection time shows its effect")
	fs.DurationVar(&o.Window, "window", 30*time.Second, "measurement window per checker")
	fs.BoolVar(&o.Floor, "floor", false, "also measure the minimal reference checker on the same backends")
	fastChecks := fs.Bool("fast-checks", true, "the director's fast_checks setting (false: every check on a goroutine of its own)")
	fs.BoolVar(&o.CFloor, "cfloor", false, "also measure the C event-loop floor (bench/cfloor, built with cc) on the same backends")
	fs.BoolVar(&o.CBackends, "cbackends", false, "serve tcp and http backends from a C event loop (bench/cbackends, built with cc): the same answers for less of the CPU the director shares with them")
	fs.IntVar(&o.Storm, "storm", 0, "after the window, kill this many backends at once and time the director's reaction")
	fs.IntVar(&o.Port, "port", 8080, "backend port")
	fs.Float64Var(&o.MinUp, "min-up", 0, "measure even if only this share of the real servers (0-1) came up by the start deadline; 0: all must")
	mix := fs.String("mix", "", "several groups in one director, e.g. http:10000:5s,tcp:10000:2s (replaces -kind, -n, -interval; with -cfloor, one C floor per group; not with -floor)")
	reconcile := fs.Bool("reconcile", false, "measure table reconcile on the in-memory table instead (uses -n, -vs, -changes)")
	table := fs.String("table", "memory", "with -reconcile: memory, or netlink (the kernel's IPVS table; it must be empty; needs CAP_NET_ADMIN)")
	peers := fs.String("peers", "", "also measure these peer checkers, comma-separated, each in its own window: ldirectord (host), keepalived (needs IPVS: the e2e VM)")
	changes := fs.Int("changes", 1000, "with -reconcile: weight changes to apply")
	kinds := fs.String("kinds", "", "one run per kind, comma-separated (or \"all\"), -n real servers each (exec: a tenth; kind:n for another count), and a table of CPU per 1,000 checks")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.HeapProfile, "heap-profile", "", "write the director's heap profile (live heap at the end of its window) to this file, for go tool pprof")
	fs.Parse(args)
	o.NoFastChecks = !*fastChecks

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	if o.Peers, err = bench.ParsePeers(*peers); err != nil {
		fmt.Fprintln(os.Stderr, "director-bench:", err)
		return 2
	}
	var out any
	if *reconcile {
		var t ipvs.Table = ipvs.NewMemory()
		name := "in-memory"
		if *table == "netlink" {
			nl, err := ipvs.NewNetlink()
			if err != nil {
				fmt.Fprintln(os.Stderr, "director-bench:", err)
				return 1
			}
			defer nl.Close()
			t, name = nl, "kernel (netlink)"
		} else if *table != "memory" {
			fmt.Fprintf(os.Stderr, "director-bench: -table %q: want memory or netlink\n", *table)
			return 2
		}
		s, err := bench.RunReconcile(ctx, t, name, o.N, o.VirtualServers, *changes)
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
		if *mix != "" {
			if o.Groups, err = bench.ParseGroups(*mix); err != nil {
				fmt.Fprintln(os.Stderr, "director-bench:", err)
				return 2
			}
			for _, g := range o.Groups {
				if g.Interval == 0 {
					fmt.Fprintln(os.Stderr, "director-bench: -mix: every group needs an interval (kind:n:interval)")
					return 2
				}
			}
		}
		o.Progress = os.Stderr
		if o.WorkDir, err = os.MkdirTemp("", "director-bench"); err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
		defer os.RemoveAll(o.WorkDir)
		if *kinds != "" {
			list := strings.Split(*kinds, ",")
			if *kinds == "all" {
				list = bench.Kinds
			}
			rep, err := bench.RunKinds(ctx, o, list)
			if err != nil {
				fmt.Fprintln(os.Stderr, "director-bench:", err)
				return 1
			}
			rep.Print(os.Stdout)
			if st := writeJSON(*jsonOut, rep); st != 0 || len(rep.Failed()) > 0 {
				return 1
			}
			return 0
		}
		rep, err := bench.Run(ctx, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "director-bench:", err)
			return 1
		}
		rep.Print(os.Stdout)
		out = rep
	}
	return writeJSON(*jsonOut, out)
}

// writeJSON writes the results to path, if one is given, and returns the
// exit status.
func writeJSON(path string, out any) int {
	if path == "" {
		return 0
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "director-bench:", err)
		return 1
	}
	return 0
}

// raiseOpenFiles lifts the open-files limit as far as allowed: ten
// thousand backends are ten thousand listening sockets, and the limit is
// inherited by the children and the director. Without privilege the
// current limit stays, and StartBackends says what to do when it is hit.
func raiseOpenFiles() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
