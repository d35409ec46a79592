package config

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lvsdirector/director/checks"
)

// commonCheckKeys are the keys every check has; each kind's own keys come
// from the prober registry (checks.Kinds).
var commonCheckKeys = []string{"type", "name", "interval", "timeout", "retry_interval", "rise", "fall", "port", "address", "source", "datapath"}

// checkKeys is every key a check table may hold, in the order hints list
// them.
var checkKeys = slices.Concat(commonCheckKeys, checks.OptionKeys())

// Built-in check defaults, used where neither [defaults.check] nor the
// virtual server's check sets a value. A kind's options have their own.
const (
	defaultCheckType = "tcp"
	defaultInterval  = 5 * time.Second
	defaultTimeout   = 2 * time.Second
	defaultRise      = 2
	defaultFall      = 3
)

// opt is one check setting as written in one table: Set when present and
// valid, N says where.
type opt[T any] struct {
	V   T
	Set bool
	N   node
}

func set[T any](v T, n node, ok bool) opt[T] { return opt[T]{V: v, Set: ok, N: n} }

// pick returns the first set option (the virtual server's before the
// defaults'), or a zero opt holding dflt.
func pick[T any](dflt T, os ...opt[T]) opt[T] {
	for _, o := range os {
		if o.Set {
			return o
		}
	}
	return opt[T]{V: dflt}
}

// rawCheck is one check table ([defaults.check], one of a virtual
// server's or of a real server's) with each common value checked on its
// own; the kind's options are decoded once the merge knows the type.
type rawCheck struct {
	t             table
	Type          opt[string]
	Name          opt[string]
	Interval      opt[time.Duration]
	Timeout       opt[time.Duration]
	RetryInterval opt[time.Duration]
	Rise, Fall    opt[int]
	Port          opt[uint16]
	Address       opt[netip.Addr]
	Source        opt[netip.Addr]
	DataPath      opt[bool]
}

// present reports whether the table wrote key at all (valid or not).
func (r rawCheck) present(key string) bool { return r.t.m != nil && r.t.has(key) }

// kindAliases maps other tools' names for check types to a hint.
func kindAliases() map[string]string {
	hints := map[string]string{}
	for _, k := range checks.Kinds() {
		for name, whose := range k.Foreign {
			hints[name] = fmt.Sprintf("%s is %q", whose, k.Name)
		}
	}
	return hints
}

func (l *loader) parseCheck(t table, sec section) rawCheck {
	t.unknown(sec)
	r := rawCheck{t: t}
	r.Type = set(t.enum("type", "check type", checks.KindNames(), kindAliases()))
	r.Interval = set(t.positive("interval"))
	r.Timeout = set(t.positive("timeout"))
	r.RetryInterval = set(t.positive("retry_interval"))
	if name, n, ok := t.str("name"); ok {
		switch {
		case sec.name == secDefaultsCheck.name:
			l.errorf(n, "[defaults.check] serves every check and has no name; name the checks of [[virtual_server.check]]")
		case name == "":
			l.errorf(n, "must not be empty")
		default:
			r.Name = set(name, n, true)
		}
	}
	rise, n, ok := t.intRange("rise", 1, 1000, "rise must be 1-1000")
	r.Rise = set(int(rise), n, ok)
	fall, n, ok := t.intRange("fall", 1, 1000, "fall must be 1-1000")
	r.Fall = set(int(fall), n, ok)
	r.Port = set(l.checkPort(t))
	r.Address = set(l.ipOnly(t, "address"))
	r.Source = set(l.ipOnly(t, "source"))
	r.DataPath = set(t.boolean("datapath"))
	if r.DataPath.Set && sec.name == secDefaultsCheck.name {
		l.errorf(r.DataPath.N, "datapath belongs in a virtual server's check (or a real server's), not [defaults.check]: it only applies to dr and tun services")
		r.DataPath = opt[bool]{}
	}
	// Every value of every kind's keys is judged here, whatever the type:
	// [defaults.check] serves checks of any type, and a bad value is
	// reported even where no check uses it.
	for _, k := range checks.Kinds() {
		l.decodeOptions(k, []table{t}, false)
	}
	return r
}

