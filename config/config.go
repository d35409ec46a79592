// Package config reads and validates the director's TOML configuration.
// Load returns either a fully validated Config or every problem found,
// each naming the file, line and key.
package config

import (
	"net/netip"
	"time"

	"github.com/lvsdirector/director/checks"
)

// Config is a validated configuration with all defaults applied.
type Config struct {
	Path string
	// SHA256 is the hex SHA-256 of the file's bytes, so operators can tell
	// which config a director runs (metrics, status API).
	SHA256   string
	Director Director
	// Notify is [director]'s notify_command, notify_url and
	// notify_timeout: the default for every virtual server.
	Notify         Notify
	VirtualServers []VirtualServer
	// Announce is [announce]; BGP and RouteTable are nil without their
	// sections (see Announcing).
	Announce   Announce
	BGP        *BGP
	RouteTable *RouteTable
	// VRRP is [vrrp] (vrrp.go); nil without it.
	VRRP *VRRP
	// Email is [notify.email] (email.go); nil without it.
	Email *Email
	// Warnings are non-fatal findings (for example a virtual server with
	// no real servers), sorted by line. `director check` should print them.
	Warnings []Problem
}

// MaxMaxConnections bounds max_connections: more could never be served
// within any sane open-file limit.
const MaxMaxConnections = 1 << 20

// Director holds the [director] table.
type Director struct {
	Listen string // default "127.0.0.1:9410"
	// MaxConnections caps the listener's concurrent connections; 0 (not
	// set) derives the cap from the open-file limit at start
	// (api.ConnectionCap). Takes effect on restart.
	MaxConnections int
	ResyncInterval time.Duration // default 30s
	OnFailure      string        // "quiesce" (default) | "remove"
	OnShutdown     string        // "keep" (default) | "flush"
	// DrainTimeout bounds how long a real server that left the config is
	// kept at weight 0 waiting for its connections to end; default 5m, 0
	// deletes at once.
	DrainTimeout time.Duration
	// SlowStart is the default of every virtual server's; 0 is off.
	SlowStart time.Duration
	// WatchConfig reloads when the config file changes, as SIGHUP does.
	WatchConfig bool
	// FastChecks runs plain TCP-connect and HTTP status checks on one
	// event loop per CPU (checks.FastLoop) instead of a goroutine each;
	// default true: at 20,000 servers it checks less often rather than
	// failing healthy servers, where the usual path failed some
	// (docs/performance.md). Takes effect on restart.
	FastChecks bool
	// KernelStats is which kernel IPVS counters /metrics exports:
	// "backends" (default: services and every real server), "services"
	// (services only: for directors with thousands of real servers) or
	// "off".
	KernelStats string
	// MaintenanceDir holds files that force real servers out (README,
	// "Admin overrides"); "" when off.
	MaintenanceDir string
	// APITokenFile names the file with the write API's bearer token; ""
	// turns the write API off. APIToken is its content, read at load
	// ("" when the file is missing or empty: a warning, not an error).
	// The running director reads the file again every second
	// (internal/apitoken), so APIToken is only the token at load.
	APITokenFile string
	APIToken     string
	// StateFile keeps API overrides and the managed services across
	// restarts; "" means DefaultStateFile (or a temporary file with
	// -dry-run).
	StateFile string
	// PanicThreshold is the default of every virtual server's; 0 is off.
	PanicThreshold float64
	Damping        Damping
}

