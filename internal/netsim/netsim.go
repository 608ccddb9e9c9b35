// Package netsim is an in-memory network for whole-cluster tests, built to
// run under testing/synctest (virtual time) as well as in plain tests.
//
// A Network holds Hosts. Each host has IP addresses that a test may change
// at any moment, listens and dials like a TCP stack, and can be taken down
// or cut off from other hosts. Connections are in-memory byte streams whose
// two ends see real-looking *net.TCPAddr addresses, so a node under test
// observes its peer's source address exactly as it would on a wire.
//
// The failure modes mimic what a node meets on a real network:
//
//   - a dial to an address nobody has, to a host that is down, or across a
//     partition blocks until its context ends, like a SYN into the void;
//   - a dial to a host with no listener on the port is refused at once
//     (syscall.ECONNREFUSED);
//   - an IP change or a host going down resets the connections it carried
//     (syscall.ECONNRESET on both ends); MoveSilently changes addresses
//     the way Linux does, leaving the connections silent instead;
//   - a partition stalls existing connections: writes fill the buffer and
//     then block, reads block, and everything resumes on Heal.
//
// Nothing here starts a goroutine of its own: blocking happens in the
// caller's goroutine on a sync.Cond or a channel, and time is only ever
// waited for through timers, so synctest can advance its fake clock
// whenever the simulated cluster is idle.
//
// Routing goes through one step, Network.routeLocked, that turns "source
// address:port → destination address:port" into the host that receives the
// connection and the source address it sees. Hosts not behind a NAT share
// one flat public network where nothing is rewritten; NAT boxes (AddNAT,
// nat.go) give the hosts attached to them a LAN of their own and translate
// what leaves and enters it.
package netsim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// BufferSize is how many bytes one direction of a connection holds before a
// write blocks, standing in for TCP's socket buffers and window.
const BufferSize = 256 << 10

// The ephemeral port range, as IANA recommends (Linux defaults to a wider
// one; which range does not matter to a test, only that ports are distinct).
const (
	ephemeralFirst = 49152
	ephemeralLast  = 65535
)

// Network is a set of hosts and the links between them. Create it with New.
// All methods of Network and Host are safe for concurrent use.
type Network struct {
	// mu guards the following fields and every Host's and listener's mutable
	// state. It is held only for short bookkeeping, never while blocking,
	// because synctest does not count a goroutine waiting on a mutex as idle.
	// Lock order: Network.mu before link.mu.
	mu      sync.Mutex
	hosts   []*Host
	owner   map[netip.Addr]*Host // which host holds each address
	cuts    map[hostPair]struct{}
	latency map[hostPair]time.Duration
	links   map[*link]struct{} // live connections, for IP changes, Down and partitions
	// changed is closed and replaced whenever reachability may have grown
	// (heal, up, address change, a new NAT mapping), waking dials that wait
	// for a path.
	changed chan struct{}
	// natAddrs holds the NATs' public addresses, which no host may take.
	// It is nil until the first AddNAT.
	natAddrs map[netip.Addr]*NAT
}

// hostPair names an unordered pair of hosts by their ids.
type hostPair [2]int

func pairOf(a, b *Host) hostPair {
	if a.id > b.id {
		a, b = b, a
	}
	return hostPair{a.id, b.id}
}

// New returns an empty network.
func New() *Network {
	return &Network{
		owner:   make(map[netip.Addr]*Host),
		cuts:    make(map[hostPair]struct{}),
		latency: make(map[hostPair]time.Duration),
		links:   make(map[*link]struct{}),
		changed: make(chan struct{}),
	}
}

// Host is one machine's network stack: its addresses, listeners and
// connections. Create it with Network.AddHost.
type Host struct {
	net  *Network
	id   int
	name string

	// The following fields are guarded by net.mu.
	addrs     []netip.Addr
	down      bool
	listeners map[uint16][]*listener
	ports     map[uint16]struct{} // ephemeral ports held by outgoing connections
	nextPort  uint16
	bound     map[uint16]int // sockets bound to a port by Dialer, per port
	nat       *NAT           // the NAT the host sits behind; nil on the public network
}

// AddHost adds a host with the given addresses (possibly none). The name
// appears only in Host.Name and panic messages; routing uses addresses only.
// It panics if an address is invalid or already held by another host: two
// hosts with one address is a mistake in the test, not a network condition.
func (n *Network) AddHost(name string, addrs ...netip.Addr) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := &Host{
		net:       n,
		id:        len(n.hosts),
		name:      name,
		listeners: make(map[uint16][]*listener),
		ports:     make(map[uint16]struct{}),
		nextPort:  ephemeralFirst,
	}
	n.hosts = append(n.hosts, h)
	n.assignLocked(h, addrs)
	n.notifyLocked()
	return h
}