func (l *loader) ipOnly(t table, key string) (netip.Addr, node, bool) {
	s, n, ok := t.str(key)
	if !ok {
		return netip.Addr{}, n, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, err := netip.ParseAddrPort(s); err == nil {
			l.errorf(n, "%q must be an IP address without a port; the check's port goes in port", s)
		} else {
			l.errorf(n, "%q is not an IP address", s)
		}
		return netip.Addr{}, n, false
	}
	if a.Zone() != "" {
		l.errorf(n, "%q: IPv6 zones are not supported", s)
		return netip.Addr{}, n, false
	}
	if a.Is4In6() {
		a = a.Unmap()
		l.warnf(n, "%s", mappedWarning(s, a.String()))
	}
	return a, n, true
}

// mergeCheck applies own (the most specific table first: a real
// server's, then its virtual server's) over def over the built-in
// defaults, and reports rules that involve several keys. Keys the own
// tables set must suit the check type; keys inherited from
// [defaults.check] are simply unused by types they do not apply to.
func (l *loader) mergeCheck(def rawCheck, own ...rawCheck) Check {
	layers := append(slices.Clone(own), def)
	typ := pickOf(defaultCheckType, layers, func(r rawCheck) opt[string] { return r.Type })
	interval := pickOf(defaultInterval, layers, func(r rawCheck) opt[time.Duration] { return r.Interval })
	timeout := pickOf(defaultTimeout, layers, func(r rawCheck) opt[time.Duration] { return r.Timeout })
	retry := pickOf(0, layers, func(r rawCheck) opt[time.Duration] { return r.RetryInterval })
	c := Check{
		Type:          typ.V,
		Name:          pickOf("", layers, func(r rawCheck) opt[string] { return r.Name }).V,
		Interval:      interval.V,
		Timeout:       timeout.V,
		RetryInterval: retry.V,
		Rise:          pickOf(defaultRise, layers, func(r rawCheck) opt[int] { return r.Rise }).V,
		Fall:          pickOf(defaultFall, layers, func(r rawCheck) opt[int] { return r.Fall }).V,
		Port:          pickOf(0, layers, func(r rawCheck) opt[uint16] { return r.Port }).V,
		Address:       pickOf(netip.Addr{}, layers, func(r rawCheck) opt[netip.Addr] { return r.Address }).V,
		Source:        pickOf(netip.Addr{}, layers, func(r rawCheck) opt[netip.Addr] { return r.Source }).V,
	}
	if c.Name == "" {
		c.Name = c.Type
	}
	dataPath := pickOf(false, layers, func(r rawCheck) opt[bool] { return r.DataPath })
	c.DataPath = dataPath.V

	// Rules between keys, unless one was written wrongly (already reported).
	bad := func(key string) bool {
		return slices.ContainsFunc(layers, func(r rawCheck) bool { return r.present(key) && !pickFrom(r, key) })
	}
	if !bad("timeout") && !bad("interval") && c.Timeout >= c.Interval {
		n := timeout.N
		if !timeout.Set {
			n = interval.N
		}
		// Accepted (ldirectord's checktimeout above checkinterval is
		// common): runs never overlap, the next waits for the grid slot
		// after the last ended (engine/probe.go).
		l.warnf(n, "timeout (%s) is not shorter than interval (%s): runs never overlap, so a check that times out runs every %s",
			c.Timeout, c.Interval, (c.Timeout/c.Interval+1)*c.Interval)
	}
	if !bad("retry_interval") && !bad("interval") && c.RetryInterval >= c.Interval {
		l.warnf(retry.N, "retry_interval (%s) is not shorter than interval (%s), so it does not make failures confirmed sooner",
			c.RetryInterval, c.Interval)
	}

	if bad("type") {
		return c
	}
	kind, _ := checks.LookupKind(c.Type)
	if c.DataPath {
		switch {
		case !kind.DataPath:
			l.errorOnce(dataPath.N, "datapath is only used by %s; this check's type is %q", checks.DataPathKinds(), c.Type)
		case !c.Source.IsValid():
			l.errorOnce(dataPath.N, "datapath = true needs source: an unused IPv4 address on the real servers' segment, which the director's probe namespace takes (not an address of the director's own: the real server's answers must reach the namespace)")
		}
	}
	tables := make([]table, len(layers))
	for i, r := range layers {
		tables[i] = r.t
	}
	opts, unused := l.decodeOptions(kind, tables, true)
	c.Options = opts
	for _, r := range own {
		if r.t.m == nil {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(r.t.m)) {
			n := r.t.n.child(k)
			switch {
			case k == "port" && kind.NoPort:
				l.errorf(n, "port is not used by %s; this check's type is %q", checks.PortlessKinds(), c.Type)
			case slices.Contains(commonCheckKeys, k) || !slices.Contains(checkKeys, k):
				// common, or unknown (reported by parseCheck)
			case !kind.Reads(k) || slices.Contains(unused, k):
				l.errorf(n, "%s is only used by %s; this check's type is %q", k, checks.UsedBy(k), c.Type)
			}
		}
	}
	return c
}

