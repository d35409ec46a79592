package config

import (
	"slices"
	"strconv"
	"strings"
)

// Several checks per real server: [[virtual_server.check]] is a list
// (one table is a list of one), each check named (by default its type),
// and a real server's [[virtual_server.real_server.check]] entries
// override the virtual server's check of their name or add checks. The
// engine passes a real server only while every one of its checks passes.

// checkTables reads t's "check": one table or an array of tables.
func checkTables(t table) []table {
	v, n, ok := t.get("check")
	if !ok {
		return nil
	}
	if m, one := v.(map[string]any); one {
		return []table{{l: t.l, n: n, m: m}}
	}
	return t.tables("check", func(i int, m map[string]any) string {
		if s, ok := m["name"].(string); ok && s != "" {
			return s
		}
		return strconv.Itoa(i)
	})
}

// nameNode is where a check's name comes from, for messages.
func (r rawCheck) nameNode() node {
	switch {
	case r.Name.Set:
		return r.Name.N
	case r.Type.Set:
		return r.Type.N
	}
	return r.t.n
}

// virtualServerChecks reads vs's checks into vs.Checks and returns their
// tables as read (for real servers' overrides) and, for each, where its
// source address was set (for family errors).
func (l *loader) virtualServerChecks(t table, def rawCheck, vs *VirtualServer) ([]rawCheck, []node) {
	var raws []rawCheck
	for _, ct := range checkTables(t) {
		raws = append(raws, l.parseCheck(ct, secVSCheck))
	}
	if len(raws) == 0 {
		raws = []rawCheck{{}}
	}
	named := map[string]node{}
	src := make([]node, len(raws))
	for i, r := range raws {
		c := l.mergeCheck(def, r)
		if prev, dup := named[c.Name]; dup {
			l.errorf(r.nameNode(), "a second check named %q (the first is on line %d); give each check of a virtual server its own name", c.Name, l.lineOf(prev))
		} else {
			named[c.Name] = r.nameNode()
		}
		vs.Checks = append(vs.Checks, c)
		src[i] = sourceNode(t.n.child("check"), r, def)
	}
	return raws, src
}

// sourceNode is where a check's source was set, the most specific table
// first, or at if none set it.
func sourceNode(at node, layers ...rawCheck) node {
	for _, r := range layers {
		if r.Source.Set {
			return r.Source.N
		}
	}
	return at
}

// realServerChecks merges one real server's check entries with its
// virtual server's checks: an entry overrides the check of its name (by
// default its type; an entry with neither overrides the only check), any
// other entry with a type adds a check. It returns the real server's
// checks and where each one's source was set.
func (l *loader) realServerChecks(def rawCheck, vsRaw []rawCheck, vsChecks []Check, vsSrc []node, tables []table) ([]Check, []node) {
	overrides := map[int]rawCheck{}
	var added []rawCheck
	named := map[string]node{}
	names := make([]string, len(vsChecks))
	for i, c := range vsChecks {
		names[i] = strconv.Quote(c.Name)
	}
	for _, ct := range tables {
		e := l.parseCheck(ct, secRSCheck)
		name := e.Name.V
		if !e.Name.Set && e.Type.Set {
			name = e.Type.V
		}
		idx := slices.IndexFunc(vsChecks, func(c Check) bool { return c.Name == name })
		switch {
		case name == "" && len(vsChecks) == 1:
			idx, name = 0, vsChecks[0].Name
		case name == "" && (ct.has("name") || ct.has("type")):
			continue // written wrongly: reported by parseCheck
		case name == "":
			l.errorf(ct.n, "say which check this entry overrides with name (one of %s), or give it a type to add a check", strings.Join(names, ", "))
			continue
		case idx < 0 && !e.Type.Set:
			l.errorf(e.Name.N, "the virtual server has no check named %q (its checks: %s); to add a check, give it a type", name, strings.Join(names, ", "))
			continue
		case idx >= 0 && e.Type.Set && e.Type.V != vsChecks[idx].Type:
			l.errorf(e.Type.N, "overrides the %s check %q, which keeps its type; to add a %s check, give it a name of its own", vsChecks[idx].Type, name, e.Type.V)
			continue
		}
		if prev, dup := named[name]; dup {
			l.errorf(e.nameNode(), "a second entry for the check %q (the first is on line %d); give each its own name", name, l.lineOf(prev))
			continue
		}
		named[name] = e.nameNode()
		if idx >= 0 {
			overrides[idx] = e
		} else {
			added = append(added, e)
		}
	}
	out := make([]Check, 0, len(vsChecks)+len(added))
	src := make([]node, 0, len(vsChecks)+len(added))
	for i, c := range vsChecks {
		e, ok := overrides[i]
		if !ok {
			out, src = append(out, c), append(src, vsSrc[i])
			continue
		}
		out = append(out, l.mergeCheck(def, e, vsRaw[i]))
		src = append(src, sourceNode(vsSrc[i], e))
	}
	for _, e := range added {
		out = append(out, l.mergeCheck(def, e))
		src = append(src, sourceNode(e.t.n, e, def))
	}
	return out, src
}
