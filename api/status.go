package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/lvsdirector/director/engine"
	"github.com/lvsdirector/director/health"
	"github.com/lvsdirector/director/ipvs"
)

// StatusVersion is the schema version of GET /api/v1/status. Fields are
// only ever added within a version; a rename or removal is a new version
// on a new path.
const StatusVersion = "v1"

// StatusV1 is the body of GET /api/v1/status. Times are RFC 3339 in UTC;
// durations are seconds as numbers; absent times are null.
type StatusV1 struct {
	Version        string            `json:"version"` // always "v1"
	GeneratedAt    time.Time         `json:"generated_at"`
	Director       DirectorV1        `json:"director"`
	VirtualServers []VirtualServerV1 `json:"virtual_servers"`
	Events         []EventV1         `json:"events"` // recent transitions, newest first
	Announce       *AnnounceV1       `json:"announce,omitempty"`
	// VRRP is the director's part in an active-backup pair (vrrp.go);
	// absent without [vrrp].
	VRRP *VRRPV1 `json:"vrrp,omitempty"`
}

// DirectorV1 describes the running director.
type DirectorV1 struct {
	Version      string `json:"version"`
	Ready        bool   `json:"ready"` // the kernel table has been reconciled without errors
	ConfigPath   string `json:"config_path"`
	ConfigSHA256 string `json:"config_sha256"`
	// KernelError is set when this request's read of the kernel table failed.
	KernelError string `json:"kernel_error,omitempty"`
	// WriteAPI: the write endpoints are on (api_token_file is set).
	WriteAPI bool `json:"write_api"`
}

// ServiceV1 is a virtual service's kernel settings.
type ServiceV1 struct {
	Family             string `json:"family"`             // "ipv4" | "ipv6"
	Protocol           string `json:"protocol,omitempty"` // "tcp" | "udp" | "sctp"; absent for fwmark
	Address            string `json:"address,omitempty"`  // "ip:port"; absent for fwmark
	FWMark             uint32 `json:"fwmark,omitempty"`
	Scheduler          string `json:"scheduler"`
	PersistenceSeconds uint64 `json:"persistence_seconds"` // 0: not persistent
	PersistenceNetmask uint8  `json:"persistence_netmask"`
	SchedulerFlags     uint8  `json:"scheduler_flags,omitempty"` // the kernel's flag bits 1..3 (mh/sh: 1 fallback, 2 port)
	OnePacket          bool   `json:"ops,omitempty"`
}

// CountersV1 are the kernel's counters as of the director's last table read.
type CountersV1 struct {
	Connections uint64 `json:"connections"`
	PacketsIn   uint64 `json:"packets_in"`
	PacketsOut  uint64 `json:"packets_out"`
	BytesIn     uint64 `json:"bytes_in"`
	BytesOut    uint64 `json:"bytes_out"`
	// Destinations only.
	ActiveConnections     uint32 `json:"active_connections"`
	InactiveConnections   uint32 `json:"inactive_connections"`
	PersistentConnections uint32 `json:"persistent_connections"`
}

// VirtualServerV1 is one configured virtual service.
type VirtualServerV1 struct {
	Name string `json:"name"`
	// Group is the [[virtual_server]] name of a group member (whose own
	// name is "NAME@MEMBER"); absent otherwise.
	Group          string         `json:"group,omitempty"`
	Service        ServiceV1      `json:"service"`
	Forwarding     string         `json:"forwarding"` // "nat" | "dr" | "tun"
	OnFailure      string         `json:"on_failure"` // "quiesce" | "remove"
	Check          string         `json:"check"`      // check type
	Fallback       string         `json:"fallback,omitempty"`
	FallbackActive bool           `json:"fallback_active"`
	InKernel       bool           `json:"in_kernel"`
	RealServersUp  int            `json:"real_servers_up"` // health only: up whatever holds it out; see pool
	Pool           PoolV1         `json:"pool"`
	Counters       CountersV1     `json:"counters"`
	RealServers    []RealServerV1 `json:"real_servers"`
	// Quorum: the fallback takes over while healthy_weight (the configured
	// weights of the serving real servers, summed) is below quorum, with
	// hysteresis.
	Quorum        uint64 `json:"quorum"`
	Hysteresis    uint64 `json:"hysteresis"`
	HealthyWeight uint64 `json:"healthy_weight"`
	QuorumLost    bool   `json:"quorum_lost"`
	// Panic guard: panic_threshold 0 is off.
	PanicThreshold float64    `json:"panic_threshold"`
	Panic          bool       `json:"panic"`
	PanicSince     *time.Time `json:"panic_since"`
}

