package netsim

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// NATKind is how a NAT maps inside sockets to public ports and which
// unsolicited connections it lets in (RFC 4787 terms in parentheses).
type NATKind int

const (
	// Cone gives each inside address:port one public port, whatever the
	// destination (endpoint-independent mapping), and lets any outside
	// host connect to that public port while the mapping lives
	// (endpoint-independent filtering: a "full cone"). This is the most
	// permissive kind, the one where hole punching always works; stricter
	// filtering can be added as another kind when a test needs it.
	Cone NATKind = iota + 1
	// Symmetric gives each (inside address:port, destination address:port)
	// pair its own public port (address-and-port-dependent mapping) and
	// lets in only the destination the mapping was made for, from the very
	// address and port that was dialed (address-and-port-dependent
	// filtering). Peers see a different port per destination, so a port
	// learnt from one peer is useless to another.
	Symmetric
)

// String returns "cone" or "symmetric".
func (k NATKind) String() string {
	switch k {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// DefaultNATTimeout is how long a NAT keeps a mapping that no connection
// uses, until SetTimeout says otherwise.
const DefaultNATTimeout = 60 * time.Second

// Public ports of mappings are handed out in order from natPortFirst, then
// wrap to natPortWrap, so that a test can tell a mapped port from the
// inside host's own ports (listening ports, ephemeral ports from 49152)
// at a glance. Forwarded ports are skipped.
const (
	natPortFirst = 20000
	natPortWrap  = 1024
)

// NAT is a home router or carrier NAT box: hosts attached to it form a LAN
// behind one or more public addresses. Create it with Network.AddNAT.
//
// Routing through a NAT:
//
//   - Hosts behind the same NAT reach each other directly at their own
//     (private) addresses, untranslated.
//   - A connection from inside to anywhere else leaves through a mapping:
//     its source becomes the NAT's first public address of the
//     destination's family and a mapped port (see NATKind), and that is
//     what the far end's RemoteAddr shows. The mapping is made even when
//     the connection is then dropped or refused, as a SYN makes it.
//   - A connection from outside to a public address gets in only through a
//     port forward (Forward), or through a live mapping that lets its
//     source in (see NATKind); otherwise the NAT drops it and the dial
//     waits until its context ends, as a SYN into a real NAT does.
//   - An inside host's own addresses are unreachable from outside the LAN:
//     the public network has no route to them. (Addresses stay unique in
//     the whole Network, so two LANs cannot reuse the same range.)
//   - Hairpinning: with SetHairpin(true), the default for Cone, an inside
//     host may connect to the NAT's own public address; the connection
//     goes out through its mapping and in again as if from outside, so the
//     receiver sees the dialer's public address and mapped port. With it
//     off, the default for Symmetric as on most such NATs, it is dropped.
//
// A mapping expires after it was idle (no connection, and no dial in
// progress, using it) for the NAT's timeout; established connections keep
// their mappings alive however quiet they are. Expiry is checked when a
// mapping is looked up, so no timer or goroutine runs for it.
//
// All of a host's addresses are behind its NAT, so a host cannot be NATed
// for IPv4 and public for IPv6; nor can a NAT sit behind another NAT.
type NAT struct {
	net  *Network
	name string
	kind NATKind

	// The following fields are guarded by net.mu.
	public   []netip.Addr
	timeout  time.Duration
	hairpin  bool
	byKey    map[mapKey]*mapping
	byPort   map[uint16]*mapping
	forwards map[uint16]forward
	nextPort uint16
}

// mapKey identifies a mapping: the inside socket, and for Symmetric the
// destination too.
type mapKey struct {
	inside netip.AddrPort
	remote netip.AddrPort // zero for Cone
}

// mapping is one dynamic NAT translation.
type mapping struct {
	key    mapKey
	host   *Host
	public netip.AddrPort

	// The following fields are guarded by net.mu.
	users     int       // connections and dials in progress that use it
	idleSince time.Time // when users last dropped to zero
}

// forward is a static port forward made by NAT.Forward.
type forward struct {
	host *Host
	port uint16
}

// natHop is one NAT a connection went through: the mapping it used (nil
// for a port forward) and the public address it used there, so that a
// change of public address can find the connections it breaks.
type natHop struct {
	nat    *NAT
	m      *mapping
	public netip.Addr
}

// Mapping describes one live NAT mapping, as NAT.Mappings reports it.
type Mapping struct {
	Host   *Host          // the inside host
	Inside netip.AddrPort // the inside socket: the host's address and port
	Public netip.AddrPort // what the outside sees
	Remote netip.AddrPort // for Symmetric, the destination it was made for; zero for Cone
}

// AddNAT adds a NAT box of the given kind with the given public addresses
// (possibly none: a router whose uplink is down). Attach hosts to it with
// Attach or NAT.AddHost. Like AddHost, it panics if kind is unknown or an
// address is invalid or held by a host or another NAT.
func (n *Network) AddNAT(name string, kind NATKind, public ...netip.Addr) *NAT {
	if kind != Cone && kind != Symmetric {
		panic(fmt.Sprintf("netsim: NAT %s: unknown kind %v", name, kind))
	}
	x := &NAT{
		net:      n,
		name:     name,
		kind:     kind,
		timeout:  DefaultNATTimeout,
		hairpin:  kind == Cone,
		byKey:    make(map[mapKey]*mapping),
		byPort:   make(map[uint16]*mapping),
		forwards: make(map[uint16]forward),
		nextPort: natPortFirst,
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.natAddrs == nil {
		n.natAddrs = make(map[netip.Addr]*NAT)
	}
	x.setPublicLocked(public)
	return x
}

// Name returns the name given to AddNAT.
func (x *NAT) Name() string { return x.name }

// String returns the NAT's name, for test logs.
func (x *NAT) String() string { return x.name }

// Kind returns the kind given to AddNAT.
func (x *NAT) Kind() NATKind { return x.kind }

// AddHost adds a host with the given (private) addresses behind x: a
// shorthand for Network.AddHost followed by Attach.
func (x *NAT) AddHost(name string, addrs ...netip.Addr) *Host {
	h := x.net.AddHost(name, addrs...)
	x.Attach(h)
	return h
}

// Attach puts h behind x, moving it from the public network or from
// another NAT. Moving is a network change for h: its connections are
// reset, and its mappings on a NAT it leaves are dropped. Attaching a host
// to the NAT it is behind does nothing.
func (x *NAT) Attach(h *Host) {
	n := x.net
	n.mu.Lock()
	defer n.mu.Unlock()
	n.moveHostLocked(h, x)
}

// Detach puts h, if it is behind x, back on the public network, with the
// same effects as Attach. Port forwards to h stay configured but lead
// nowhere until h is attached again.
func (x *NAT) Detach(h *Host) {
	n := x.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if h.nat == x {
		n.moveHostLocked(h, nil)
	}
}

func (n *Network) moveHostLocked(h *Host, to *NAT) {
	if h.net != n {
		panic(fmt.Sprintf("netsim: host %s belongs to another network", h.name))
	}
	if h.nat == to {
		return
	}
	if old := h.nat; old != nil {
		for _, m := range old.byKey {
			if m.host == h {
				old.dropLocked(m)
			}
		}
	}
	h.nat = to
	for l := range n.links {
		if l.hosts[0] == h || l.hosts[1] == h {
			n.breakLinkLocked(l)
		}
	}
	n.notifyLocked()
}

// Public returns a copy of the NAT's public addresses.
func (x *NAT) Public() []netip.Addr {
	x.net.mu.Lock()
	defer x.net.mu.Unlock()
	return slices.Clone(x.public)
}

// SetPublic replaces the NAT's public addresses: the ISP hands the router a
// new address. Every connection that went through an address now gone is
// reset (both ends see syscall.ECONNRESET, as SetAddrs does), the mappings
// on it are dropped, and new connections leave from the new addresses.
// Connections inside the LAN are untouched; port forwards stay and apply
// to the new addresses. With no address the NAT is cut off from the public
// network. It panics like AddNAT on a bad address.
func (x *NAT) SetPublic(addrs ...netip.Addr) {
	n := x.net
	n.mu.Lock()
	defer n.mu.Unlock()
	x.setPublicLocked(addrs)
	for _, m := range x.byKey {
		if !slices.Contains(x.public, m.public.Addr()) {
			x.dropLocked(m)
		}
	}
	for l := range n.links {
		for _, hop := range l.hops {
			if hop.nat == x && !slices.Contains(x.public, hop.public) {
				n.breakLinkLocked(l)
				break
			}
		}
	}
	n.notifyLocked()
}

// setPublicLocked checks and records addrs as x's public addresses.
func (x *NAT) setPublicLocked(addrs []netip.Addr) {
	n := x.net
	clean := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() || a.IsUnspecified() {
			panic(fmt.Sprintf("netsim: NAT %s: address %v is not a host address", x.name, a))
		}
		a = a.Unmap()
		if o := n.owner[a]; o != nil {
			panic(fmt.Sprintf("netsim: NAT %s: address %v is held by host %s; remove it there first", x.name, a, o.name))
		}
		if o := n.natAddrs[a]; o != nil && o != x {
			panic(fmt.Sprintf("netsim: NAT %s: address %v is held by NAT %s; remove it there first", x.name, a, o.name))
		}
		if !slices.Contains(clean, a) {
			clean = append(clean, a)
		}
	}
	for _, a := range x.public {
		delete(n.natAddrs, a)
	}
	for _, a := range clean {
		n.natAddrs[a] = x
	}
	x.public = clean
}

// SetTimeout sets how long an unused mapping lives, DefaultNATTimeout until
// then. It applies to existing mappings too, counting from when each was
// last used. It panics if d is not positive.
func (x *NAT) SetTimeout(d time.Duration) {
	if d <= 0 {
		panic(fmt.Sprintf("netsim: NAT %s: timeout %v is not positive", x.name, d))
	}
	x.net.mu.Lock()
	defer x.net.mu.Unlock()
	x.timeout = d
}

// SetHairpin turns hairpinning on or off (see NAT). Existing connections
// are unaffected.
func (x *NAT) SetHairpin(on bool) {
	n := x.net
	n.mu.Lock()
	defer n.mu.Unlock()
	x.hairpin = on
	n.notifyLocked()
}

// Forward forwards connections to publicPort on any of the NAT's public
// addresses to insidePort on inside's first address of the same family,
// whoever they come from: a port forward configured on a router. It
// follows inside across changes of its private address. A dynamic mapping
// that held publicPort is dropped (its connections go on), and no mapping
// gets the port while the forward exists. It panics if publicPort is 0 or
// inside is not behind x.
func (x *NAT) Forward(publicPort uint16, inside *Host, insidePort uint16) {
	n := x.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if publicPort == 0 || insidePort == 0 {
		panic(fmt.Sprintf("netsim: NAT %s: forward %d to %s:%d: ports must not be 0", x.name, publicPort, inside.name, insidePort))
	}
	if inside.nat != x {
		panic(fmt.Sprintf("netsim: NAT %s: forward to host %s, which is not behind it; Attach it first", x.name, inside.name))
	}
	if m := x.byPort[publicPort]; m != nil {
		x.dropLocked(m)
	}
	x.forwards[publicPort] = forward{host: inside, port: insidePort}
	n.notifyLocked()
}

// Unforward removes the port forward on publicPort, if any. Connections
// that came in through it go on, as conntrack keeps them on a router.
func (x *NAT) Unforward(publicPort uint16) {
	x.net.mu.Lock()
	defer x.net.mu.Unlock()
	delete(x.forwards, publicPort)
}

// Mappings returns the live (unexpired) dynamic mappings, ordered by public
// address and port. Port forwards are not listed.
func (x *NAT) Mappings() []Mapping {
	n := x.net
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	var ms []Mapping
	for _, m := range x.byKey {
		if x.expiredLocked(m, now) {
			x.dropLocked(m)
			continue
		}
		ms = append(ms, Mapping{Host: m.host, Inside: m.key.inside, Public: m.public, Remote: m.key.remote})
	}
	slices.SortFunc(ms, func(a, b Mapping) int {
		return cmp.Or(a.Public.Compare(b.Public), a.Inside.Compare(b.Inside), a.Remote.Compare(b.Remote))
	})
	return ms
}

// natRouteLocked carries an attempt that leaves its sender's LAN (r holds
// its source and destination as dialed): out through the sender's NAT if it
// has one, then either to a public host or in through the NAT that holds
// the destination address. It updates r.seenSrc and r.dst with what the
// receiver sees and appends each hop to r.hops as it goes, so r.hops is
// complete up to where the attempt was dropped. It returns the receiving
// host, or false if the attempt was dropped.
func (n *Network) natRouteLocked(from *Host, r *route) (*Host, bool) {
	now := time.Now()
	if x := from.nat; x != nil {
		if n.natAddrs[r.dst.Addr()] == x && !x.hairpin {
			return nil, false
		}
		m := x.outboundLocked(from, r.seenSrc, r.dst, now)
		if m == nil {
			return nil, false
		}
		r.hops = append(r.hops, natHop{nat: x, m: m, public: m.public.Addr()})
		r.seenSrc = m.public
	}
	if x := n.natAddrs[r.dst.Addr()]; x != nil {
		return x.inboundLocked(r, now)
	}
	to := n.owner[r.dst.Addr()]
	if to == nil || to.nat != nil {
		// Nobody, or an address behind some NAT, which the public network
		// does not route.
		return nil, false
	}
	return to, true
}

// outboundLocked returns the mapping for a connection from the inside
// socket src on h to dst, making one if there is none. It returns nil when
// the NAT has no public address of dst's family or no free port.
func (x *NAT) outboundLocked(h *Host, src, dst netip.AddrPort, now time.Time) *mapping {
	key := mapKey{inside: src}
	if x.kind == Symmetric {
		key.remote = dst
	}
	if m := x.byKey[key]; m != nil {
		if !x.expiredLocked(m, now) {
			return m
		}
		x.dropLocked(m)
	}
	i := slices.IndexFunc(x.public, func(a netip.Addr) bool { return a.Is4() == dst.Addr().Is4() })
	if i < 0 {
		return nil
	}
	port, ok := x.freePortLocked(now)
	if !ok {
		return nil
	}
	m := &mapping{key: key, host: h, public: netip.AddrPortFrom(x.public[i], port), idleSince: now}
	x.byKey[key] = m
	x.byPort[port] = m
	// The new mapping may be the hole a waiting inbound dial needs.
	x.net.notifyLocked()
	return m
}

// inboundLocked lets in an attempt from r.seenSrc to r.dst, one of x's
// public addresses, through a port forward or a mapping, translating r.dst
// to the inside socket. It returns the inside host, or false if x drops the
// attempt.
func (x *NAT) inboundLocked(r *route, now time.Time) (*Host, bool) {
	port := r.dst.Port()
	if f, ok := x.forwards[port]; ok {
		if f.host.nat != x {
			return nil, false
		}
		a, ok := f.host.sourceLocked(r.dst.Addr())
		if !ok {
			return nil, false
		}
		r.hops = append(r.hops, natHop{nat: x, public: r.dst.Addr()})
		r.dst = netip.AddrPortFrom(a, f.port)
		return f.host, true
	}
	m := x.byPort[port]
	if m == nil || m.public != r.dst {
		return nil, false
	}
	if x.expiredLocked(m, now) {
		x.dropLocked(m)
		return nil, false
	}
	if x.kind == Symmetric && m.key.remote != r.seenSrc {
		return nil, false
	}
	if !slices.Contains(m.host.addrs, m.key.inside.Addr()) {
		// The inside host's address changed: the mapping leads nowhere.
		return nil, false
	}
	r.hops = append(r.hops, natHop{nat: x, m: m, public: m.public.Addr()})
	r.dst = m.key.inside
	return m.host, true
}

// freePortLocked picks the next public port that neither a live mapping
// nor a forward holds, reclaiming ports of expired mappings.
func (x *NAT) freePortLocked(now time.Time) (uint16, bool) {
	for range 65535 - natPortWrap + 1 {
		p := x.nextPort
		x.nextPort++
		if x.nextPort == 0 { // wrapped past 65535
			x.nextPort = natPortWrap
		}
		if _, fwd := x.forwards[p]; fwd {
			continue
		}
		if m := x.byPort[p]; m != nil {
			if !x.expiredLocked(m, now) {
				continue
			}
			x.dropLocked(m)
		}
		return p, true
	}
	return 0, false
}

// expiredLocked reports whether m has been unused for the NAT's timeout.
func (x *NAT) expiredLocked(m *mapping, now time.Time) bool {
	return m.users == 0 && now.Sub(m.idleSince) >= x.timeout
}

// dropLocked forgets m. Connections that use it keep their reference, so
// that releasing it later is harmless.
func (x *NAT) dropLocked(m *mapping) {
	if x.byKey[m.key] == m {
		delete(x.byKey, m.key)
	}
	if x.byPort[m.public.Port()] == m {
		delete(x.byPort, m.public.Port())
	}
}

// holdHopsLocked marks the mappings in hops as used by one more connection
// or dial.
func holdHopsLocked(hops []natHop) {
	for _, h := range hops {
		if h.m != nil {
			h.m.users++
		}
	}
}

// releaseHopsLocked undoes holdHopsLocked; a mapping nobody uses any more
// starts to idle at now.
func releaseHopsLocked(hops []natHop, now time.Time) {
	for _, h := range hops {
		if h.m == nil {
			continue
		}
		if h.m.users--; h.m.users == 0 {
			h.m.idleSince = now
		}
	}
}
