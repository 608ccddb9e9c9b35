package netlab

import (
	"fmt"
	"net/netip"
	"slices"
)

// bridgeName is the bridge's name inside every switch namespace.
const bridgeName = "br0"

// Switch is an L2 segment: a bridge in a namespace of its own, to which
// hosts attach with veth pairs.
type Switch struct {
	lab  *Lab
	name string
	ns   string
	// ports counts the ports ever made, for unique port names; guarded by
	// lab.mu.
	ports int
}

// Name returns the name given to Lab.Switch.
func (s *Switch) Name() string { return s.name }

// Netns returns the switch's namespace name.
func (s *Switch) Netns() string { return s.ns }

// Host is a namespace with its loopback up, attached to switches. It runs
// programs with Command and Run.
type Host struct {
	lab  *Lab
	name string
	ns   string

	// Guarded by lab.mu.
	links  []*link
	routes []route
}

// link is one veth pair between a host and a switch.
type link struct {
	sw     *Switch
	ifname string // in the host's namespace
	port   string // in the switch's namespace
	addr   netip.Prefix
	cut    bool
}

// route is a route the test asked for; the host puts it back after its
// address changes, as a DHCP client does.
type route struct {
	dst netip.Prefix // the zero Prefix is "default"
	via netip.Addr
}

func (r route) dstString() string {
	if !r.dst.IsValid() {
		return "default"
	}
	return r.dst.String()
}

// Name returns the name given to Lab.Host.
func (h *Host) Name() string { return h.name }

// Netns returns the host's namespace name, for `ip netns exec`.
func (h *Host) Netns() string { return h.ns }

// Switch adds an L2 segment named name: a namespace holding one bridge with
// spanning tree off, so that ports forward as soon as they are up.
func (l *Lab) Switch(name string) *Switch {
	l.t.Helper()
	l.claim(name)
	s := &Switch{lab: l, name: name, ns: l.prefix + "s-" + name}
	if err := l.addNetns(s.ns); err != nil {
		l.fatal("switch %s: %v", name, err)
	}
	if _, err := l.ip("-n", s.ns, "link", "add", "name", bridgeName, "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
		l.fatal("switch %s: %v", name, err)
	}
	if _, err := l.ip("-n", s.ns, "link", "set", bridgeName, "up"); err != nil {
		l.fatal("switch %s: %v", name, err)
	}
	l.mu.Lock()
	l.switches = append(l.switches, s)
	l.mu.Unlock()
	return s
}

// Host adds a host named name: a namespace with only its loopback, up.
func (l *Lab) Host(name string) *Host {
	l.t.Helper()
	l.claim(name)
	return l.newHost(name, "h-")
}

