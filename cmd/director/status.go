package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lvsdirector/director/api"
)

// statusCmd prints a running director's status like ipvsadm -Ln, with
// health columns, from its /api/v1/status.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://"+defaultListen, "the director's listen address (director.listen), as a URL or host:port")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	asJSON := fs.Bool("json", false, "print the raw /api/v1/status JSON")
	only := fs.String("virtual-server", "", "show only this virtual server")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	base := strings.TrimSuffix(*addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	target := base + "/api/v1/status"
	if *only != "" {
		target += "?virtual_server=" + url.QueryEscape(*only)
	}
	body, err := fetchStatus(ctx, target)
	if err != nil {
		fmt.Fprintf(stderr, "director status: %v\n(is the director running, and is -addr its director.listen address?)\n", err)
		return 1
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var st api.StatusV1
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(stderr, "director status: %s/api/v1/status: not a status document: %v\n", base, err)
		return 1
	}
	if st.Version != api.StatusVersion {
		fmt.Fprintf(stderr, "director status: the director speaks status %q, this client %q; output may be incomplete\n", st.Version, api.StatusVersion)
	}
	printStatus(stdout, st, time.Now())
	return 0
}

// defaultListen mirrors config.DefaultListen without loading a config.
const defaultListen = "127.0.0.1:9410"

// maxStatusBody caps the status read: 10,000 real servers are ~25 MB of
// JSON, so this is room for ~50,000, and keeps a wrong address from
// filling memory.
const maxStatusBody = 128 << 20

// fetchStatus gets the status; a busy director (503) is asked again after
// its Retry-After while the deadline allows.
func fetchStatus(ctx context.Context, target string) ([]byte, error) {
	for {
		body, retry, err := fetchStatusOnce(ctx, target)
		if retry <= 0 {
			return body, err
		}
		select {
		case <-time.After(retry):
		case <-ctx.Done():
			return nil, err
		}
	}
}

// fetchStatusOnce is one request; retry > 0 says when to try again.
func fetchStatusOnce(ctx context.Context, target string) (body []byte, retry time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, fmt.Errorf("%s: no answer within the timeout", target)
		}
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxStatusBody+1))
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("%s: %w", target, err)
	case len(body) > maxStatusBody:
		return nil, 0, fmt.Errorf("%s: the status is larger than %d MiB; ask for one virtual server with -virtual-server", target, maxStatusBody>>20)
	case resp.StatusCode == http.StatusServiceUnavailable:
		err = fmt.Errorf("%s: %s: %s", target, resp.Status, firstLine(body))
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
			return nil, time.Duration(secs) * time.Second, err
		}
		return nil, 0, err
	case resp.StatusCode != http.StatusOK:
		return nil, 0, fmt.Errorf("%s: %s: %s", target, resp.Status, firstLine(body))
	}
	return body, 0, nil
}

// firstLine is the start of an error body, enough to say what went wrong.
func firstLine(body []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}

// forwardNames are ipvsadm -Ln's words for the forwarding methods.
var forwardNames = map[string]string{"nat": "Masq", "dr": "Route", "tun": "Tunnel"}

