// Package statefile encodes and decodes the director's state file. It is
// pure: reading and writing the file is the engine's.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/desired"
	"github.com/lvsdirector/director/ipvs"
	"github.com/lvsdirector/director/policy/override"
)

// The state file keeps the overrides set through the API across restarts
// (maintenance files need no keeping: they are their own record), and the
// services this director manages (ownership.go). It is small JSON, written
// whole on every change: to a temporary file in the same directory,
// synced, then renamed over the old one, and the directory synced, so a
// crash leaves either the old file or the new one.
//
//	{
//	  "version": 1,
//	  "overrides": [{"virtual_server": "web", "real_server": "10.0.0.11:8080", "kind": "drain", ...}],
//	  "managed": [
//	    {"protocol": "tcp", "address": "192.0.2.10:80"},
//	    {"fwmark": 10, "family": "ipv4"}
//	  ]
//	}
//
// "managed" was added without a version change: it is optional, and a
// director that predates it ignores it (and keeps the overrides) rather
// than setting the file aside. A file without it (written by such a
// director) records no services: nothing is removed on its account.

// stateVersion is the state file's format version.
const stateVersion = 1

type stateFile struct {
	Version   int             `json:"version"`
	Overrides []stateOverride `json:"overrides"`
	// Managed is nil when the file does not say (an older director wrote it).
	Managed *[]stateService `json:"managed,omitempty"`
}

// stateService is a service key: protocol and address ("192.0.2.10:80",
// "[2001:db8::10]:443"; the family follows the address) for an address
// service, fwmark and family for a firewall-mark one.
type stateService struct {
	Protocol string `json:"protocol,omitempty"`
	Address  string `json:"address,omitempty"`
	FWMark   uint32 `json:"fwmark,omitempty"`
	Family   string `json:"family,omitempty"`
}

type stateOverride struct {
	VirtualServer string     `json:"virtual_server"`
	RealServer    string     `json:"real_server"`
	Kind          string     `json:"kind"`
	Reason        string     `json:"reason"`
	By            string     `json:"by,omitempty"`
	Since         time.Time  `json:"since"`
	Expires       *time.Time `json:"expires,omitempty"`
}

// Encode renders the API overrides and the managed services, sorted,
// as the state file. A nil managed leaves the list out.
func Encode(api map[config.ServerID]override.Override, managed map[ipvs.ServiceKey]bool) ([]byte, error) {
	st := stateFile{Version: stateVersion, Overrides: []stateOverride{}}
	if managed != nil {
		list := make([]stateService, 0, len(managed))
		for _, k := range SortedKeys(managed) {
			if k.FWMark != 0 {
				list = append(list, stateService{FWMark: k.FWMark, Family: k.Family.String()})
			} else {
				list = append(list, stateService{Protocol: k.Protocol.String(), Address: k.Address.String()})
			}
		}
		st.Managed = &list
	}
	for id, o := range api {
		so := stateOverride{VirtualServer: id.VirtualServer, RealServer: id.RealServer.String(), Kind: o.Kind, Reason: o.Reason, By: o.By, Since: o.Since.UTC()}
		if !o.Expires.IsZero() {
			t := o.Expires.UTC()
			so.Expires = &t
		}
		st.Overrides = append(st.Overrides, so)
	}
	slices.SortFunc(st.Overrides, func(a, b stateOverride) int {
		if a.VirtualServer != b.VirtualServer {
			if a.VirtualServer < b.VirtualServer {
				return -1
			}
			return 1
		}
		pa, _ := netip.ParseAddrPort(a.RealServer)
		pb, _ := netip.ParseAddrPort(b.RealServer)
		return pa.Compare(pb)
	})
	data, err := json.MarshalIndent(st, "", "  ")
	return append(data, '\n'), err
}

// Decode parses a state file: the API overrides, and the managed
// services (normalized keys; nil when the file has no list).
func Decode(data []byte) (map[config.ServerID]override.Override, map[ipvs.ServiceKey]bool, error) {
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, err
	}
	if st.Version != stateVersion {
		return nil, nil, fmt.Errorf("version %d, this director reads version %d", st.Version, stateVersion)
	}
	out := map[config.ServerID]override.Override{}
	for i, so := range st.Overrides {
		rs, err := netip.ParseAddrPort(so.RealServer)
		if err != nil {
			return nil, nil, fmt.Errorf("override %d: real_server %q: %v", i, so.RealServer, err)
		}
		o := override.Override{Kind: so.Kind, Reason: so.Reason, Source: override.SourceAPI, By: so.By, Since: so.Since}
		if o.Hold() == desired.HoldNone {
			return nil, nil, fmt.Errorf("override %d: unknown kind %q", i, so.Kind)
		}
		if so.Expires != nil {
			o.Expires = *so.Expires
		}
		out[config.ServerID{VirtualServer: so.VirtualServer, RealServer: rs}] = o
	}
	if st.Managed == nil {
		return out, nil, nil
	}
	managed := map[ipvs.ServiceKey]bool{}
	for i, ss := range *st.Managed {
		k, err := ss.key()
		if err != nil {
			return nil, nil, fmt.Errorf("managed service %d: %v", i, err)
		}
		managed[k] = true
	}
	return out, managed, nil
}

// key parses a service of the state file into a normalized key.
func (ss stateService) key() (ipvs.ServiceKey, error) {
	if ss.FWMark != 0 {
		if ss.Protocol != "" || ss.Address != "" {
			return ipvs.ServiceKey{}, errors.New("a firewall-mark service has no protocol or address")
		}
		f, err := ipvs.ParseFamily(ss.Family)
		if err != nil {
			return ipvs.ServiceKey{}, err
		}
		return ipvs.FWMarkKey(f, ss.FWMark).Normalize(), nil
	}
	p, err := ipvs.ParseProtocol(ss.Protocol)
	if err != nil {
		return ipvs.ServiceKey{}, err
	}
	a, err := netip.ParseAddrPort(ss.Address)
	if err != nil {
		return ipvs.ServiceKey{}, fmt.Errorf("address %q: %v", ss.Address, err)
	}
	k := ipvs.AddressKey(p, a).Normalize()
	if ss.Family != "" {
		if f, err := ipvs.ParseFamily(ss.Family); err != nil || f != k.Family {
			return ipvs.ServiceKey{}, fmt.Errorf("family %q does not match the address %s", ss.Family, ss.Address)
		}
	}
	return k, nil
}

// SortedKeys lists a set of keys in ServiceKey.Compare order.
func SortedKeys(set map[ipvs.ServiceKey]bool) []ipvs.ServiceKey {
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, ipvs.ServiceKey.Compare)
	return out
}
