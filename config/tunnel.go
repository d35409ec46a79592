package config

// Tunnel is the encapsulation of a real server behind forwarding = "tun"
// (keepalived's lvs_method TUN type ...; ipvsadm --tun-type). The zero
// value is plain IPIP, what every kernel does.
type Tunnel struct {
	Type string // "" (ipip) | "gue" | "gre"
	// Port is the real server's fou/gue UDP port; gue only, required.
	Port uint16
	Csum string // "" (none) | "csum" (gue, gre) | "remcsum" (gue)
}

var (
	tunTypes = []string{"ipip", "gue", "gre"}
	tunCsums = []string{"none", "csum", "remcsum"}
	tunKeys  = []string{"tun_type", "tun_port", "tun_csum"}
)

// tunnel reads tun_type, tun_port and tun_csum from t, a virtual or real
// server whose forwarding is fwd. A table that writes none of them gets
// inherited (the virtual server's, for a real server); one that writes
// any takes its tunnel from its own keys alone, so that a real server's
// tun_type = "gre" does not pick up the virtual server's gue port.
func (l *loader) tunnel(t table, fwd string, inherited Tunnel) Tunnel {
	written := false
	for _, k := range tunKeys {
		if t.has(k) {
			written = true
			if fwd != "tun" {
				l.errorf(t.n.child(k), "is only used with forwarding = \"tun\"; this one's forwarding is %q", fwd)
			}
		}
	}
	switch {
	case fwd != "tun":
		return Tunnel{}
	case !written:
		return inherited
	}
	var tun Tunnel
	typ, typN, typOK := t.enum("tun_type", "tunnel type", tunTypes, map[string]string{
		"fou": `fou with GUE headers is "gue"`, "IPIP": `write it in lower case: "ipip"`, "GUE": `write it in lower case: "gue"`, "GRE": `write it in lower case: "gre"`,
	})
	if !typOK && t.has("tun_type") {
		return Tunnel{} // reported; the other keys depend on it
	}
	if typ != "ipip" {
		tun.Type = typ
	}
	if t.has("tun_port") {
		switch port, n, ok := l.portKey(t, "tun_port", "udp"); {
		case !ok:
		case tun.Type != "gue":
			l.errorf(n, "is only used with tun_type = \"gue\"; %s has no port", typeName(tun.Type))
		default:
			tun.Port = port
		}
	} else if tun.Type == "gue" {
		l.errorf(typN, "gue needs tun_port: the UDP port the real server's fou/gue listener decapsulates on, such as 6080")
	}
	if csum, n, ok := t.enum("tun_csum", "tunnel checksum", tunCsums, nil); ok {
		switch {
		case tun.Type == "" && csum != "none":
			l.errorf(n, "ipip has no checksum; tun_csum is for tun_type = \"gue\" or \"gre\"")
		case tun.Type == "gre" && csum == "remcsum":
			l.errorf(n, "remote checksum offload is a GUE option; gre takes \"none\" or \"csum\"")
		case csum != "none":
			tun.Csum = csum
		}
	}
	return tun
}

func typeName(t string) string {
	if t == "" {
		return "ipip"
	}
	return t
}
