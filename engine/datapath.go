package engine

import (
	"context"

	"github.com/lvsdirector/director/checks"
	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/datapath"
)

// DataPath builds and removes what data-path checks (datapath = true)
// probe through, and dials through it: datapath.Manager. The engine owns
// its lifetime: Sync at start and after every reload, Close when Run
// returns.
type DataPath interface {
	checks.DataPathDialer
	Sync(ctx context.Context, routes []datapath.Route) error
	Close() error
}

// dataPathRoutes lists the data path of every data-path check of cfg.
func dataPathRoutes(cfg *config.Config) []datapath.Route {
	var routes []datapath.Route
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			for _, c := range vs.ChecksOf(rs) {
				if r, ok := vs.CheckSpec(rs, &c).DataPathRoute(); ok {
					routes = append(routes, r)
				}
			}
		}
	}
	return routes
}

// syncDataPath makes the data path hold what cfg's checks need, and only
// that. Without Options.DataPath data-path checks are inconclusive.
func (e *Engine) syncDataPath(ctx context.Context, cfg *config.Config) error {
	if e.opts.DataPath == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.ReconcileTimeout)
	defer cancel()
	return e.opts.DataPath.Sync(ctx, dataPathRoutes(cfg))
}

// closeDataPath removes everything the data path holds.
func (e *Engine) closeDataPath() {
	if e.opts.DataPath != nil {
		e.opts.DataPath.Close()
	}
}
