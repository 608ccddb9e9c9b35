package netlab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// NATMode selects how a router maps inside flows to its WAN address.
type NATMode int

const (
	// Cone is nftables' plain masquerade, as on most home routers: a flow
	// keeps its inside source port on the WAN side when that port is free
	// there, so every peer sees an inside socket at the same WAN IP:port
	// (endpoint-independent mapping). Two inside hosts using one source
	// port toward one destination get different WAN ports.
	Cone NATMode = iota
	// Symmetric is "masquerade fully-random": every new flow gets a random
	// WAN port, so each peer sees an inside socket at a different port
	// (endpoint-dependent mapping), which defeats hole punching.
	Symmetric
)

// String returns "cone" or "symmetric".
func (m NATMode) String() string {
	switch m {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATMode(%d)", int(m))
}

// Router is a host with a WAN and a LAN interface (named wan and lan) that
// forwards from LAN to WAN with nftables masquerade. Its filtering is that
// of a home router: from the WAN side it lets in only replies to flows
// opened from the LAN and the ports given to Forward (address- and
// port-dependent filtering); anything else addressed to the WAN address is
// answered by the router itself (a TCP reset, an ICMP port unreachable).
// There is no hairpin NAT: a LAN host cannot reach a forwarded port
// through the WAN address. The embedded Host runs programs in the router
// and takes routes (for a WAN beyond the WAN switch).
type Router struct {
	*Host
	wan, lan *Switch

	// Guarded by lab.mu.
	mode     NATMode
	forwards []Forward
}

// Forward is one port forward: packets to the router's WAN address at
// Proto/WANPort go to Inside:InsidePort.
type Forward struct {
	Proto      string // "tcp" or "udp"
	WANPort    uint16
	Inside     netip.Addr
	InsidePort uint16
}

// Router adds a NAT router named name, attached to wan with the address
// wanCIDR and to lan with lanCIDR, in Cone mode. Hosts on lan need a
// default route via the router's LAN address.
func (l *Lab) Router(name string, wan *Switch, wanCIDR string, lan *Switch, lanCIDR string) *Router {
	l.t.Helper()
	l.claim(name)
	if wan == lan {
		l.fatal("router %s: WAN and LAN are the same switch %s", name, wan.name)
	}
	r := &Router{Host: l.newHost(name, "r-"), wan: wan, lan: lan}
	r.attach(wan, wanCIDR, "wan")
	r.attach(lan, lanCIDR, "lan")
	if err := r.sysctl("net/ipv4/ip_forward", "1"); err != nil {
		l.fatal("router %s: enable forwarding: %v", name, err)
	}
	r.apply()
	return r
}

// WAN returns the router's WAN interface address.
func (r *Router) WAN() netip.Prefix {
	r.lab.t.Helper()
	return r.Prefix(r.wan)
}

// LAN returns the router's LAN interface address.
func (r *Router) LAN() netip.Prefix {
	r.lab.t.Helper()
	return r.Prefix(r.lan)
}

// SetWAN gives the router a new WAN address, as when the ISP hands out a
// new one: the old address is flushed, cidr added, the router's own routes
// put back, and the connection tracking table flushed, so every flow
// through the router is forgotten. The next packet of an old flow opens a
// new mapping from the new address, which the peer answers with a reset:
// existing connections break, new ones come from the new address.
func (r *Router) SetWAN(cidr string) {
	l := r.lab
	l.t.Helper()
	r.SetAddr(r.wan, cidr)
	r.FlushConntrack()
}

// FlushConntrack empties the router's connection tracking table (IPv4),
// as a router reboot does. (The kernel already drops masqueraded entries
// when the WAN address they used goes away; this also drops port-forward
// and LAN-internal entries.)
func (r *Router) FlushConntrack() {
	r.lab.t.Helper()
	if err := flushConntrack(r.ns); err != nil {
		r.lab.fatal("router %s: %v", r.name, err)
	}
}

// ConntrackEntries returns the number of IPv4 entries in the router's
// connection tracking table.
func (r *Router) ConntrackEntries() int {
	r.lab.t.Helper()
	n, err := countConntrack(r.ns)
	if err != nil {
		r.lab.fatal("router %s: %v", r.name, err)
	}
	return n
}

// SetNAT switches the router to mode. Existing flows keep their mapping;
// flush the table with FlushConntrack to remap them.
func (r *Router) SetNAT(mode NATMode) {
	r.lab.t.Helper()
	if mode != Cone && mode != Symmetric {
		r.lab.fatal("router %s: unknown %v", r.name, mode)
	}
	r.lab.mu.Lock()
	r.mode = mode
	r.lab.mu.Unlock()
	r.apply()
}

// Forward forwards proto ("tcp" or "udp") packets to the router's WAN
// address at wanPort to insideIP:insidePort on the LAN (DNAT, whatever the
// WAN address is at the time). The inside host sees the true source
// address of the peer. A later Forward of the same proto and wanPort
// replaces this one.
func (r *Router) Forward(proto string, wanPort uint16, insideIP string, insidePort uint16) {
	l := r.lab
	l.t.Helper()
	if proto != "tcp" && proto != "udp" {
		l.fatal("router %s: forward: protocol %q, want tcp or udp", r.name, proto)
	}
	if wanPort == 0 || insidePort == 0 {
		l.fatal("router %s: forward: port 0", r.name)
	}
	in, err := parseTestAddr(insideIP)
	if err != nil {
		l.fatal("router %s: forward: %v", r.name, err)
	}
	f := Forward{Proto: proto, WANPort: wanPort, Inside: in, InsidePort: insidePort}
	l.mu.Lock()
	r.forwards = slices.DeleteFunc(r.forwards, func(o Forward) bool { return o.Proto == proto && o.WANPort == wanPort })
	r.forwards = append(r.forwards, f)
	l.mu.Unlock()
	r.apply()
}

// apply loads the router's ruleset, replacing the previous one in a single
// nft transaction.
func (r *Router) apply() {
	l := r.lab
	l.t.Helper()
	l.mu.Lock()
	rules := renderRules(r.mode, r.forwards)
	l.mu.Unlock()
	if _, err := l.run(rules, l.ipPath, "netns", "exec", r.ns, "nft", "-f", "-"); err != nil {
		l.fatal("router %s: load nftables rules: %v", r.name, err)
	}
}

// renderRules returns the nft script for a router. The first two lines make
// sure the table exists and then delete it, so that the script replaces
// the whole table atomically whether or not it was there.
func renderRules(mode NATMode, forwards []Forward) string {
	var b strings.Builder
	b.WriteString("table ip netlab\ndelete table ip netlab\ntable ip netlab {\n")
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	for _, f := range forwards {
		fmt.Fprintf(&b, "\t\tiifname \"wan\" %s dport %d dnat to %s:%d\n", f.Proto, f.WANPort, f.Inside, f.InsidePort)
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	b.WriteString("\t\tiifname \"lan\" oifname \"wan\" masquerade")
	if mode == Symmetric {
		b.WriteString(" fully-random")
	}
	b.WriteString("\n\t}\n")
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n")
	b.WriteString("\t\tct state established,related accept\n")
	b.WriteString("\t\tiifname \"lan\" oifname \"wan\" accept\n")
	b.WriteString("\t\tiifname \"wan\" oifname \"lan\" ct status dnat accept\n")
	b.WriteString("\t}\n}\n")
	return b.String()
}
