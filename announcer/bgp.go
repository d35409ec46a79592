package announcer

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/lvsdirector/director/config"
	"github.com/lvsdirector/director/metrics"
	"github.com/lvsdirector/director/policy/announce"
)

// connectRetry is how soon a session that failed to connect is tried
// again: a router that restarts should get the VIPs back in seconds, not
// after GoBGP's default two minutes.
const connectRetry = 2 * time.Second

// BGP is the embedded speaker (GoBGP): it holds the announced VIPs in its
// RIB and sends them to every peer whose session is up, now or later.
type BGP struct {
	s       *server.BgpServer
	cfg     config.BGP
	log     *slog.Logger
	metrics *metrics.Announce

	mu    sync.Mutex
	peers map[netip.Addr]*PeerStatus
}

// PeerStatus is one BGP session, for status pages.
type PeerStatus struct {
	Address     netip.Addr
	ASN         uint32
	State       string // idle, connect, active, opensent, openconfirm, established
	Established bool
	Since       time.Time // last state change; zero: none since start
	BFD         bool
}

// StartBGP starts the speaker with its peers. The sessions come up in
// the background; routes may be added at once.
func StartBGP(ctx context.Context, cfg config.BGP, log *slog.Logger, m *metrics.Announce) (*BGP, error) {
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn) // its own chatter; session changes are logged here, once
	b := &BGP{cfg: cfg, log: log, metrics: m, peers: map[netip.Addr]*PeerStatus{},
		s: server.NewBgpServer(server.LoggerOption(log.With("component", "gobgp"), lvl))}
	go b.s.Serve()
	err := b.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: cfg.ListenPort,
	}})
	if err != nil {
		b.s.Stop()
		return nil, fmt.Errorf("bgp: starting the speaker: %w", err)
	}
	if err := b.s.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPeerUpdate: b.peerEvent}, server.WatchPeer()); err != nil {
		b.Stop()
		return nil, fmt.Errorf("bgp: watching sessions: %w", err)
	}
	for _, p := range cfg.Peers {
		b.peers[p.Address] = &PeerStatus{Address: p.Address, ASN: p.ASN, State: "idle", BFD: p.BFD}
		if m != nil {
			m.Peer(p.Address.String(), false, false)
		}
		if err := b.s.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConfig(p)}); err != nil {
			b.Stop()
			return nil, fmt.Errorf("bgp: peer %s: %w", p.Address, err)
		}
	}
	return b, nil
}

// peerConfig is GoBGP's configuration of p: only the address family of
// its own address, so that the next hop (the session's address, unless
// next_hop says otherwise) fits the routes.
func peerConfig(p config.BGPPeer) *api.Peer {
	fam := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Address.Is6() {
		fam.Afi = api.Family_AFI_IP6
	}
	hold := uint64(p.HoldTime / time.Second)
	ap := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, AuthPassword: p.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: uint64(connectRetry / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}},
	}
	if p.BFD {
		us := uint32(p.BFDInterval / time.Microsecond)
		ap.Bfd = &api.BfdPeerConfig{Enabled: true, DesiredMinimumTxInterval: us, RequiredMinimumReceive: us, DetectionMultiplier: uint32(p.BFDMultiplier)}
	}
	return ap
}

func (b *BGP) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress
	if !addr.IsValid() {
		addr = ev.Peer.Conf.NeighborAddress
	}
	state := strings.ToLower(strings.TrimPrefix(ev.Peer.State.SessionState.String(), "BGP_FSM_"))
	b.mu.Lock()
	p := b.peers[addr]
	if p == nil || p.State == state {
		b.mu.Unlock()
		return
	}
	was := p.Established
	p.State, p.Established, p.Since = state, ev.Peer.State.SessionState == bgp.BGP_FSM_ESTABLISHED, at
	now := *p
	b.mu.Unlock()
	if b.metrics != nil {
		b.metrics.Peer(addr.String(), now.Established, was && !now.Established)
	}
	switch {
	case now.Established:
		b.log.Info("BGP session established", "peer", addr, "asn", now.ASN)
	case was:
		b.log.Warn("BGP session down", "peer", addr, "state", state, "reason", ev.Peer.State.DisconnectReason.String(), "message", ev.Peer.State.DisconnectMessage)
	default:
		b.log.Debug("BGP session state", "peer", addr, "state", state)
	}
}

// Peers lists the sessions, in config order.
func (b *BGP) Peers() []PeerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]PeerStatus, 0, len(b.cfg.Peers))
	for _, p := range b.cfg.Peers {
		out = append(out, *b.peers[p.Address])
	}
	return out
}

// Name is "bgp".
func (b *BGP) Name() string { return "bgp" }

// Add announces r to every peer of its family.
func (b *BGP) Add(_ context.Context, r announce.Route) error {
	p, err := b.path(r)
	if err != nil {
		return err
	}
	_, err = b.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}})
	return err
}

// Delete withdraws the route for prefix.
func (b *BGP) Delete(_ context.Context, prefix netip.Prefix) error {
	p, err := b.path(announce.Route{Prefix: prefix})
	if err != nil {
		return err
	}
	return b.s.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}})
}

// path is GoBGP's path for r: origin IGP, next hop the configured one or
// unspecified (GoBGP puts in the session's address), and r's attributes.
func (b *BGP) path(r announce.Route) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return nil, fmt.Errorf("bgp: %s: %w", r.Prefix, err)
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	family := bgp.RF_IPv4_UC
	if r.Prefix.Addr().Is4() {
		nh := netip.IPv4Unspecified()
		if b.cfg.NextHop.Is4() {
			nh = b.cfg.NextHop
		}
		a, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, fmt.Errorf("bgp: next hop %s: %w", nh, err)
		}
		attrs = append(attrs, a)
	} else {
		family = bgp.RF_IPv6_UC
		nh := netip.IPv6Unspecified()
		if b.cfg.NextHop.Is6() {
			nh = b.cfg.NextHop
		}
		a, err := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, fmt.Errorf("bgp: next hop %s: %w", nh, err)
		}
		attrs = append(attrs, a)
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(slices.Clone(r.Communities)))
	}
	if r.HasMED {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(r.MED))
	}
	if r.HasLocalPref {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.LocalPref))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs}, nil
}

// Stop closes every session (the routers withdraw our routes at once)
// and stops the speaker.
func (b *BGP) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.s.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		b.log.Warn("bgp: stopping the speaker", "err", err)
	}
	b.s.Stop()
}