// assignLocked replaces h's addresses after checking that none belongs to
// another host. IPv4-mapped IPv6 addresses are stored as IPv4, as the
// kernel treats them.
func (n *Network) assignLocked(h *Host, addrs []netip.Addr) {
	clean := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !a.IsValid() || a.IsUnspecified() {
			panic(fmt.Sprintf("netsim: host %s: address %v is not a host address", h.name, a))
		}
		a = a.Unmap()
		if o := n.owner[a]; o != nil && o != h {
			panic(fmt.Sprintf("netsim: host %s: address %v is held by host %s; remove it there first", h.name, a, o.name))
		}
		if x := n.natAddrs[a]; x != nil {
			panic(fmt.Sprintf("netsim: host %s: address %v is the public address of NAT %s", h.name, a, x.name))
		}
		if !slices.Contains(clean, a) {
			clean = append(clean, a)
		}
	}
	for _, a := range h.addrs {
		delete(n.owner, a)
	}
	for _, a := range clean {
		n.owner[a] = h
	}
	h.addrs = clean
}

// notifyLocked wakes every dial waiting for a path so it routes again.
func (n *Network) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// Name returns the name given to AddHost.
func (h *Host) Name() string { return h.name }

// String returns the host's name, for test logs.
func (h *Host) String() string { return h.name }

// Addrs returns a copy of the host's current addresses, in the order given
// to AddHost or SetAddrs. Dials use the first one of the right family.
func (h *Host) Addrs() []netip.Addr {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	return slices.Clone(h.addrs)
}

// SetAddrs replaces the host's addresses: an IP change. Connections whose
// local end on this host used an address that is gone are reset, and both
// of their ends see syscall.ECONNRESET. (A real stack would leave the far
// end hanging until a keepalive or write timeout; resetting both makes tests
// deterministic without hiding the break from either side.) Listeners stay:
// they listen on a port, on whatever addresses the host has. Like AddHost,
// it panics if an address is held by another host.
func (h *Host) SetAddrs(addrs ...netip.Addr) {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	n.assignLocked(h, addrs)
	for l := range n.links {
		for side, end := range l.ends {
			if l.hosts[side] == h && !slices.Contains(h.addrs, end.local.Addr()) {
				n.breakLinkLocked(l)
				break
			}
		}
	}
	n.notifyLocked()
}

// MoveSilently replaces the host's addresses as SetAddrs does, but the
// way a Linux host's `ip addr` change leaves its connections: those whose
// local end on this host used an address that is gone are not reset, they
// go silent. Nothing arrives on them any more, in either direction (what
// this host sends leaves from an address nobody routes back to, what the
// far end sends goes to an address nobody holds); writes fill the buffer
// and then block, reads block, a Close reaches nobody, and Heal does not
// revive them. Only the ends' own timeouts notice. Like AddHost, it
// panics if an address is held by another host.
func (h *Host) MoveSilently(addrs ...netip.Addr) {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	n.assignLocked(h, addrs)
	now := time.Now()
	for l := range n.links {
		for side, end := range l.ends {
			if l.hosts[side] == h && !slices.Contains(h.addrs, end.local.Addr()) {
				l.orphan(now)
				break
			}
		}
	}
	n.notifyLocked()
}

// Down takes the host off the network, as a crash or a pulled cable does:
// all its connections are reset, dials to it and from it block until their
// context ends. Its listeners remain and serve again after Up; whether the
// process behind them survives is the test's business.
func (h *Host) Down() {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	h.down = true
	for l := range n.links {
		if l.hosts[0] == h || l.hosts[1] == h {
			n.breakLinkLocked(l)
		}
	}
}

// Up puts a host taken down by Down back on the network.
func (h *Host) Up() {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	h.down = false
	n.notifyLocked()
}

// Partition cuts the path between a and b in both directions. Their
// existing connections stall (data already arrived stays readable; writes
// fill the buffer and then block; reads block) and new dials between them
// block until their context ends or the cut heals. Connections are not
// reset: like a real cut, only the endpoints' own timeouts notice it.
func (n *Network) Partition(a, b *Host) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[pairOf(a, b)] = struct{}{}
	now := time.Now()
	for l := range n.links {
		if pairOf(l.hosts[0], l.hosts[1]) == pairOf(a, b) {
			l.setStalled(true, now)
		}
	}
}

