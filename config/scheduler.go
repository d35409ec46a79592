package config

import (
	"fmt"
	"strconv"
	"strings"
)

// SchedulerFlagNames are the scheduler flags each scheduler takes, in
// the kernel's order (flag 1, flag 2).
var SchedulerFlagNames = map[string][]string{
	"mh": {"mh-fallback", "mh-port"},
	"sh": {"sh-fallback", "sh-port"},
}

// SchedulerFlagBits maps a virtual server's scheduler_flags to the
// kernel's scheduler flag bits (1 << position in SchedulerFlagNames).
func SchedulerFlagBits(vs *VirtualServer) uint8 {
	var bits uint8
	for _, f := range vs.SchedulerFlags {
		for i, name := range SchedulerFlagNames[vs.Scheduler] {
			if f == name {
				bits |= 1 << i
			}
		}
	}
	return bits
}

// schedulerFlags reads scheduler_flags and ops; the scheduler is known.
func (l *loader) schedulerFlags(t table, vs *VirtualServer) {
	if list, n, ok := t.strList("scheduler_flags"); ok {
		valid := SchedulerFlagNames[vs.Scheduler]
		seen := map[string]bool{}
		for i, f := range list {
			en := n.elem(i, strconv.Itoa(i))
			switch {
			case seen[f]:
				l.errorf(en, "%q is listed twice", f)
			case contains(valid, f):
				seen[f] = true
				vs.SchedulerFlags = append(vs.SchedulerFlags, f)
			case flagOwner(f) != "":
				l.errorf(en, "%q is a flag of the %s scheduler; this service uses %s", f, flagOwner(f), vs.Scheduler)
			case len(valid) == 0:
				l.errorf(en, "%q: the %s scheduler takes no flags; only mh (mh-fallback, mh-port) and sh (sh-fallback, sh-port) do", f, vs.Scheduler)
			default:
				msg := fmt.Sprintf("unknown flag %q for the %s scheduler; valid: %s", f, vs.Scheduler, strings.Join(valid, ", "))
				if m := closest(f, valid); m != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", m)
				}
				l.errorf(en, "%s", msg)
			}
		}
	}
	if v, n, ok := t.boolean("ops"); ok {
		if v && vs.Protocol != "udp" && vs.FWMark == 0 {
			l.errorf(n, "one-packet scheduling is for UDP services; this one is %s", vs.Protocol)
		} else {
			vs.OnePacket = v
		}
	}
}

// flagOwner is the scheduler whose flag f is, or "".
func flagOwner(f string) string {
	for sched, names := range SchedulerFlagNames {
		if contains(names, f) {
			return sched
		}
	}
	return ""
}
