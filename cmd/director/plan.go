package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/ipvs"
)

// planCmd prints the kernel operations a config would cause, so that a
// change can be reviewed before it is reloaded. Exit 0 with the plan
// (possibly empty), 1 when the config is invalid or the table cannot be
// read, 2 on usage errors.
func planCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "the new config to plan (or give it as the argument)")
	current := fs.String("current", "", "the config the director runs now; its services that the new config drops are planned as deletes")
	against := fs.String("table", "kernel", `table to plan against: "kernel" (read over netlink) or "empty" (a fresh start)`)
	dryRun := fs.Bool("dry-run", false, "plan against the empty in-memory table that run -dry-run starts with (-table empty)")
	maxBytes := maxConfigBytesFlag(fs)
	if err := parseWithConfig(fs, args, path); err != nil {
		return 2
	}
	if *dryRun {
		tableSet := false
		fs.Visit(func(f *flag.Flag) { tableSet = tableSet || f.Name == "table" })
		if tableSet && *against != "empty" {
			fmt.Fprintf(stderr, "director plan: -dry-run plans against the empty in-memory table; it cannot go with -table %s\n", *against)
			return 2
		}
		*against = "empty"
	}
	if *against != "kernel" && *against != "empty" {
		fmt.Fprintf(stderr, "director plan: -table %q: want kernel or empty\n", *against)
		return 2
	}
	next, ok := loadValid(*path, *maxBytes, stderr)
	if !ok {
		return 1
	}
	var cur *config.Config
	var err error
	if *current != "" {
		if cur, err = config.LoadLimited(*current, *maxBytes); err != nil {
			fmt.Fprintf(stderr, "director plan: -current: %v\n", err)
			return 1
		}
	}

	var actual []ipvs.ServiceState
	if *against == "kernel" {
		if actual, err = readKernel(); err != nil {
			fmt.Fprintf(stderr, "director plan: %v\n", err)
			if errors.Is(err, ipvs.ErrNotSupported) {
				fmt.Fprintln(stderr, "director plan: there is no running table to plan against; -table empty (or -dry-run) shows what a fresh start would do")
			}
			return 1
		}
	}

	plan := engine.PlanConfig(next, cur, actual, time.Now())
	fmt.Fprintf(stdout, "# %s against the %s table (%d services)\n", next.Path, *against, len(actual))
	fmt.Fprintln(stdout, "# health assumed: servers at weight > 0 in the kernel stay up; new servers start unknown (weight 0 or absent until their first check passes)")
	if cur == nil && *against == "kernel" {
		fmt.Fprintln(stdout, "# services not in this config are left out; pass -current FILE to plan the removal of those the running config has")
	}
	for _, op := range plan.Ops {
		fmt.Fprintln(stdout, op.String())
	}
	for _, d := range plan.Draining {
		fmt.Fprintf(stdout, "# draining %s in %s (virtual server %s): weight 0 now; deleted when its %d connections end, or after %s\n",
			d.RealServer, d.Service, d.VirtualServer, d.Connections, d.Timeout)
	}
	switch n := len(plan.Ops); n {
	case 0:
		fmt.Fprintln(stdout, "# no changes")
	case 1:
		fmt.Fprintln(stdout, "# 1 change")
	default:
		fmt.Fprintf(stdout, "# %d changes\n", n)
	}
	return 0
}

func readKernel() ([]ipvs.ServiceState, error) {
	nl, err := ipvs.NewNetlink()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return nl.Services(ctx)
}