// pickOf is pick over one field of layers, the most specific first.
func pickOf[T any](dflt T, layers []rawCheck, field func(rawCheck) opt[T]) opt[T] {
	os := make([]opt[T], len(layers))
	for i, r := range layers {
		os[i] = field(r)
	}
	return pick(dflt, os...)
}

// decodeOptions decodes kind's options from layers, the most specific
// table first (tables not written have a nil map). merged says layers are
// one check's full set: then problems that involve several options are
// reported too, and the keys the kind does not use with these options are
// returned; otherwise only each value on its own is judged.
func (l *loader) decodeOptions(kind checks.Kind, layers []table, merged bool) (checks.Options, []string) {
	d := &optionDecoder{l: l, layers: layers}
	opts := kind.Decode(d)
	for _, e := range opts.Validate() {
		if len(e.With) > 0 && !merged {
			continue
		}
		n := d.node(e.Key)
		if e.Index > 0 {
			n = n.elem(e.Index-1, strconv.Itoa(e.Index-1))
		}
		if e.Entry != "" {
			n = n.child(e.Entry)
		}
		l.errorf(n, "%s", e.Msg)
	}
	return opts, d.unused
}

// optionDecoder is the checks.Decoder of one check: a key is read from the
// first of its layers that has it, so problems name that table's line.
type optionDecoder struct {
	l      *loader
	layers []table
	unused []string
}

func (d *optionDecoder) at(key string) (table, bool) {
	for _, t := range d.layers {
		if t.m != nil && t.has(key) {
			return t, true
		}
	}
	return table{}, false
}

// node is where key was read, or where it would go in the first table
// written.
func (d *optionDecoder) node(key string) node {
	if t, ok := d.at(key); ok {
		return t.n.child(key)
	}
	for _, t := range d.layers {
		if t.m != nil {
			return t.n.child(key)
		}
	}
	return node{}
}

func (d *optionDecoder) String(key string) (string, bool) {
	t, ok := d.at(key)
	if !ok {
		return "", false
	}
	s, _, ok := t.str(key)
	return s, ok
}

func (d *optionDecoder) Bool(key string) (bool, bool) {
	t, ok := d.at(key)
	if !ok {
		return false, false
	}
	b, _, ok := t.boolean(key)
	return b, ok
}

func (d *optionDecoder) Int(key string, min, max int64, what string) (int64, bool) {
	t, ok := d.at(key)
	if !ok {
		return 0, false
	}
	i, _, ok := t.intRange(key, min, max, what)
	return i, ok
}

func (d *optionDecoder) Strings(key string) ([]string, bool) {
	t, ok := d.at(key)
	if !ok {
		return nil, false
	}
	list, _, ok := t.strList(key)
	return list, ok
}

func (d *optionDecoder) StringTable(key, what string, check func(name, value string) string) (map[string]string, bool) {
	t, ok := d.at(key)
	if !ok {
		return nil, false
	}
	sub, ok := t.sub(key)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(sub.m))
	for _, name := range slices.Sorted(maps.Keys(sub.m)) {
		v := sub.m[name]
		n := sub.n.child(name)
		s, isStr := v.(string)
		switch {
		case !isStr:
			d.l.errorf(n, "%s must be strings, not %s", what, describe(v))
		default:
			if msg := check(name, s); msg != "" {
				d.l.errorf(n, "%s", msg)
			} else {
				out[strings.Clone(name)] = s // the decoder's key is a slice of the whole file (detach)
			}
		}
	}
	return out, true
}