// PoolV1 counts a virtual server's real servers by what the kernel gets
// from them: each server is in exactly one class, the first that applies
// in this order, so the classes add up to total.
type PoolV1 struct {
	Disabled int `json:"disabled"` // an operator's disable: not in the table
	Drained  int `json:"drained"`  // an operator's drain: weight 0, kept
	Draining int `json:"draining"` // leaving the config: weight 0 until its connections end
	Serving  int `json:"serving"`  // in the table with a weight above 0: gets new connections
	Damped   int `json:"damped"`   // held out by flap damping though its checks pass
	Down     int `json:"down"`     // failed its checks: weight 0 or not in the table
	Unknown  int `json:"unknown"`  // no verdict yet: weight 0 or not in the table
	Idle     int `json:"idle"`     // up and not held out, yet no weight in the table (quorum lost to the fallback, weight 0 configured)
	Total    int `json:"total"`
}

// Summary says it in a few words: "1/3 serving (1 drained, 1 disabled)".
func (p PoolV1) Summary() string {
	s := fmt.Sprintf("%d/%d serving", p.Serving, p.Total)
	var rest []string
	for _, c := range []struct {
		n    int
		name string
	}{{p.Drained, "drained"}, {p.Disabled, "disabled"}, {p.Draining, "draining"}, {p.Damped, "damped"},
		{p.Down, "down"}, {p.Unknown, "unknown"}, {p.Idle, "idle"}} {
		if c.n > 0 {
			rest = append(rest, fmt.Sprintf("%d %s", c.n, c.name))
		}
	}
	if len(rest) > 0 {
		s += " (" + strings.Join(rest, ", ") + ")"
	}
	return s
}

// poolClass puts one real server in its PoolV1 class.
func poolClass(p *PoolV1, rs engine.RealServerStatus) {
	p.Total++
	switch {
	case rs.Override != nil && rs.Override.Kind == "disable":
		p.Disabled++
	case rs.Override != nil && rs.Override.Kind == "drain":
		p.Drained++
	case rs.State == health.Draining:
		p.Draining++
	case rs.ProgrammedWeight > 0: // the kernel sends it traffic, even a down one the panic guard holds
		p.Serving++
	case rs.Suppressed:
		p.Damped++
	case rs.State == health.Down:
		p.Down++
	case rs.State == health.Unknown:
		p.Unknown++
	default:
		p.Idle++
	}
}

// RealServerV1 is one real server of a virtual service.
type RealServerV1 struct {
	Address              string          `json:"address"`
	Forwarding           string          `json:"forwarding"`
	State                string          `json:"state"` // "unknown" | "up" | "down" (more may be added)
	Since                time.Time       `json:"since"` // last state change
	ConfiguredWeight     uint32          `json:"configured_weight"`
	ProgrammedWeight     *int64          `json:"programmed_weight"` // null: not in the kernel table
	Check                string          `json:"check"`             // the check, described ("A + B" for several)
	Checks               []CheckV1       `json:"checks"`            // each check, in the config's order; all must pass
	ConsecutiveFailures  int             `json:"consecutive_failures"`
	ConsecutiveSuccesses int             `json:"consecutive_successes"`
	LastCheck            *CheckResultV1  `json:"last_check"`
	LastSuccess          *time.Time      `json:"last_success"`
	LastFailure          *time.Time      `json:"last_failure"`
	History              []CheckResultV1 `json:"history"` // newest first
	Counters             CountersV1      `json:"counters"`
	Override             *OverrideV1     `json:"override"`         // an operator's hold; null: none
	FlapPenalty          float64         `json:"flap_penalty"`     // flap damping
	Suppressed           bool            `json:"suppressed"`       // flap damping holds it out
	SuppressedUntil      *time.Time      `json:"suppressed_until"` // when the penalty decays below flap_reuse
	HeldByPanic          bool            `json:"held_by_panic"`    // the panic guard keeps it in
	SlowStart            *SlowStartV1    `json:"slow_start"`       // its ramp while in slow start; null otherwise
}

