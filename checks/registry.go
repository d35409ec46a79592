package checks

import (
	"slices"
	"strconv"
	"strings"
)

// registry is every kind of check, in the order messages list them. It is
// the one place a prober is registered: the config's keys, its did-you-mean
// hints and its "only used by" messages all come from here.
var registry = []Kind{
	httpKind,
	httpsKind,
	tcpKind,
	udpKind,
	icmpKind,
	dnsKind,
	grpcKind,
	dialogueKind,
	mysqlKind,
	postgresqlKind,
	ldapKind,
	radiusKind,
	execKind,
	sipKind,
	noneKind,
}

// Kind is one kind of check: its name in the config's type key, the option
// keys it reads, how it decodes and validates them, and how it builds its
// prober.
type Kind struct {
	Name string
	// Foreign maps other tools' names for this kind ("http_get") to whose
	// name it is ("keepalived's HTTP_GET"), for hints on a wrong type.
	Foreign map[string]string
	// Keys are the option keys Decode may read, besides the keys every
	// check has (type, interval, timeout, rise, fall, port, address,
	// source), which the config reads itself.
	Keys []Key
	// NoPort says the kind checks an address, not a port (icmp).
	NoPort bool
	// PerServer says the kind's checks depend on whom they are for
	// (Spec.VirtualServer and RealServer), so checks alike in all else
	// are not shared between servers.
	PerServer bool
	// DataPath says the kind can probe through the data path of a DR or
	// TUN service (datapath = true): it connects with dial or
	// dialNetwork, which then go through Spec.DataPath.
	DataPath bool
	// Zero is the kind's options with every key left out; a Spec whose
	// Options is nil has these.
	Zero Options
	// Decode reads the kind's options. It reports what it can judge
	// while reading (a file it cannot read, an empty list) through d;
	// the rest is Options.Validate's, which the config runs afterwards.
	Decode func(d Decoder) Options
	// build makes the prober of a spec whose Options are this kind's and
	// have passed Validate. The prober keeps the pointer: the spec is
	// one per check, shared with the caller (Shared.NewFor).
	build func(*Spec, *Shared) (Prober, error)
}

// Key is one option key of a kind.
type Key struct {
	Name string
	// When qualifies the key when the kind reads it only in some cases
	// ("with tls = true"); messages about where it may be used say so.
	When string
	// Note is added to messages about where the key may be used
	// ("https checks always use TLS").
	Note string
}

// Decoder is how a Kind reads its options from a configuration. The config
// package implements it over the check's tables, so that every problem
// names the file, line and key; a key may come from the virtual server's
// check or from [defaults.check]. Each getter reports a value of the wrong
// type itself and returns ok=false when the key is absent or unusable.
type Decoder interface {
	String(key string) (string, bool)
	Bool(key string) (bool, bool)
	// Int reads an integer in [min, max]; a value outside is reported
	// with what ending the message ("max_body_bytes must be 1-1073741824").
	Int(key string, min, max int64, what string) (int64, bool)
	Strings(key string) ([]string, bool)
	// StringTable reads a table of strings. Entries are judged in name
	// order: a value that is not a string is reported as "<what> must be
	// strings", then check returns the problem with an entry or "".
	// Entries with a problem are reported and left out.
	StringTable(key, what string, check func(name, value string) string) (map[string]string, bool)
	// Tables reads an array of tables, such as dialogue's steps: each
	// entry comes with a Decoder of its own whose messages name the entry
	// ("steps[1].expect"). keys are the keys an entry may hold; any other
	// is reported and ignored.
	Tables(key string, keys []string) ([]Decoder, bool)
	// File reads a file name, made absolute against the directory of the
	// configuration file; an empty name is reported.
	File(key string) (string, bool)
	// Errorf reports a problem with the value of key.
	Errorf(key, format string, a ...any)
	// Unused says keys are not used with the options as they are (tcp's
	// ca_file without tls): setting them in the virtual server's own
	// check is an error; inheriting them from [defaults.check] is not.
	Unused(keys ...string)
}

