package clustertest

import (
	"fmt"
	"net/netip"

	"buoy/internal/netsim"
)

// NAT is a NAT box on the cluster's network: a home router with a LAN of
// its own (10.<n>.0.0/24, one per NAT) behind a public RFC 5737 address.
// The embedded netsim.NAT gives tests its knobs (Forward, SetTimeout,
// Mappings); change its public address with Cluster.ChangeNATAddr, which
// picks an address no host has had.
type NAT struct {
	*netsim.NAT
	index int // which 10.<index>.0.0/24 its LAN uses
	hosts int // LAN addresses handed out
}

// AddNAT adds a NAT box of the given kind with a fresh public address.
// Put nodes behind it with JoinBehind.
func (c *Cluster) AddNAT(name string, kind netsim.NATKind) *NAT {
	c.t.Helper()
	x := &NAT{NAT: c.net.AddNAT(name, kind, c.freshAddr()), index: len(c.nats) + 1}
	c.nats = append(c.nats, x)
	return x
}

// freshLANAddr returns an address on x's LAN that no host has had.
// Private addresses exist only inside the simulated network.
func (x *NAT) freshLANAddr() netip.Addr {
	x.hosts++
	return netip.AddrFrom4([4]byte{10, byte(x.index), 0, byte(10 + x.hosts)})
}

// PublicAddr returns the NAT's current public address.
func (x *NAT) PublicAddr() netip.Addr {
	if p := x.Public(); len(p) > 0 {
		return p[0]
	}
	return netip.Addr{}
}

// JoinBehind is Join for a node on nat's LAN. It joins through the live
// nodes it can dial: public ones and those on its own LAN.
func (c *Cluster) JoinBehind(nat *NAT, name string) *Node {
	c.t.Helper()
	n, err := c.tryJoin(name, nat)
	if err != nil {
		c.t.Fatalf("join %s behind %s: %v", name, nat.Name(), err)
	}
	return n
}

// ChangeAddr gives a node a new address, as an ISP or a DHCP server does:
// a fresh public one, or a fresh one on its NAT's LAN. A running node's
// connections are reset (netsim's SetAddrs); the node is not told. A
// killed node comes back at the new address on Restart. It returns the
// new address.
func (c *Cluster) ChangeAddr(name string) netip.Addr {
	c.t.Helper()
	n := c.MustGet(name)
	var a netip.Addr
	if n.NAT != nil {
		a = n.NAT.freshLANAddr()
	} else {
		a = c.freshAddr()
	}
	n.Host.SetAddrs(a)
	n.Addr = a
	return a
}

// MoveSilently gives a node a new address as ChangeAddr does, but the
// way a Linux host's `ip addr` change leaves its connections (netsim's
// MoveSilently): they are not reset, they go silent in both directions,
// and only the nodes' own timeouts (missed heartbeats) notice. It returns
// the new address.
func (c *Cluster) MoveSilently(name string) netip.Addr {
	c.t.Helper()
	n := c.MustGet(name)
	var a netip.Addr
	if n.NAT != nil {
		a = n.NAT.freshLANAddr()
	} else {
		a = c.freshAddr()
	}
	n.Host.MoveSilently(a)
	n.Addr = a
	return a
}

// ChangeNATAddr gives a NAT a fresh public address, as a home router gets
// a new one from its ISP: every connection through the old one is reset,
// and the nodes behind it are not told. It returns the new address.
func (c *Cluster) ChangeNATAddr(x *NAT) netip.Addr {
	c.t.Helper()
	a := c.freshAddr()
	x.SetPublic(a)
	return a
}

// reaches reports whether from can open a connection to to's peer port
// without help: to is public, or on from's own LAN. (A node behind a NAT
// is reached over the links it dials.)
func reaches(from, to *Node) bool {
	return to.NAT == nil || to.NAT == from.NAT
}

// WantAddr is the address observer should know subject by: its address
// on their common LAN if they share one, else its NAT's public address if
// it has a NAT, else its own; always with the peer port, which is what
// address records and observed inbound links pair an IP with.
func WantAddr(observer, subject *Node) netip.AddrPort {
	ip := subject.Addr
	if subject.NAT != nil && subject.NAT != observer.NAT {
		ip = subject.NAT.PublicAddr()
	}
	return netip.AddrPortFrom(ip, PeerPort)
}

// WantSelf is the address a node's peers tell it it has: its NAT's public
// address, or its own.
func WantSelf(n *Node) netip.Addr {
	if n.NAT != nil {
		return n.NAT.PublicAddr()
	}
	return n.Addr
}

// String describes where the node sits, for test logs.
func (n *Node) String() string {
	if n.NAT != nil {
		return fmt.Sprintf("%s(%s behind %s %s)", n.Name, n.Addr, n.NAT.Name(), n.NAT.PublicAddr())
	}
	return fmt.Sprintf("%s(%s)", n.Name, n.Addr)
}