// Heal removes the cut between a and b made by Partition: stalled
// connections deliver what they buffered and waiting dials proceed.
func (n *Network) Heal(a, b *Host) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cuts, pairOf(a, b))
	n.resumeLocked()
}

// HealAll removes every cut made by Partition.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
	n.resumeLocked()
}

// resumeLocked lets every stalled link whose path is whole again flow.
func (n *Network) resumeLocked() {
	now := time.Now()
	for l := range n.links {
		if _, cut := n.cuts[pairOf(l.hosts[0], l.hosts[1])]; !cut {
			l.setStalled(false, now)
		}
	}
	n.notifyLocked()
}

// SetLatency sets the one-way delay between a and b, in both directions:
// every write is delivered that long after it was made, and a dial takes a
// round trip (twice the delay) to complete or be refused. It applies to new
// writes on existing connections too. The default is zero: delivery at once.
func (n *Network) SetLatency(a, b *Host, d time.Duration) {
	d = max(d, 0)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.latency[pairOf(a, b)] = d
	for l := range n.links {
		if pairOf(l.hosts[0], l.hosts[1]) == pairOf(a, b) {
			l.setLatency(d)
		}
	}
}

// route is where a connection attempt arrives and how it looks there.
type route struct {
	to      *Host
	seenSrc netip.AddrPort // the source address the receiver sees
	dst     netip.AddrPort // the destination after translation: the receiver's local end
	latency time.Duration  // one way
	hops    []natHop       // NAT mappings and forwards the attempt went through
}

// routeLocked carries a connection attempt from src on host from to dst.
// It reports false when the attempt vanishes: no host has the address, an
// end is down, the path is cut, or a NAT drops it. This is the one place
// that decides paths. Hosts on the same LAN (both public, or both behind
// one NAT) reach each other directly; anything else crosses the public
// network through NATs (natRouteLocked), which map src to a public endpoint
// on the way out and drop or translate unsolicited flows on the way in.
// Even when it reports false, r.hops lists the NAT mappings the attempt
// made or used before it vanished, as a SYN that leaves a NAT creates a
// mapping whatever becomes of it; a waiting dial keeps them alive.
func (n *Network) routeLocked(from *Host, src, dst netip.AddrPort) (r route, ok bool) {
	if from.down {
		return route{}, false
	}
	r = route{seenSrc: src, dst: dst}
	to := n.owner[dst.Addr()]
	if to == nil || to.nat != from.nat {
		if to, ok = n.natRouteLocked(from, &r); !ok {
			return r, false
		}
	}
	if to.down {
		return r, false
	}
	if _, cut := n.cuts[pairOf(from, to)]; cut {
		return r, false
	}
	r.to, r.latency = to, n.latency[pairOf(from, to)]
	return r, true
}

