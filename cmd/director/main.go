// Command director keeps the kernel's IPVS table right: it reads a TOML
// config of virtual services, health-checks every real server, and
// programs the kernel through netlink.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lvsdirector/director/api"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/datapath"
	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/internal/apitoken"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/metrics"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `director: a health-checking director for Linux IPVS

Usage:
  director run [-config] FILE [-dry-run] [-log-level LEVEL] [-log-format text|json] [-max-config-bytes N]
      Run as a service: check every real server and keep the kernel IPVS table right.
      -dry-run uses an in-memory table instead of the kernel and logs each change.
  director check [-config] FILE [-allow-empty] [-max-config-bytes N]
      Validate the config; print every problem with file, line and key. Exit 1 if
      invalid, or if it has no virtual server (unless -allow-empty).
  director status [-addr URL] [-json] [-timeout D] [-virtual-server NAME]
      Show a running director's virtual and real servers with their health,
      like ipvsadm -Ln (from its /api/v1/status; -addr defaults to http://127.0.0.1:9410).
  director plan [-config] NEW [-current FILE] [-table kernel|empty] [-dry-run] [-max-config-bytes N]
      Print the kernel operations NEW would cause against the running IPVS table,
      one per line, to review before a reload. -dry-run (same as -table empty)
      plans against the empty in-memory table a run -dry-run starts with.
      Exit 1 if NEW is invalid.
  director genhash [-sha256] [-timeout D] [-host H] [-tls-skip-verify] URL
      Print the MD5 (or SHA-256) of the page's body as keepalived's genhash does,
      and the expect_digest line of an http or https check to paste.
  director vrrp-config -config FILE
      Print the keepalived.conf (VRRP only) that pairs with this director's [vrrp]
      (README, "Active-backup with keepalived").
  director import [-from keepalived|ldirectord|ipvsadm] [-o OUT] FILE
      Convert a keepalived.conf, ldirectord.cf or ipvsadm -S rule file into a
      director config (standard output, or OUT); report on standard error every
      option not converted exactly. Exit 1 if FILE cannot be parsed.
  director version
      Print the version.

FILE defaults to /etc/director/director.toml; -config FILE and a plain FILE
are the same, and flags may come before or after it.
Signals (run): SIGHUP reloads the config; SIGTERM and SIGINT stop.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "plan":
		return planCmd(args[1:], stdout, stderr)
	case "status":
		return statusCmd(args[1:], stdout, stderr)
	case "genhash":
		return genhashCmd(args[1:], stdout, stderr)
	case "vrrp-config":
		return vrrpConfigCmd(args[1:], stdout, stderr)
	case "import":
		return importCmd(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "director %s\n", buildInfo().Version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "director: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func buildInfo() metrics.Build {
	b := metrics.Build{Version: version, Revision: "unknown"}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
		if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
	}
	return b
}

// maxConfigBytesFlag defines -max-config-bytes on fs.
func maxConfigBytesFlag(fs *flag.FlagSet) *int64 {
	return fs.Int64("max-config-bytes", config.DefaultMaxBytes, "refuse a config file larger than this many bytes")
}

// loadValid loads the config at path and builds every check it names, as
// run would: that catches what only the probers know (a CA file that is
// not PEM, say). Problems go to stderr.
func loadValid(path string, maxBytes int64, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.LoadLimited(path, maxBytes)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	if _, err := engine.New(cfg, engine.Options{Table: ipvs.NewMemory(), Logger: slog.New(slog.DiscardHandler)}); err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	return cfg, true
}

// defaultConfig is where every command looks without -config or FILE.
const defaultConfig = "/etc/director/director.toml"

// parseWithConfig parses a command's flags and takes the config file
// from -config or from one plain argument, which may stand before, among
// or after the flags: "director check FILE" and "director run FILE
// -dry-run" do what they say. It prints its own usage errors.
func parseWithConfig(fs *flag.FlagSet, args []string, path *string) error {
	var plain []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		plain = append(plain, fs.Arg(0))
		args = fs.Args()[1:]
	}
	flagSet := false
	fs.Visit(func(f *flag.Flag) { flagSet = flagSet || f.Name == "config" })
	switch {
	case len(plain) > 1:
		err := fmt.Errorf("one config file, not %d: %s", len(plain), strings.Join(plain, " "))
		fmt.Fprintf(fs.Output(), "director %s: %v\n", fs.Name(), err)
		return err
	case len(plain) == 1 && flagSet && plain[0] != *path:
		err := fmt.Errorf("two config files, -config %s and %s: give one", *path, plain[0])
		fmt.Fprintf(fs.Output(), "director %s: %v\n", fs.Name(), err)
		return err
	case len(plain) == 1:
		*path = plain[0]
	}
	return nil
}

func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "config file to validate (or give it as the argument)")
	allowEmpty := fs.Bool("allow-empty", false, "accept a config without virtual servers")
	maxBytes := maxConfigBytesFlag(fs)
	if err := parseWithConfig(fs, args, path); err != nil {
		return 2
	}
	cfg, ok := loadValid(*path, *maxBytes, stderr)
	if !ok {
		return 1
	}
	if len(cfg.VirtualServers) == 0 && !*allowEmpty {
		// A running director refuses to reload such a file (it would
		// remove every service), and the unit's ExecStartPre relies on
		// check: say so here rather than at the reload.
		fmt.Fprintf(stderr, "%s: no virtual servers: a director with this config manages nothing, and a running one refuses to reload it; "+
			"add a [[virtual_server]] (see config.example.toml), or pass -allow-empty if that is what you mean\n", cfg.Path)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: OK\n", cfg.Summary())
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

func runCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "config file (or give it as the argument)")
	dryRun := fs.Bool("dry-run", false, "use an in-memory IPVS table instead of the kernel; log each change")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	maxBytes := maxConfigBytesFlag(fs)
	if err := parseWithConfig(fs, args, path); err != nil {
		return 2
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "director:", err)
		return 2
	}

	cfg, err := config.LoadLimited(*path, *maxBytes)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings {
		log.Warn("config", "problem", w.String())
	}
	// fast_checks takes effect at start only, and so does the headroom
	// chosen for it.
	if pct, ok := gcPercent(os.Getenv("GOGC"), cfg.Director.FastChecks); ok {
		debug.SetGCPercent(pct)
	}

	var table ipvs.Table
	if *dryRun {
		table = ipvs.NewMemory()
	} else {
		nl, err := ipvs.NewNetlink()
		if err != nil {
			fmt.Fprintf(stderr, "director: %v\n", err)
			return 1
		}
		defer nl.Close()
		table = nl
		warnKernel(log, cfg)
	}

	build := buildInfo()
	m := metrics.New(build)
	ann, err := startAnnouncers(cfg, log, m, *dryRun)
	if err != nil {
		fmt.Fprintf(stderr, "director: %s: %v\n", cfg.Path, err)
		return 1
	}
	defer ann.stop()
	var eng *engine.Engine
	onTransition, onVSEvent, onVRRP, stopNotify := startNotifier(log, m, cfg, func() *config.Config { return eng.Config() })
	defer stopNotify()
	dp, err := datapath.New(nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "director: %v\n", err)
		return 1
	}
	eng, err = engine.New(cfg, engine.Options{Table: table, Metrics: m, Logger: log, DryRun: *dryRun, OnTransition: onTransition,
		OnVirtualServerEvent: onVSEvent, StateFile: stateFile(cfg, *dryRun), Announcer: ann.engineAnnouncer(), DataPath: dp,
		SetProcs: setProcs(os.Getenv("GOMAXPROCS")), BaseProcs: runtime.GOMAXPROCS(0)})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	m.Reload(true, time.Now())
	m.ConfigHash(cfg.SHA256)
	if cfg.Director.KernelStats != "off" {
		kernel := metrics.NewIPVSCollector(table, eng.ServiceNames, 5*time.Second, log)
		kernel.ServicesOnly = cfg.Director.KernelStats == "services"
		m.SetKernelStats(kernel)
	}

	ha, err := newVRRP(log, m, cfg, eng, *dryRun, onVRRP) // nil without [vrrp]
	if err != nil {
		fmt.Fprintf(stderr, "director: %v\n", err)
		return 1
	}

	ln, err := net.Listen("tcp", cfg.Director.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "director: %s: director.listen: %v\n", cfg.Path, err)
		return 1
	}
	guard := metrics.NewGuard(m)
	// The token file is read again every second and on reload, off the
	// engine: emptying or removing it turns the write API off at once.
	tokens := apitoken.NewWatcher(cfg.Director.APITokenFile, log)
	tokens.Reload(cfg.Director.APITokenFile)
	tokenCtx, stopTokens := context.WithCancel(context.Background())
	var tokenWatch sync.WaitGroup
	tokenWatch.Go(func() { tokens.Run(tokenCtx) })
	defer func() { stopTokens(); tokenWatch.Wait() }()
	srv := api.Server(cfg.Director.Listen, api.Handler(eng, api.Options{Metrics: m.Handler(), Version: build.Version, Logger: log, Table: table,
		Admin: eng, Token: tokens.Token, Refused: guard.APIRefused, VRRP: ha.status(), Peers: ann.peers()}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The track file says "not ready" before anything can say ready.
	stopVRRP := ha.start(ctx)
	defer stopVRRP()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(limitListener(ln, srv, cfg.Director, log, guard)) }()
	// The engine outlives the signal by the withdraw grace: routes go
	// first, then the checks and the table (on_shutdown).
	engineCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	go func() {
		<-ctx.Done()
		ann.withdraw("shutting down", cfg.Announce.WithdrawGrace)
		stopEngine()
	}()
	engineErr := make(chan error, 1)
	go func() { engineErr <- eng.Run(engineCtx) }()
	life := startLifecycle(ctx, log, eng, cfg, *maxBytes) // systemd notify and watchdog, watch_config
	defer life.stop()

	log.Info("director started", "version", build.Version, "config", cfg.Path,
		"listen", ln.Addr().String(), "dry_run", *dryRun, "virtual_servers", len(cfg.VirtualServers))

	code := 0
loop:
	for {
		select {
		case <-hup:
			life.reload(func() { reload(ctx, log, m, eng, tokens, *path, *maxBytes) })
		case <-life.changed:
			log.Info("config file changed; reloading", "path", *path)
			life.reload(func() { reload(ctx, log, m, eng, tokens, *path, *maxBytes) })
		case err := <-serveErr:
			log.Error("HTTP listener failed", "listen", cfg.Director.Listen, "err", err)
			code = 1
			stop()
		case err := <-engineErr:
			if err != nil {
				log.Error("director stopped", "err", err)
				code = 1
			}
			break loop
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ann.withdraw("engine stopped", 0) // at once when it failed; already done after a signal
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("HTTP listener did not close cleanly", "err", err)
	}
	log.Info("director stopped")
	return code
}

// stateFile is where API overrides are kept: state_file, else the
// default; with -dry-run (and no state_file) a file in the temporary
// directory, so a trial run neither needs /var/lib/director nor touches
// the real director's overrides.
func stateFile(cfg *config.Config, dryRun bool) string {
	switch {
	case cfg.Director.StateFile != "":
		return cfg.Director.StateFile
	case dryRun:
		return filepath.Join(os.TempDir(), "director-dry-run-state.json")
	}
	return config.DefaultStateFile
}

// reload reads and validates the config again; a bad one is logged in full
// and changes nothing.
func reload(ctx context.Context, log *slog.Logger, m *metrics.Metrics, eng *engine.Engine, tokens *apitoken.Watcher, path string, maxBytes int64) {
	log.Info("SIGHUP: reloading config", "path", path)
	prev := eng.Config()
	cfg, err := config.LoadLimited(path, maxBytes)
	if err == nil && len(cfg.VirtualServers) == 0 {
		// An empty file is valid on its own, and it is what a writer
		// that truncates first leaves for a moment: never let it
		// remove every service.
		if cur := eng.Config(); cur != nil && len(cur.VirtualServers) > 0 {
			err = fmt.Errorf("%s: no virtual servers (an empty or half-written file?): refusing a reload that would remove all %d; "+
				"to remove them all, stop the director with on_shutdown = \"flush\"", path, len(cur.VirtualServers))
		}
	}
	if err == nil {
		if cur := eng.Config(); cur != nil && cur.Director.MaxConnections != cfg.Director.MaxConnections {
			log.Warn("director.max_connections changed; it takes effect on restart", "max_connections", cfg.Director.MaxConnections)
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = eng.Reload(rctx, cfg)
		cancel()
	}
	if err != nil {
		m.Reload(false, time.Now())
		log.Error("config reload failed; still running the previous config", "path", path, "err", err)
		return
	}
	m.Reload(true, time.Now())
	m.ConfigHash(cfg.SHA256)
	tokens.Reload(cfg.Director.APITokenFile)
	if !reflect.DeepEqual(prev.VRRP, cfg.VRRP) {
		log.Warn("[vrrp] changed: the active-backup settings (FIFO, track file, health, sync daemons) take effect on restart; the running ones stay", "path", path)
	}
	warnAnnounceReload(log, prev, cfg)
}

// The collector's heap headroom for `director run`, as a percentage of
// the live heap (Go's default is 100). Checks on the event loops
// (fast_checks, the default) allocate about 1 KB per check: a quarter of
// the live heap as headroom keeps resident memory near 1.25x the live heap,
// 98-101 MB at 20,000 real servers against 116 MB at 50, for at most a few
// percent more CPU per check (docs/performance.md, "Memory, second pass,
// on a quiet machine"). The goroutine path allocates a context, timers and
// a goroutine per check: at 25 its collections took the CPU its checks
// needed (a capacity run at 20,000 did not answer /metrics within 30 s),
// so it keeps the earlier 50.
const (
	fastGCPercent  = 25
	usualGCPercent = 50
)

// setProcs is how the engine sets the Ps the runtime uses for its event
// loops (engine/loops.go): nil when GOMAXPROCS in the environment (env)
// says, which wins, as operators expect of a Go program.
func setProcs(env string) func(int) {
	if env != "" {
		return nil
	}
	return func(n int) { runtime.GOMAXPROCS(n) }
}

// gcPercent is the GC percent `director run` sets, and whether to set one:
// GOGC in the environment (env) wins, as operators expect of a Go program.
func gcPercent(env string, fastChecks bool) (int, bool) {
	if env != "" {
		return 0, false
	}
	if fastChecks {
		return fastGCPercent, true
	}
	return usualGCPercent, true
}