func (l *Lab) newHost(name, kind string) *Host {
	l.t.Helper()
	h := &Host{lab: l, name: name, ns: l.prefix + kind + name}
	if err := l.addNetns(h.ns); err != nil {
		l.fatal("host %s: %v", name, err)
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h
}

// Attach connects h to sw with a veth pair, gives h's end the interface
// address cidr (such as "198.51.100.11/24") and brings both ends up. The
// host's interfaces are named eth0, eth1, ... in the order of Attach. A
// host attaches to a switch at most once.
func (h *Host) Attach(sw *Switch, cidr string) {
	h.lab.t.Helper()
	h.attach(sw, cidr, "")
}

// attach is Attach with a chosen interface name ("" picks ethN).
func (h *Host) attach(sw *Switch, cidr, ifname string) {
	l := h.lab
	l.t.Helper()
	p, err := parseHostPrefix(cidr)
	if err != nil {
		l.fatal("attach %s to %s: %v", h.name, sw.name, err)
	}
	l.mu.Lock()
	if h.linkLocked(sw) != nil {
		l.mu.Unlock()
		l.fatal("attach %s to %s: already attached", h.name, sw.name)
	}
	if ifname == "" {
		ifname = fmt.Sprintf("eth%d", len(h.links))
	}
	sw.ports++
	lk := &link{sw: sw, ifname: ifname, port: fmt.Sprintf("p%d", sw.ports), addr: p}
	l.mu.Unlock()

	// The pair is born in the switch's namespace with its peer in the
	// host's: it never exists in the root namespace.
	steps := [][]string{
		{"-n", sw.ns, "link", "add", "name", lk.port, "type", "veth", "peer", "name", lk.ifname, "netns", h.ns},
		{"-n", sw.ns, "link", "set", lk.port, "master", bridgeName, "up"},
		{"-n", h.ns, "addr", "add", p.String(), "dev", lk.ifname},
		{"-n", h.ns, "link", "set", lk.ifname, "up"},
	}
	for _, args := range steps {
		if _, err := l.ip(args...); err != nil {
			l.fatal("attach %s to %s: %v", h.name, sw.name, err)
		}
	}
	l.mu.Lock()
	h.links = append(h.links, lk)
	l.mu.Unlock()
}

// linkLocked returns h's link to sw, or nil.
func (h *Host) linkLocked(sw *Switch) *link {
	for _, lk := range h.links {
		if lk.sw == sw {
			return lk
		}
	}
	return nil
}

// mustLink returns h's link to sw or fails the test.
func (h *Host) mustLink(sw *Switch, op string) *link {
	h.lab.t.Helper()
	h.lab.mu.Lock()
	lk := h.linkLocked(sw)
	h.lab.mu.Unlock()
	if lk == nil {
		h.lab.fatal("%s %s on %s: not attached", op, h.name, sw.name)
	}
	return lk
}

// Prefix returns h's interface address on sw, such as 198.51.100.11/24.
func (h *Host) Prefix(sw *Switch) netip.Prefix {
	h.lab.t.Helper()
	lk := h.mustLink(sw, "address of")
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	return lk.addr
}

// IP returns h's address on sw.
func (h *Host) IP(sw *Switch) netip.Addr {
	h.lab.t.Helper()
	return h.Prefix(sw).Addr()
}

// Ifname returns the name of h's interface to sw (eth0, ... or wan and lan
// on a router).
func (h *Host) Ifname(sw *Switch) string {
	h.lab.t.Helper()
	return h.mustLink(sw, "interface of").ifname
}

// SetAddr replaces h's address on sw with cidr, the way a new DHCP lease
// from the ISP does: every address on the interface is flushed, cidr is
// added, and the routes given to Route are put back where their gateway is
// still on a connected network (the others are dropped, and logged).
// Established TCP connections keep their old local address and stall.
func (h *Host) SetAddr(sw *Switch, cidr string) {
	l := h.lab
	l.t.Helper()
	p, err := parseHostPrefix(cidr)
	if err != nil {
		l.fatal("set address of %s on %s: %v", h.name, sw.name, err)
	}
	lk := h.mustLink(sw, "set address of")
	if _, err := l.ip("-n", h.ns, "addr", "flush", "dev", lk.ifname); err != nil {
		l.fatal("set address of %s on %s: %v", h.name, sw.name, err)
	}
	if _, err := l.ip("-n", h.ns, "addr", "add", p.String(), "dev", lk.ifname); err != nil {
		l.fatal("set address of %s on %s: %v", h.name, sw.name, err)
	}
	l.mu.Lock()
	lk.addr = p
	l.mu.Unlock()
	h.reroute()
}

// reroute puts back the recorded routes after an address change or a link
// coming back: the kernel drops the routes through an interface that loses
// its last address or goes down.
func (h *Host) reroute() {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	var keep, drop []route
	for _, r := range h.routes {
		if h.onLinkLocked(r.via) {
			keep = append(keep, r)
		} else {
			drop = append(drop, r)
		}
	}
	h.routes = keep
	l.mu.Unlock()
	for _, r := range drop {
		l.t.Logf("netlab %s: %s: route %s via %s dropped: gateway no longer on a connected network", l.prefix, h.name, r.dstString(), r.via)
	}
	for _, r := range keep {
		if _, err := l.ip("-n", h.ns, "route", "replace", r.dstString(), "via", r.via.String()); err != nil {
			l.fatal("%s: put back route %s via %s: %v", h.name, r.dstString(), r.via, err)
		}
	}
}

// onLinkLocked reports whether a is on one of h's connected networks.
func (h *Host) onLinkLocked(a netip.Addr) bool {
	return slices.ContainsFunc(h.links, func(lk *link) bool { return lk.addr.Masked().Contains(a) })
}

// Route adds or replaces a route in h: dst is "default" or a prefix such as
// "203.0.113.0/24", via the gateway address gw on one of h's networks.
func (h *Host) Route(dst, gw string) {
	l := h.lab
	l.t.Helper()
	d, err := parseRouteDst(dst)
	if err != nil {
		l.fatal("route in %s: %v", h.name, err)
	}
	via, err := parseTestAddr(gw)
	if err != nil {
		l.fatal("route in %s: gateway: %v", h.name, err)
	}
	r := route{dst: d, via: via}
	if _, err := l.ip("-n", h.ns, "route", "replace", r.dstString(), "via", via.String()); err != nil {
		l.fatal("route in %s: %v", h.name, err)
	}
	l.mu.Lock()
	h.routes = slices.DeleteFunc(h.routes, func(o route) bool { return o.dst == d })
	h.routes = append(h.routes, r)
	l.mu.Unlock()
}

// EnableForwarding turns on IPv4 forwarding in h, making it a plain router
// between its networks (no NAT; see Lab.Router for that).
func (h *Host) EnableForwarding() {
	h.lab.t.Helper()
	if err := h.sysctl("net/ipv4/ip_forward", "1"); err != nil {
		h.lab.fatal("enable forwarding in %s: %v", h.name, err)
	}
}

// sysctl writes a value under /proc/sys inside h's namespace (where
// /proc/sys/net is the namespace's own). It goes through sh rather than
// the sysctl program so that procps is not needed.
func (h *Host) sysctl(key, value string) error {
	_, err := h.lab.run("", h.lab.ipPath, "netns", "exec", h.ns, "sh", "-c", `printf '%s\n' "$2" > "/proc/sys/$1"`, "sh", key, value)
	return err
}

// Cut pulls h's link to sw out of the switch: both ends stay up, h keeps
// its address, routes and carrier, and every frame in either direction is
// dropped until Restore, like a cable cut somewhere upstream. TCP
// connections are not reset; they retransmit and resume after a short cut.
func (l *Lab) Cut(h *Host, sw *Switch) {
	l.t.Helper()
	lk := h.mustLink(sw, "cut")
	l.mu.Lock()
	already := lk.cut
	lk.cut = true
	l.mu.Unlock()
	if already {
		return
	}
	if _, err := l.ip("-n", sw.ns, "link", "set", lk.port, "nomaster"); err != nil {
		l.fatal("cut %s from %s: %v", h.name, sw.name, err)
	}
}

// Restore undoes Cut: the link's switch port joins the bridge again.
func (l *Lab) Restore(h *Host, sw *Switch) {
	l.t.Helper()
	lk := h.mustLink(sw, "restore")
	l.mu.Lock()
	was := lk.cut
	lk.cut = false
	l.mu.Unlock()
	if !was {
		return
	}
	if _, err := l.ip("-n", sw.ns, "link", "set", lk.port, "master", bridgeName); err != nil {
		l.fatal("restore %s on %s: %v", h.name, sw.name, err)
	}
}
