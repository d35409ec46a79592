package vrrp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsdirector/director/config"
)

// TrackFileName is the name the generated keepalived.conf gives the
// director's track file (vrrp_track_file).
const TrackFileName = "director_health"

// KeepalivedConf renders the keepalived.conf that pairs with cfg's [vrrp]
// on this director: VRRP only (no virtual_server: the director owns the
// IPVS table), one vrrp_instance per [[vrrp.instance]] with the addresses
// of its virtual servers, tracking the director's health file, writing
// its state changes to the director's FIFO. README, "Active-backup with
// keepalived", explains it line by line.
func KeepalivedConf(cfg *config.Config) (string, error) {
	v := cfg.VRRP
	if v == nil {
		return "", fmt.Errorf("%s has no [vrrp] section: there is no keepalived side to print", cfg.Path)
	}
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("    ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "# keepalived.conf for the director configured in %s (director vrrp-config).", cfg.Path)
	w(0, "# keepalived runs VRRP only and moves the VIPs; the director owns the IPVS")
	w(0, "# table, the checks and the connection sync daemon. Run it as")
	w(0, "#   keepalived --vrrp --dont-fork --log-console -f THIS_FILE")
	w(0, "# (Debian: DAEMON_ARGS=\"--vrrp\" in /etc/default/keepalived).")
	w(0, "")
	w(0, "global_defs {")
	w(1, "vrrp_version %d", v.Version)
	w(1, "# The director reads its role from here, in order.")
	w(1, "notify_fifo %s", v.NotifyFIFO)
	w(1, "# Gratuitous ARPs again when a lower-priority master shows up (a split")
	w(1, "# brain ending), and every minute while master.")
	w(1, "vrrp_garp_lower_prio_repeat 5")
	w(1, "vrrp_garp_master_refresh 60")
	w(0, "}")
	if v.TrackFile != "" {
		w(0, "")
		w(0, "# The director writes %d here while healthy, %d while not; a missing file", v.HealthyValue, unhealthyValue(v))
		w(0, "# reads as 0. weight 1 adds the value to the priority (-254: FAULT).")
		w(0, "vrrp_track_file %s {", TrackFileName)
		w(1, "file %q", v.TrackFile)
		w(1, "weight 1")
		w(0, "}")
	}
	for i := range v.Instances {
		in := &v.Instances[i]
		iface := in.Interface
		if iface == "" {
			return "", fmt.Errorf("%s:%d: [[vrrp.instance]] %q has no interface: set interface there or in [vrrp]", cfg.Path, in.Line, in.Name)
		}
		addrs := cfg.VRRPAddresses(in)
		if len(addrs) == 0 {
			return "", fmt.Errorf("%s:%d: [[vrrp.instance]] %q holds no address: its virtual servers are fwmark services or there are none; name address-based virtual servers in virtual_servers", cfg.Path, in.Line, in.Name)
		}
		w(0, "")
		w(0, "vrrp_instance %s {", in.Name)
		w(1, "# Both directors start as BACKUP; the higher priority takes the VIPs.")
		w(1, "state BACKUP")
		w(1, "interface %s", iface)
		w(1, "virtual_router_id %d", in.VirtualRouterID)
		w(1, "priority %d", in.Priority)
		w(1, "advert_int %s", strconv.FormatFloat(v.AdvertInt.Seconds(), 'f', -1, 64))
		w(1, "# Tell the director about priority changes too: they carry the state.")
		w(1, "notify_priority_changes")
		if len(v.Peers) > 0 {
			if v.UnicastSrc.IsValid() {
				w(1, "unicast_src_ip %s", v.UnicastSrc)
			}
			w(1, "unicast_peer {")
			for _, p := range v.Peers {
				w(2, "%s", p)
			}
			w(1, "}")
		}
		// One instance speaks one address family: the first address's;
		// the other family's addresses move with it, unannounced.
		var same, other []netip.Addr
		for _, a := range addrs {
			if a.Is4() == addrs[0].Is4() {
				same = append(same, a)
			} else {
				other = append(other, a)
			}
		}
		w(1, "virtual_ipaddress {")
		for _, a := range same {
			w(2, "%s dev %s", netip.PrefixFrom(a, a.BitLen()), iface)
		}
		w(1, "}")
		if len(other) > 0 {
			w(1, "virtual_ipaddress_excluded {")
			for _, a := range other {
				w(2, "%s dev %s", netip.PrefixFrom(a, a.BitLen()), iface)
			}
			w(1, "}")
		}
		if v.TrackFile != "" {
			w(1, "track_file {")
			w(2, "%s weight 1", TrackFileName)
			w(1, "}")
		}
		w(0, "}")
	}
	return b.String(), nil
}

func unhealthyValue(v *config.VRRP) int {
	if v.OnUnhealthy == "fault" {
		return config.TrackFault
	}
	return 0
}