// Tables gives each entry of an array of tables a decoder of its own over
// that entry alone.
func (d *optionDecoder) Tables(key string, keys []string) ([]checks.Decoder, bool) {
	t, ok := d.at(key)
	if !ok {
		return nil, false
	}
	entries := t.tables(key, func(i int, _ map[string]any) string { return strconv.Itoa(i) })
	switch t.m[key].(type) {
	case []any, []map[string]any:
	default:
		return nil, false // tables reported the wrong type
	}
	sec := section{name: "each entry of " + key, keys: keys}
	out := make([]checks.Decoder, len(entries))
	for i, e := range entries {
		e.unknown(sec)
		out[i] = &optionDecoder{l: d.l, layers: []table{e}}
	}
	return out, true
}

// File resolves a relative name against the config file's directory.
func (d *optionDecoder) File(key string) (string, bool) {
	s, ok := d.String(key)
	if !ok {
		return "", false
	}
	if s == "" {
		d.Errorf(key, "must not be empty")
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(d.l.dir, s)
	}
	return s, true
}

func (d *optionDecoder) Errorf(key, format string, a ...any) {
	d.l.errorf(d.node(key), format, a...)
}

func (d *optionDecoder) Unused(keys ...string) { d.unused = append(d.unused, keys...) }

// pickFrom reports whether r holds a valid value for key.
func pickFrom(r rawCheck, key string) bool {
	switch key {
	case "type":
		return r.Type.Set
	case "interval":
		return r.Interval.Set
	case "timeout":
		return r.Timeout.Set
	case "retry_interval":
		return r.RetryInterval.Set
	}
	return true
}

// ChecksOf is the checks of one of vs's real servers: its own when it
// has any (the virtual server's merged with its overrides and additions),
// otherwise the virtual server's.
func (vs *VirtualServer) ChecksOf(rs *RealServer) []Check {
	if rs.Checks != nil {
		return rs.Checks
	}
	return vs.Checks
}

// CheckSpec is check c (one of vs.ChecksOf(rs)) aimed at rs, unless the
// check names its own address or port.
func (vs *VirtualServer) CheckSpec(rs *RealServer, c *Check) checks.Spec {
	addr, port := rs.Address.Addr(), rs.Address.Port()
	if c.Address.IsValid() {
		addr = c.Address
	}
	if c.Port != 0 {
		port = c.Port
	}
	spec := checks.Spec{
		Type:          c.Type,
		Target:        netip.AddrPortFrom(addr, port),
		Source:        c.Source,
		Timeout:       c.Timeout,
		Interval:      c.Interval,
		RetryInterval: c.RetryInterval,
		Fall:          c.Fall,
		Options:       c.Options,
		VirtualServer: vs.Name,
		RealServer:    rs.Address,
	}
	if c.DataPath && vs.FWMark == 0 && (rs.Forwarding == "dr" || rs.Forwarding == "tun") {
		spec.DataPath = checks.DataPath{VIP: vs.Address.Addr(), Tunnel: rs.Forwarding == "tun"}
	}
	return spec
}

// checkDataPath judges datapath = true on c, one of the checks of rs (at
// rsNode), a real server of vs (whose table is t). Problems of the
// virtual server itself are reported once, with *reported.
func (l *loader) checkDataPath(vs *VirtualServer, t table, c Check, rs *RealServer, rsNode node, reported *bool) {
	if !c.DataPath {
		return
	}
	if rs.Forwarding != "dr" && rs.Forwarding != "tun" {
		l.errorf(rsNode, "uses %s forwarding, but its check %q has datapath = true, which probes the way dr and tun forwarding deliver (a %s real server is reached at its own address: leave datapath out)", rs.Forwarding, c.Name, rs.Forwarding)
	}
	if *reported {
		return
	}
	switch {
	case vs.FWMark != 0:
		*reported = true
		l.errorf(t.n.child("fwmark"), "a fwmark service has no address for its datapath checks to send the probe to; leave datapath out")
	case vs.Address.Addr().Is6():
		*reported = true
		l.errorf(t.n.child("address"), "datapath checks are IPv4 only; this virtual server is IPv6")
	}
}

// errorOnce is errorf for a table several checks merge (a virtual
// server's check under each real server's override): it reports once.
func (l *loader) errorOnce(n node, format string, a ...any) {
	p := Problem{File: l.file, Line: l.lineOf(n), Key: n.key, Msg: fmt.Sprintf(format, a...)}
	if !slices.Contains(l.errs, p) {
		l.errs = append(l.errs, p)
	}
}
