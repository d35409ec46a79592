package api

import (
	"time"

	"github.com/lvsdirector/director/announcer"
	"github.com/lvsdirector/director/engine"
)

// AnnounceV1 is what the director announces to its routers and its BGP
// sessions; absent without [bgp] or [route_table].
type AnnounceV1 struct {
	VIPs  []VIPV1  `json:"vips"`
	Peers []PeerV1 `json:"peers"` // empty without [bgp]
}

// VIPV1 is one VIP and the last decision on it.
type VIPV1 struct {
	Prefix         string     `json:"prefix"` // "192.0.2.10/32"
	Announced      bool       `json:"announced"`
	Cause          string     `json:"cause"` // healthy, pool_unhealthy, hold_down, director_unhealthy
	Reason         string     `json:"reason"`
	Since          *time.Time `json:"since"` // last announced or withdrawn; null: not since start
	VirtualServers []string   `json:"virtual_servers"`
}

// PeerV1 is one BGP session.
type PeerV1 struct {
	Address     string     `json:"address"`
	ASN         uint32     `json:"asn"`
	State       string     `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Established bool       `json:"established"`
	Since       *time.Time `json:"since"` // last state change; null: none since start
	BFD         bool       `json:"bfd"`
}

func announceV1(st engine.Status, peers func() []announcer.PeerStatus) *AnnounceV1 {
	if len(st.VIPs) == 0 && peers == nil {
		return nil
	}
	out := &AnnounceV1{VIPs: []VIPV1{}, Peers: []PeerV1{}}
	for _, v := range st.VIPs {
		out.VIPs = append(out.VIPs, VIPV1{Prefix: v.Prefix.String(), Announced: v.Announced, Cause: v.Cause, Reason: v.Reason,
			Since: optTime(v.Since), VirtualServers: v.VirtualServers})
	}
	if peers != nil {
		for _, p := range peers() {
			out.Peers = append(out.Peers, PeerV1{Address: p.Address.String(), ASN: p.ASN, State: p.State,
				Established: p.Established, Since: optTime(p.Since), BFD: p.BFD})
		}
	}
	return out
}