// SlowStartV1 is a real server's slow start in progress: its weight
// ramps to target_weight between since and until.
type SlowStartV1 struct {
	Since        time.Time `json:"since"`
	Until        time.Time `json:"until"`
	Weight       uint32    `json:"weight"`        // the ramp's weight now
	TargetWeight uint32    `json:"target_weight"` // configured, or the check's
	Percent      int       `json:"percent"`       // weight as a share of target_weight, rounded down
}

// OverrideV1 is an operator's hold on a real server.
type OverrideV1 struct {
	Kind    string     `json:"kind"`   // "drain" (weight 0, kept) | "disable" (removed)
	Reason  string     `json:"reason"` // as the operator gave it
	Source  string     `json:"source"` // "api" | "maintenance_dir"
	By      string     `json:"by"`     // api: the client's address; maintenance_dir: the file
	Since   time.Time  `json:"since"`
	Expires *time.Time `json:"expires"` // null: until removed
}

func overrideV1(o engine.Override) OverrideV1 {
	return OverrideV1{Kind: o.Kind, Reason: o.Reason, Source: o.Source, By: o.By, Since: o.Since.UTC(), Expires: optTime(o.Expires)}
}

// CheckResultV1 is one completed check.
type CheckResultV1 struct {
	Time            time.Time `json:"time"`
	OK              bool      `json:"ok"`
	Reason          string    `json:"reason,omitempty"` // "timeout", "refused", "status 503", ...
	DurationSeconds float64   `json:"duration_seconds"`
	Check           string    `json:"check,omitempty"` // the check's name, in the history of a server with several
}

// CheckV1 is one check of a real server, with its own verdict.
type CheckV1 struct {
	Name                 string         `json:"name"`
	Check                string         `json:"check"` // described
	State                string         `json:"state"` // "unknown" | "up" | "down"
	ConsecutiveFailures  int            `json:"consecutive_failures"`
	ConsecutiveSuccesses int            `json:"consecutive_successes"`
	LastCheck            *CheckResultV1 `json:"last_check"`
}

// EventV1 is one state change.
type EventV1 struct {
	Time          time.Time       `json:"time"`
	VirtualServer string          `json:"virtual_server"`
	RealServer    string          `json:"real_server"`
	From          string          `json:"from"`
	To            string          `json:"to"`
	Reason        string          `json:"reason"`
	Check         string          `json:"check"`
	Recent        []CheckResultV1 `json:"recent"` // newest first
}