// sourceLocked picks the source address for a dial to dst: the host's first
// address of the same family, as a kernel with one default route would.
func (h *Host) sourceLocked(dst netip.Addr) (netip.Addr, bool) {
	for _, a := range h.addrs {
		if a.Is4() == dst.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// freePortLocked finds an ephemeral port that neither an outgoing
// connection nor a listener holds. Ports are handed out in order and wrap,
// so a port just released is not reused soon (as with TIME_WAIT).
func (h *Host) freePortLocked() (uint16, bool) {
	for range ephemeralLast - ephemeralFirst + 1 {
		p := h.nextPort
		h.nextPort++
		if h.nextPort == 0 { // wrapped past 65535
			h.nextPort = ephemeralFirst
		}
		if _, used := h.ports[p]; used || len(h.listeners[p]) > 0 || h.bound[p] > 0 {
			continue
		}
		return p, true
	}
	return 0, false
}

// DialContext connects to address, an "ip:port" literal (no names: there is
// no resolver), like net.Dialer.DialContext. network is "tcp", "tcp4" or
// "tcp6". The source is the host's first address of the destination's
// family and a fresh ephemeral port.
//
// Errors are *net.OpError values, as from package net: wrapping
// syscall.ECONNREFUSED when the destination host has no listener on the
// port, syscall.ENETUNREACH when the host has no address of the right
// family, and ctx.Err() when ctx ends first. When the destination address
// is unknown, either host is down or the path is cut, the dial waits (until
// ctx ends, or until the path appears, as SYN retries would find it).
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return h.dial(ctx, network, address, 0)
}

// dial is DialContext from localPort, or from a fresh ephemeral port when
// localPort is 0 (see Dialer).
func (h *Host) dial(ctx context.Context, network, address string, localPort uint16) (net.Conn, error) {
	n := h.net
	fam, err := familyOf(network)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	dst, err := parseDialAddr(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	dstTCP := net.TCPAddrFromAddrPort(dst)
	if !fam.allows(dst.Addr()) {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: dstTCP,
			Err: &net.AddrError{Err: "no suitable address", Addr: address}}
	}
	fail := func(src netip.AddrPort, err error) error {
		var srcTCP net.Addr
		if src.IsValid() {
			srcTCP = net.TCPAddrFromAddrPort(src)
		}
		return &net.OpError{Op: "dial", Net: network, Source: srcTCP, Addr: dstTCP, Err: err}
	}

	// The port is held for the whole attempt so that a route (and a NAT
	// mapping) sees the same source on every retry; so are the NAT
	// mappings the attempt made, as retransmitted SYNs keep them alive.
	n.mu.Lock()
	port, ok := h.takePortLocked(localPort)
	n.mu.Unlock()
	if !ok {
		return nil, fail(netip.AddrPort{}, os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
	}
	established := false
	var held []natHop
	defer func() {
		if !established {
			n.mu.Lock()
			h.releasePortLocked(localPort, port)
			releaseHopsLocked(held, time.Now())
			n.mu.Unlock()
		}
	}()

	roundTripDone := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, fail(netip.AddrPort{}, err)
		}
		n.mu.Lock()
		srcIP, ok := h.sourceLocked(dst.Addr())
		if !ok {
			n.mu.Unlock()
			return nil, fail(netip.AddrPort{}, os.NewSyscallError("connect", syscall.ENETUNREACH))
		}
		src := netip.AddrPortFrom(srcIP, port)
		if localPort != 0 && n.tupleInUseLocked(h, src, dst) {
			n.mu.Unlock()
			return nil, fail(src, os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
		}
		r, ok := n.routeLocked(h, src, dst)
		holdHopsLocked(r.hops)
		releaseHopsLocked(held, time.Now())
		held = r.hops
		if !ok {
			changed := n.changed
			n.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil, fail(src, ctx.Err())
			case <-changed:
			}
			continue
		}
		if rtt := 2 * r.latency; rtt > 0 && !roundTripDone {
			// SYN out, SYN-ACK or RST back; then route again, since the
			// world may have changed meanwhile.
			n.mu.Unlock()
			t := time.NewTimer(rtt)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fail(src, ctx.Err())
			case <-t.C:
			}
			roundTripDone = true
			continue
		}
		ln := r.to.listenerLocked(r.dst)
		if ln == nil {
			n.mu.Unlock()
			return nil, fail(src, os.NewSyscallError("connect", syscall.ECONNREFUSED))
		}
		l := n.newLinkLocked(h, r, src, dst, port)
		if localPort != 0 {
			l.dialPort, l.boundPort = 0, localPort
		}
		ln.enqueueLocked(l.ends[1])
		established = true
		n.mu.Unlock()
		return l.ends[0], nil
	}
}

// newLinkLocked registers a connection from src on host from to dst along
// r. The link takes over the NAT mappings in r.hops, held by the dial.
func (n *Network) newLinkLocked(from *Host, r route, src, dst netip.AddrPort, port uint16) *link {
	l := &link{net: n, hosts: [2]*Host{from, r.to}, dialPort: port, latency: r.latency, hops: r.hops}
	l.cond.L = &l.mu
	l.ends[0] = &conn{link: l, side: 0, local: src, remote: dst}
	l.ends[1] = &conn{link: l, side: 1, local: r.dst, remote: r.seenSrc}
	n.links[l] = struct{}{}
	return l
}

// breakLinkLocked resets l on both ends and forgets it.
func (n *Network) breakLinkLocked(l *link) {
	l.mu.Lock()
	l.breakLocked()
	l.mu.Unlock()
	n.removeLinkLocked(l)
}

// removeLinkLocked forgets l and frees its ephemeral or bound port and its
// NAT mappings. It is idempotent.
func (n *Network) removeLinkLocked(l *link) {
	if _, ok := n.links[l]; !ok {
		return
	}
	delete(n.links, l)
	delete(l.hosts[0].ports, l.dialPort)
	if l.boundPort != 0 {
		l.hosts[0].unbindLocked(l.boundPort)
	}
	releaseHopsLocked(l.hops, time.Now())
}
