package netsim

import (
	"context"
	"net"
	"net/netip"
)

// Dialer returns a dial function, shaped like net.Dialer.DialContext, whose
// connections leave from localPort instead of an ephemeral port: what a
// socket bound to the port with SO_REUSEPORT does, so that a node can dial
// from the port it listens on and its peers (and NATs) see that port. Many
// connections may share the port at once as long as each goes to a
// different destination; a second one to the same destination fails with
// syscall.EADDRNOTAVAIL, as connect does for a 4-tuple in use. While such
// connections live, Listen(":0") and DialContext do not hand the port out.
// Dialer(0) dials from ephemeral ports, like DialContext. Everything else
// is as DialContext.
func (h *Host) Dialer(localPort uint16) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		return h.dial(ctx, network, address, localPort)
	}
}

// takePortLocked reserves a dial's source port: localPort, shared with the
// host's other sockets bound to it, or a free ephemeral port if it is 0.
func (h *Host) takePortLocked(localPort uint16) (uint16, bool) {
	if localPort != 0 {
		if h.bound == nil {
			h.bound = make(map[uint16]int)
		}
		h.bound[localPort]++
		return localPort, true
	}
	p, ok := h.freePortLocked()
	if ok {
		h.ports[p] = struct{}{}
	}
	return p, ok
}

// releasePortLocked undoes takePortLocked(localPort), which returned port.
func (h *Host) releasePortLocked(localPort, port uint16) {
	if localPort != 0 {
		h.unbindLocked(localPort)
		return
	}
	delete(h.ports, port)
}

// unbindLocked drops one socket's hold on a port bound by Dialer.
func (h *Host) unbindLocked(port uint16) {
	if h.bound[port]--; h.bound[port] <= 0 {
		delete(h.bound, port)
	}
}

// tupleInUseLocked reports whether a live connection of h already has src
// as its local and dst as its remote end, which a new one may not reuse.
func (n *Network) tupleInUseLocked(h *Host, src, dst netip.AddrPort) bool {
	for l := range n.links {
		for side, end := range l.ends {
			if l.hosts[side] == h && end.local == src && end.remote == dst {
				return true
			}
		}
	}
	return false
}