func statusV1(st engine.Status, version string) StatusV1 {
	out := StatusV1{
		Version:     StatusVersion,
		GeneratedAt: st.Time.UTC(),
		Director: DirectorV1{
			Version: version, Ready: st.Ready, ConfigPath: st.ConfigPath, ConfigSHA256: st.ConfigSHA256,
		},
		VirtualServers: []VirtualServerV1{},
		Events:         []EventV1{},
	}
	for _, vs := range st.VirtualServers {
		v := VirtualServerV1{
			Name: vs.Name, Group: vs.Group, Service: serviceV1(vs.Service), Forwarding: vs.Forwarding,
			OnFailure: vs.OnFailure, Check: vs.Check, FallbackActive: vs.FallbackActive,
			InKernel: vs.InKernel, Counters: countersV1(vs.Counters), RealServers: []RealServerV1{},
			Quorum: vs.Quorum, Hysteresis: vs.Hysteresis, HealthyWeight: vs.HealthyWeight, QuorumLost: vs.QuorumLost,
			PanicThreshold: vs.PanicThreshold, Panic: vs.Panic, PanicSince: optTime(vs.PanicSince),
		}
		if vs.Fallback.IsValid() {
			v.Fallback = vs.Fallback.String()
		}
		for _, rs := range vs.RealServers {
			r := RealServerV1{
				Address: rs.Address.String(), Forwarding: rs.Forwarding, State: rs.State.String(),
				Since: rs.Since.UTC(), ConfiguredWeight: rs.ConfiguredWeight, Check: rs.Check,
				ConsecutiveFailures: rs.ConsecutiveFailures, ConsecutiveSuccesses: rs.ConsecutiveSuccesses,
				LastSuccess: optTime(rs.LastSuccess), LastFailure: optTime(rs.LastFailure),
				History: resultsV1(rs.History), Counters: countersV1(rs.Counters),
				FlapPenalty: float64(int64(rs.FlapPenalty*10)) / 10, Suppressed: rs.Suppressed,
				SuppressedUntil: optTime(rs.SuppressedUntil), HeldByPanic: rs.HeldByPanic,
			}
			if rs.Override != nil {
				o := overrideV1(*rs.Override)
				r.Override = &o
			}
			if ss := rs.SlowStart; ss != nil {
				r.SlowStart = &SlowStartV1{Since: ss.Since.UTC(), Until: ss.Until.UTC(), Weight: ss.Weight, TargetWeight: ss.Target}
				if ss.Target > 0 {
					r.SlowStart.Percent = int(uint64(ss.Weight) * 100 / uint64(ss.Target))
				}
			}
			if rs.ProgrammedWeight >= 0 {
				w := rs.ProgrammedWeight
				r.ProgrammedWeight = &w
			}
			if rs.Last != nil {
				c := resultV1(*rs.Last)
				r.LastCheck = &c
			}
			r.Checks = make([]CheckV1, len(rs.Checks))
			for k, c := range rs.Checks {
				r.Checks[k] = CheckV1{Name: c.Name, Check: c.Check, State: c.State.String(),
					ConsecutiveFailures: c.ConsecutiveFailures, ConsecutiveSuccesses: c.ConsecutiveSuccesses}
				if c.Last != nil {
					last := resultV1(*c.Last)
					r.Checks[k].LastCheck = &last
				}
			}
			if r.State == "up" {
				v.RealServersUp++
			}
			poolClass(&v.Pool, rs)
			v.RealServers = append(v.RealServers, r)
		}
		out.VirtualServers = append(out.VirtualServers, v)
	}
	for i := len(st.Events) - 1; i >= 0; i-- {
		ev := st.Events[i]
		out.Events = append(out.Events, EventV1{
			Time: ev.Time.UTC(), VirtualServer: ev.VirtualServer, RealServer: ev.RealServer.String(),
			From: ev.From.String(), To: ev.To.String(), Reason: ev.Reason, Check: ev.Check,
			Recent: resultsV1(ev.Recent),
		})
	}
	return out
}

func serviceV1(s ipvs.Service) ServiceV1 {
	out := ServiceV1{
		Family: s.Key.Family.String(), Scheduler: s.Scheduler,
		PersistenceSeconds: uint64(s.Persistence / time.Second), PersistenceNetmask: s.PersistenceNetmask,
		SchedulerFlags: s.SchedulerFlags, OnePacket: s.OnePacket,
	}
	if s.Key.FWMark != 0 {
		out.FWMark = s.Key.FWMark
	} else {
		out.Protocol = s.Key.Protocol.String()
		out.Address = s.Key.Address.String()
	}
	return out
}

func countersV1(c ipvs.Counters) CountersV1 {
	return CountersV1{
		Connections: c.Connections, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut,
		BytesIn: c.BytesIn, BytesOut: c.BytesOut, ActiveConnections: c.ActiveConns,
		InactiveConnections: c.InactiveConns, PersistentConnections: c.PersistentConns,
	}
}

func resultV1(r engine.CheckResult) CheckResultV1 {
	return CheckResultV1{Time: r.Time.UTC(), OK: r.OK, Reason: r.Reason, DurationSeconds: r.Duration.Seconds(), Check: r.Check}
}

// resultsV1 converts oldest-first results to newest first, the order a
// reader scans.
func resultsV1(rs []engine.CheckResult) []CheckResultV1 {
	out := make([]CheckResultV1, 0, len(rs))
	for i := len(rs) - 1; i >= 0; i-- {
		out = append(out, resultV1(rs[i]))
	}
	return out
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