// Options are the settings of one kind of check, beyond the target and
// timing every check has. Values are treated as immutable: specs that share
// them are copied freely.
type Options interface {
	// Validate returns every problem with the options, or nil.
	Validate() []OptionError
	// Canonical renders every option, defaults applied, in a fixed order
	// and unambiguously: options that check the same thing give the same
	// text, any other change gives another. Spec.Key digests it.
	Canonical() string
	// Describe is a short human form of a check of s with these options,
	// such as "http://10.0.0.11:8080/healthz".
	Describe(s Spec) string
}

// OptionError is a problem with one option, named as the config spells it.
type OptionError struct {
	Key string
	// Entry is the entry of a table option at fault ("X-Probe" of
	// headers), or "".
	Entry string
	// Index, when above 0, is the entry at fault of an array-of-tables
	// option, counted from 1 (steps[0] is 1); Entry then names a key of
	// that entry, or is "" for the entry as a whole.
	Index int
	// With names the other options the problem involves; empty when the
	// value is wrong on its own. The config judges such problems only on
	// the merged options of a virtual server, not on [defaults.check].
	With []string
	Msg  string
}

func (e OptionError) Error() string { return e.Path() + ": " + e.Msg }

// Path names the option at fault as the config spells it: "expect", or
// "steps[1].expect" for a key of an array-of-tables entry.
func (e OptionError) Path() string {
	if e.Index <= 0 {
		return e.Key
	}
	p := e.Key + "[" + strconv.Itoa(e.Index-1) + "]"
	if e.Entry != "" {
		p += "." + e.Entry
	}
	return p
}

// Kinds returns every registered kind, in registry order.
func Kinds() []Kind { return slices.Clone(registry) }

// LookupKind returns the kind named name.
func LookupKind(name string) (Kind, bool) {
	for _, k := range registry {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// KindNames lists the kinds' names in registry order.
func KindNames() []string {
	names := make([]string, len(registry))
	for i, k := range registry {
		names[i] = k.Name
	}
	return names
}

// OptionKeys lists every kind's option keys once, in registry order.
func OptionKeys() []string {
	var keys []string
	for _, k := range registry {
		for _, key := range k.Keys {
			if !slices.Contains(keys, key.Name) {
				keys = append(keys, key.Name)
			}
		}
	}
	return keys
}

// Reads reports whether k reads the option key at all.
func (k Kind) Reads(key string) bool {
	return slices.ContainsFunc(k.Keys, func(x Key) bool { return x.Name == key })
}

// UsedBy says which checks use the option key, for "<key> is only used by
// ..." messages: "http and https checks", "https checks and tcp and grpc
// checks with tls = true", "tcp and grpc checks (https checks always use
// TLS)".
func UsedBy(key string) string {
	type group struct {
		names []string
		when  string
	}
	var groups []group
	var notes []string
	for _, k := range registry {
		i := slices.IndexFunc(k.Keys, func(x Key) bool { return x.Name == key })
		if i < 0 {
			continue
		}
		x := k.Keys[i]
		// Kinds that use the key alike go together, wherever they are.
		if g := slices.IndexFunc(groups, func(g group) bool { return g.when == x.When }); g >= 0 {
			groups[g].names = append(groups[g].names, k.Name)
		} else {
			groups = append(groups, group{[]string{k.Name}, x.When})
		}
		if x.Note != "" && !slices.Contains(notes, x.Note) {
			notes = append(notes, x.Note)
		}
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = andList(g.names) + " checks"
		if g.when != "" {
			parts[i] += " " + g.when
		}
	}
	s := strings.Join(parts, " and ")
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

// DataPathKinds lists the kinds that can probe through the data path:
// "http, https, tcp and dialogue checks".
func DataPathKinds() string {
	var names []string
	for _, k := range registry {
		if k.DataPath {
			names = append(names, k.Name)
		}
	}
	return andList(names) + " checks"
}

// PortlessKinds lists the kinds that check an address without a port, for
// "port is not used by ..." messages: "icmp checks".
func PortlessKinds() string {
	var names []string
	for _, k := range registry {
		if k.NoPort {
			names = append(names, k.Name)
		}
	}
	return andList(names) + " checks"
}

// orList renders names as "a, b, c or d"; andList as "a, b and c".
func orList(names []string) string  { return joinLast(names, " or ") }
func andList(names []string) string { return joinLast(names, " and ") }

func joinLast(names []string, last string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + last + names[len(names)-1]
}