func printStatus(w io.Writer, st api.StatusV1, now time.Time) {
	ready := "ready"
	if !st.Director.Ready {
		ready = "NOT READY (kernel table not reconciled yet)"
	}
	fmt.Fprintf(w, "director %s, %s, config %s (%.12s)\n", st.Director.Version, ready, st.Director.ConfigPath, st.Director.ConfigSHA256)
	if st.Director.KernelError != "" {
		fmt.Fprintf(w, "warning: %s\n", st.Director.KernelError)
	}
	if st.VRRP != nil {
		printVRRP(w, st.VRRP, now)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Prot LocalAddress:Port\tScheduler\tFlags\t\t\t\tName\t\t")
	fmt.Fprintln(tw, "  -> RemoteAddress:Port\tForward\tWeight\tConfig\tState\tFor\tLast check\tActiveConn\tInActConn")
	for _, vs := range st.VirtualServers {
		svc := fmt.Sprintf("%s %s", strings.ToUpper(vs.Service.Protocol), vs.Service.Address)
		if vs.Service.FWMark != 0 {
			svc = fmt.Sprintf("FWM  %d %s", vs.Service.FWMark, vs.Service.Family)
		}
		var flags []string
		if vs.Service.PersistenceSeconds > 0 {
			flags = append(flags, fmt.Sprintf("persistent %d", vs.Service.PersistenceSeconds))
		}
		if !vs.InKernel {
			flags = append(flags, "NOT IN KERNEL")
		}
		if vs.Panic {
			flags = append(flags, "PANIC")
		}
		if vs.QuorumLost {
			flags = append(flags, fmt.Sprintf("QUORUM LOST %d/%d", vs.HealthyWeight, vs.Quorum))
		}
		pool := vs.Pool.Summary()
		if vs.Pool.Total == 0 && len(vs.RealServers) > 0 {
			pool = fmt.Sprintf("%d/%d up", vs.RealServersUp, len(vs.RealServers)) // a director from before pool
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t%s: %s\t\t\n", svc, vs.Service.Scheduler, strings.Join(flags, ","), vs.Name, pool)
		for _, rs := range vs.RealServers {
			weight := "-"
			if rs.ProgrammedWeight != nil {
				weight = fmt.Sprint(*rs.ProgrammedWeight)
			}
			fmt.Fprintf(tw, "  -> %s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\n", rs.Address, forwardName(rs.Forwarding), weight,
				rs.ConfiguredWeight, stateLabel(rs), since(rs.Since, now), lastCheck(rs), rs.Counters.ActiveConnections, rs.Counters.InactiveConnections)
		}
		if vs.Fallback != "" {
			state := "standby"
			if vs.FallbackActive {
				state = "SERVING"
			}
			fmt.Fprintf(tw, "  -> %s\t%s\t\t\tfallback\t\t%s\t\t\n", vs.Fallback, forwardName(vs.Forwarding), state)
		}
	}
	tw.Flush()
	printAnnounce(w, st.Announce, now)
	printHolds(w, st, now)
	if len(st.Events) > 0 {
		fmt.Fprintln(w, "\nRecent transitions (newest first):")
		for _, ev := range st.Events[:min(len(st.Events), 5)] {
			fmt.Fprintf(w, "  %s ago  %s %s  %s -> %s  %s\n", since(ev.Time, now), ev.VirtualServer, ev.RealServer, ev.From, ev.To, ev.Reason)
		}
	}
}

func forwardName(f string) string {
	if n, ok := forwardNames[f]; ok {
		return n
	}
	return f
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

// lastCheck is the server's last result; of a server with several
// checks, the first failing check's, named ("admin: status 503").
func lastCheck(rs api.RealServerV1) string {
	if len(rs.Checks) > 1 {
		for _, c := range rs.Checks {
			if c.LastCheck != nil && !c.LastCheck.OK {
				return c.Name + ": " + describeResult(c.LastCheck, c.ConsecutiveFailures)
			}
		}
	}
	return describeResult(rs.LastCheck, rs.ConsecutiveFailures)
}

func describeResult(c *api.CheckResultV1, failures int) string {
	if c == nil {
		return "not yet"
	}
	took := time.Duration(c.DurationSeconds * float64(time.Second)).Round(100 * time.Microsecond)
	if c.OK {
		return fmt.Sprintf("ok %s", took)
	}
	if failures > 1 {
		return fmt.Sprintf("%s (%d in a row)", c.Reason, failures)
	}
	return c.Reason
}

// stateLabel is the health state with what overrides it: "up,drain",
// "up,damped", "down,held", or what ramps it: "up,slow start 40%".
func stateLabel(rs api.RealServerV1) string {
	s := rs.State
	if rs.Override != nil {
		s += "," + rs.Override.Kind
	}
	if rs.Suppressed {
		s += ",damped"
	}
	if rs.HeldByPanic {
		s += ",held"
	}
	if rs.SlowStart != nil {
		s += fmt.Sprintf(",slow start %d%%", rs.SlowStart.Percent)
	}
	return s
}

// printHolds lists the overrides and flap suppressions in force, with
// their reasons.
func printHolds(w io.Writer, st api.StatusV1, now time.Time) {
	var lines []string
	for _, vs := range st.VirtualServers {
		for _, rs := range vs.RealServers {
			if o := rs.Override; o != nil {
				until := "until enabled"
				if o.Expires != nil {
					until = "for another " + o.Expires.Sub(now).Round(time.Second).String()
				}
				lines = append(lines, fmt.Sprintf("  %s %s  %s by %s %s, %s: %s", vs.Name, rs.Address, o.Kind, o.Source, o.By, until, o.Reason))
			}
			if rs.Suppressed {
				until := ""
				if rs.SuppressedUntil != nil {
					until = fmt.Sprintf(" for about another %s", rs.SuppressedUntil.Sub(now).Round(time.Second))
				}
				lines = append(lines, fmt.Sprintf("  %s %s  held out by flap damping%s (penalty %.0f)", vs.Name, rs.Address, until, rs.FlapPenalty))
			}
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w, "\nOverrides:")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

// printVRRP prints the pair's state in two lines: the role with each
// instance, then the director's health and the sync daemons.
func printVRRP(w io.Writer, v *api.VRRPV1, now time.Time) {
	var ins []string
	for _, in := range v.Instances {
		s := fmt.Sprintf("%s %s (priority %d", in.Name, in.State, in.Priority)
		if in.Since != nil {
			s += ", for " + since(*in.Since, now)
		}
		ins = append(ins, s+")")
	}
	fmt.Fprintf(w, "VRRP %s: %s\n", v.Role, strings.Join(ins, ", "))
	health := "healthy"
	if !v.Health.Healthy {
		health = "UNHEALTHY (" + v.Health.Reason + ")"
	}
	track := "not written"
	if v.TrackValue != nil {
		track = fmt.Sprint(*v.TrackValue)
	}
	var daemons []string
	for _, d := range v.SyncDaemons {
		daemons = append(daemons, fmt.Sprintf("%s id %d on %s", d.State, d.SyncID, d.Interface))
	}
	if len(daemons) == 0 {
		daemons = []string{"none"}
	}
	fmt.Fprintf(w, "  director %s, track file %s; sync %s: %s\n", health, track, v.SyncMode, strings.Join(daemons, ", "))
	for _, p := range []struct{ what, err string }{{"notify_fifo", v.NotifyFIFOError}, {"track file", v.TrackError}, {"sync daemon", v.SyncError}} {
		if p.err != "" {
			fmt.Fprintf(w, "  warning: %s: %s\n", p.what, p.err)
		}
	}
	if v.LowerPriorityMaster != nil {
		fmt.Fprintf(w, "  warning: two MASTERs on the link %s ago (split brain ending, or the peer came back)\n", since(*v.LowerPriorityMaster, now))
	}
}
