package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Print writes the report as tables a person reads.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "%s checks: %d real servers over %d virtual servers, every %s (timeout %s); groups %s\n\n",
		r.Kind, r.N, r.VirtualServers, r.Interval, r.Timeout, r.Groups)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "checker\tplanned/s\tstarted/s\tdone/s\tbackend saw/s\tfailed/s\tskipped/s\ton time\tlag p50≤\tp99≤\tmax≤\tCPU s/1000\tcores\tpeak RSS MB\tgoroutines\tGC p50\tGC max\t")
	rows := []*CheckerStats{&r.Director}
	if r.Floor != nil {
		rows = append(rows, r.Floor)
	}
	if r.CFloor != nil {
		rows = append(rows, r.CFloor)
	}
	for i := range r.Peers {
		if r.Peers[i].Skipped == "" {
			rows = append(rows, &r.Peers[i].CheckerStats)
		}
	}
	for _, s := range rows {
		onTime, lag50, lag99, lagMax, gor, gc50, gcMax := "-", "-", "-", "-", "-", "-", "-"
		if s.Checker == "director" || s.StartedPerSec > 0 { // the C floor counts its starts too
			onTime = fmt.Sprintf("%.2f%%", 100*s.OnTimeShare)
		}
		if s.Checker == "director" {
			lag50, lag99, lagMax = ms(s.LagP50), ms(s.LagP99), ms(s.LagMax)
			gor = fmt.Sprintf("%.0f", s.Goroutines)
			gc50, gcMax = ms(s.GCPauseP50), ms(s.GCPauseMax)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.1f\t%s\t%s\t%s\t\n",
			s.Checker, s.PlannedPerSec, s.StartedPerSec, s.CompletedPerSec, s.BackendPerSec, s.FailedPerSec,
			s.SkippedPerSec, onTime, lag50, lag99, lagMax, s.CPUPer1000Checks, s.CPUCores,
			float64(s.PeakRSSBytes)/(1<<20), gor, gc50, gcMax)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nthe backends used %.2f cores during the director's window (2-core machines: they compete with it)\n", r.Director.BackendsCPUCores)
	if d := &r.Director; d.SteadyRSSBytes > 0 && r.N > 0 {
		per := func(b int64) float64 { return float64(b) / float64(r.N) / 1024 }
		fmt.Fprintf(w, "director memory: peak RSS %.1f MB, steady RSS %.1f MB, live heap %.1f MB (end of window, after a GC); per real server %.1f / %.1f / %.1f KB\n",
			float64(d.PeakRSSBytes)/(1<<20), float64(d.SteadyRSSBytes)/(1<<20), float64(d.LiveHeapBytes)/(1<<20),
			per(d.PeakRSSBytes), per(d.SteadyRSSBytes), per(d.LiveHeapBytes))
	}
	if r.Ratio > 0 {
		fmt.Fprintf(w, "director ÷ floor, CPU per check: %.2f×\n", r.Ratio)
	}
	if r.CRatio > 0 {
		fmt.Fprintf(w, "director ÷ C floor, CPU per check: %.2f×\n", r.CRatio)
		if r.Ratio > 0 {
			fmt.Fprintf(w, "Go floor ÷ C floor, CPU per check: %.2f×\n", r.CRatio/r.Ratio)
		}
	}
	if r.CFloorSkipped != "" {
		fmt.Fprintf(w, "C floor skipped: %s\n", r.CFloorSkipped)
	}
	r.printPeers(w)
	if st := r.Storm; st != nil {
		fmt.Fprintf(w, "\nfailure storm: %d backends killed at once, %d detected; bound interval+(fall−1)×step+timeout+100ms = %s\n",
			st.Killed, st.Detected, sec(st.BoundSeconds))
		if st.RetryIntervalSeconds > 0 {
			fmt.Fprintf(w, "  retry_interval %s: the fall−1 confirming runs come after it, not after the interval\n", sec(st.RetryIntervalSeconds))
		}
		fmt.Fprintf(w, "  detection latency mean %s (expected interval/2+(fall−1)×step = %s)\n", sec(st.LatencyMean), sec(st.ExpectedMeanSeconds))
		fmt.Fprintf(w, "  detection latency p50 %s  p99 %s  max %s; minus interval+(fall−1)×step: p50 %s  p99 %s  max %s\n",
			sec(st.LatencyP50), sec(st.LatencyP99), sec(st.LatencyMax), sec(st.OverheadP50), sec(st.OverheadP99), sec(st.OverheadMax))
		fmt.Fprintf(w, "  all %d table changes applied %s after the kill; %.1f%% detected within the bound\n",
			st.Killed, sec(st.AllAppliedSeconds), 100*st.WithinBound)
	}
}

// PrintReconcile writes the reconcile figures.
func (s *ReconcileStats) Print(w io.Writer) {
	fmt.Fprintf(w, "reconcile on the %s table: %d destinations over %d services\n", s.Table, s.Destinations, s.Services)
	fmt.Fprintf(w, "  program from empty:   %s wall, %s CPU, %d operations\n", sec(s.ProgramSeconds), sec(s.ProgramCPU), s.ProgramOps)
	fmt.Fprintf(w, "  diff unchanged table: %s wall, %s CPU\n", sec(s.DiffSeconds), sec(s.DiffCPU))
	fmt.Fprintf(w, "  resync (read + diff): %s wall\n", sec(s.ResyncSeconds))
	fmt.Fprintf(w, "  apply %d weight changes: %s wall, %s CPU, %d operations\n", s.Changes, sec(s.ChangeSeconds), sec(s.ChangeCPU), s.ChangeOps)
}

func ms(s float64) string { return fmt.Sprintf("%.1fms", s*1000) }

func sec(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.1fms", s*1000)
	}
	return fmt.Sprintf("%.2fs", s)
}
