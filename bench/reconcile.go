package bench

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/lvsdirector/director/ipvs"
)

// ReconcileStats times the table work on the in-memory table: wall time
// and CPU time of this process for each step.
type ReconcileStats struct {
	Table          string  `json:"table"`
	Destinations   int     `json:"destinations"`
	Services       int     `json:"services"`
	Changes        int     `json:"changes"`
	ProgramSeconds float64 `json:"program_from_empty_seconds"`
	ProgramCPU     float64 `json:"program_from_empty_cpu_seconds"`
	ProgramOps     int     `json:"program_from_empty_ops"`
	DiffSeconds    float64 `json:"diff_unchanged_seconds"`
	DiffCPU        float64 `json:"diff_unchanged_cpu_seconds"`
	ResyncSeconds  float64 `json:"resync_unchanged_seconds"` // read + diff, no ops
	ChangeSeconds  float64 `json:"apply_changes_seconds"`
	ChangeCPU      float64 `json:"apply_changes_cpu_seconds"`
	ChangeOps      int     `json:"apply_changes_ops"`
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timed runs f and returns its wall and CPU seconds.
func timed(f func() error) (wall, cpu float64, err error) {
	c0, t0 := selfCPU(), time.Now()
	err = f()
	return time.Since(t0).Seconds(), (selfCPU() - c0).Seconds(), err
}

// desiredTable is n destinations spread over m services.
func desiredTable(n, m int, weight func(i int) uint32) []ipvs.DesiredService {
	out := make([]ipvs.DesiredService, m)
	for v := range m {
		out[v].Service = ipvs.Service{Key: ipvs.AddressKey(ipvs.TCP, vsAddress(v)), Scheduler: "wrr"}
	}
	for i := range n {
		out[i%m].Destinations = append(out[i%m].Destinations, ipvs.Destination{
			Address: backendAddr(i, 8080), Weight: weight(i), Forwarding: ipvs.NAT,
		})
	}
	return out
}

// RunReconcile measures, on t: programming n destinations over m services
// from empty, diffing the unchanged table, and applying k weight changes.
// t must start empty.
func RunReconcile(ctx context.Context, t ipvs.Table, name string, n, m, k int) (*ReconcileStats, error) {
	m = max(1, min(m, n))
	k = min(k, n)
	s := &ReconcileStats{Table: name, Destinations: n, Services: m, Changes: k}
	full := desiredTable(n, m, func(int) uint32 { return 100 })
	var err error
	s.ProgramSeconds, s.ProgramCPU, err = timed(func() error {
		rep, err := ipvs.Reconcile(ctx, t, full, nil)
		s.ProgramOps = len(rep.Ops)
		return firstErr(err, rep.Errors)
	})
	if err != nil {
		return nil, fmt.Errorf("programming %d destinations: %w", n, err)
	}
	actual, err := t.Services(ctx)
	if err != nil {
		return nil, err
	}
	s.DiffSeconds, s.DiffCPU, _ = timed(func() error {
		if ops := ipvs.Plan(full, actual, nil); len(ops) != 0 {
			return fmt.Errorf("unchanged table planned %d operations", len(ops))
		}
		return nil
	})
	s.ResyncSeconds, _, err = timed(func() error {
		rep, err := ipvs.Reconcile(ctx, t, full, nil)
		if err == nil && len(rep.Ops) != 0 {
			err = fmt.Errorf("unchanged table: resync planned %d operations", len(rep.Ops))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	changed := desiredTable(n, m, func(i int) uint32 {
		if i < k {
			return 0
		}
		return 100
	})
	s.ChangeSeconds, s.ChangeCPU, err = timed(func() error {
		rep, err := ipvs.Reconcile(ctx, t, changed, nil)
		s.ChangeOps = len(rep.Ops)
		return firstErr(err, rep.Errors)
	})
	if err != nil {
		return nil, fmt.Errorf("applying %d weight changes: %w", k, err)
	}
	if s.ChangeOps != k {
		return nil, fmt.Errorf("%d weight changes planned %d operations", k, s.ChangeOps)
	}
	return s, nil
}

func firstErr(err error, errs []error) error {
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d operations failed, first: %w", len(errs), errs[0])
	}
	return nil
}