// VirtualServer is one [[virtual_server]] with defaults applied.
type VirtualServer struct {
	// Name is the written name; for a member of a group (addresses or
	// fwmarks) it is "NAME@MEMBER", such as "web@192.0.2.10:80" or
	// "web@fwmark10", and Group is the written name ("" otherwise).
	Name  string
	Group string
	// Either Address (with Protocol) or FWMark (with Family) is set.
	Address   netip.AddrPort
	FWMark    uint32
	Family    string // "ipv4" | "ipv6", derived from Address when not a fwmark service
	Protocol  string // "tcp" (default) | "udp" | "sctp"; empty for fwmark
	Scheduler string // default "wlc"
	// SchedulerFlags are the scheduler's options, by name: mh-fallback,
	// mh-port (mh), sh-fallback, sh-port (sh). OnePacket is one-packet
	// scheduling (ipvsadm --ops), UDP only.
	SchedulerFlags     []string
	OnePacket          bool
	Persistence        time.Duration
	PersistenceNetmask uint8  // prefix length; default 32 (ipv4) / 128 (ipv6)
	Forwarding         string // "nat" (default) | "dr" | "tun"
	// Tunnel is tun_type, tun_port, tun_csum: the default of its tun real
	// servers (and the fallback's); zero unless Forwarding is "tun".
	Tunnel    Tunnel
	OnFailure string         // inherited from [director] unless set here
	Fallback  netip.AddrPort // zero when none
	// DrainTimeout is [director] drain_timeout unless set here; UDP
	// services default to 0 (delete at once), see README "Graceful drain".
	DrainTimeout time.Duration
	// SlowStart: a real server that starts serving again gets its weight
	// in steps over this long (policy/slowstart); 0 is off. [director]'s
	// unless set here.
	SlowStart time.Duration
	Notify    Notify // [director]'s, with this server's notify_command / notify_url
	// Quorum is the healthy weight (sum of the weights of real servers
	// that are up) below which the fallback takes over; Hysteresis widens
	// it both ways (keepalived's quorum and hysteresis). Default 1 and 0.
	Quorum     uint64
	Hysteresis uint64
	// PanicThreshold: when more than this share of the real servers goes
	// down within one check round, the pool is kept as it is (panic
	// guard). 0 is off; [director]'s unless set here.
	PanicThreshold float64
	// Announce says whether and how the VIP is announced ([bgp],
	// [route_table]).
	Announce VIPAnnounce
	// Checks are [[virtual_server.check]] in the order written (one
	// table is one check; none is one tcp check), each with
	// [defaults.check] merged in. A real server passes only while all of
	// its checks pass (ChecksOf).
	Checks      []Check
	RealServers []RealServer
	Line        int // line of the [[virtual_server]] header, for messages
}

// RealServer is one [[virtual_server.real_server]].
type RealServer struct {
	Address    netip.AddrPort // for fwmark services the port may be 0
	Weight     uint32         // default 1
	Forwarding string         // inherited from the virtual server unless set
	// Checks are this real server's checks when it has
	// [[virtual_server.real_server.check]] entries: the virtual server's,
	// each overridden by the entry of its name, then the entries that add
	// a check. nil: the virtual server's (VirtualServer.ChecksOf).
	Checks []Check
	Tunnel Tunnel // zero unless Forwarding is "tun"
	Line   int
}

// Check is a check with [defaults.check] merged in. Port and Address
// override the target (the real server's) when set. VirtualServer.CheckSpec
// aims it at one real server.
type Check struct {
	Type string // a kind of the prober registry (checks.KindNames); default "tcp"
	// Name tells a server's checks apart (status, logs, and which of the
	// virtual server's checks a real server's entry overrides); default
	// the type.
	Name     string
	Interval time.Duration
	// Timeout bounds one run; it may exceed Interval (runs never overlap).
	Timeout time.Duration
	// RetryInterval, when above 0, replaces Interval after a failure until
	// the check passes or has failed Fall times in a row.
	RetryInterval time.Duration
	Rise          int
	Fall          int

	Port    uint16     // 0: the real server's port
	Address netip.Addr // zero: the real server's address
	Source  netip.Addr // zero: let the kernel choose
	// DataPath probes through the data path of a dr or tun service
	// (datapath = true): addressed to the VIP, delivered to the real
	// server, from the director's probe namespace, which takes Source
	// as its address (checks.Spec.DataPath, package datapath).
	DataPath bool

	// Options are the type's own settings, decoded and validated by its
	// prober (checks.HTTPOptions for http and https, checks.TCPOptions,
	// checks.ICMPOptions); keys left out have the prober's defaults.
	Options checks.Options
}
