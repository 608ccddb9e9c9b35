package buoy

import (
	"net/netip"
	"slices"
	"time"

	"buoy/internal/api"
)

// Peer is another member as address discovery sees it.
type Peer struct {
	Name string
	// Addr is the address this node would dial first (invalid if none).
	Addr netip.AddrPort
	// Linked is true while a peer link to it is up.
	Linked bool
	// Via names the node relaying the link when there is no direct path
	// (both behind their own NATs); empty for a direct link.
	Via string
}

// Self returns this node's public address as voted from its peers'
// observations (IPv4 preferred), or the zero Addr until a peer has seen it.
// The node never reads its own interfaces.
func (n *Node) Self() netip.Addr {
	if n.disco == nil {
		return netip.Addr{}
	}
	n.disco.mu.Lock()
	defer n.disco.mu.Unlock()
	return n.disco.selfAddrLocked().Addr()
}

// Peers lists the other current members with their best known address.
func (n *Node) Peers() []Peer {
	var out []Peer
	for _, m := range n.fsm.View().Current() {
		if m.Name == n.cfg.Name {
			continue
		}
		p := Peer{Name: m.Name, Linked: n.alive(m.Name)}
		p.Addr, _ = n.PeerAddr(m.Name)
		for _, l := range n.net.Links() {
			if l.Name == m.Name && l.Remote != nil {
				if via, _, ok := parseRelayAddr(l.Remote.String()); ok {
					p.Via = via
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// PeerAddr returns the address this node would dial name at first.
func (n *Node) PeerAddr(name string) (netip.AddrPort, bool) {
	if n.disco == nil {
		return netip.AddrPort{}, false
	}
	if c := n.disco.book.Candidates(name, time.Now()); len(c) > 0 {
		return c[0], true
	}
	for _, a := range n.resolve(name) {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

// OnAddressChange registers f to be called whenever the best address of a
// node changes — this node's own voted address (name = Name()) or a peer's.
// old is the zero AddrPort the first time a node's address is known. f is
// called from the node's goroutines and must not block.
func (n *Node) OnAddressChange(f func(name string, old, new netip.AddrPort)) {
	n.disco.mu.Lock()
	defer n.disco.mu.Unlock()
	n.disco.callbacks = append(n.disco.callbacks, f)
}

// observations reports the peers' recent views of this node for Status.
func (n *Node) observations() (self string, nat string, obs []api.Observation) {
	if n.disco == nil {
		return "", "unknown", nil
	}
	now := time.Now()
	if a := n.Self(); a.IsValid() {
		self = netip.AddrPortFrom(a, uint16(listenPort(n.peerL))).String()
	}
	for _, o := range n.disco.self.Observations(now) {
		obs = append(obs, api.Observation{Observer: o.Observer, Seen: o.Seen.String(), Local: o.Local.String(), At: o.At})
	}
	slices.SortFunc(obs, func(a, b api.Observation) int {
		if a.Observer < b.Observer {
			return -1
		}
		if a.Observer > b.Observer {
			return 1
		}
		return 0
	})
	return self, string(n.disco.self.NAT(now)), obs
}
