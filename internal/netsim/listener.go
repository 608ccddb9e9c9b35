package netsim

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
)

// listener is a net.Listener on one host. Dials complete into its backlog
// without waiting for Accept, as the kernel completes TCP handshakes.
type listener struct {
	host *Host
	addr netip.Addr // invalid: every address the host has, now or later
	port uint16
	fam  family

	// The following fields are guarded by host.net.mu.
	backlog []*conn
	closed  bool

	ready chan struct{} // holds a token while the backlog may be non-empty
	done  chan struct{} // closed by Close
}

// Listen listens on the host, like net.Listen. network is "tcp", "tcp4" or
// "tcp6"; address is ":port" to listen on every address the host has now
// or will have (":0" picks a free port, see Addr), or "ip:port" with one of
// the host's current addresses. Listening on a port another listener holds
// fails with syscall.EADDRINUSE, on an address the host lacks with
// syscall.EADDRNOTAVAIL. Listeners survive IP changes and Down.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	fam, err := familyOf(network)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	addr, port, hint, err := parseListenAddr(address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	switch {
	case addr.IsValid() && !fam.allows(addr):
		return nil, &net.OpError{Op: "listen", Net: network,
			Err: &net.AddrError{Err: "address family mismatch", Addr: address}}
	case addr.IsValid() && addr.Is4():
		fam = family4
	case addr.IsValid():
		fam = family6
	case fam == familyAny:
		fam = hint
	case !fam.overlaps(hint):
		return nil, &net.OpError{Op: "listen", Net: network,
			Err: &net.AddrError{Err: "address family mismatch", Addr: address}}
	}

	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	ln := &listener{host: h, addr: addr, port: port, fam: fam,
		ready: make(chan struct{}, 1), done: make(chan struct{})}
	fail := func(errno syscall.Errno) error {
		return &net.OpError{Op: "listen", Net: network, Addr: ln.Addr(),
			Err: os.NewSyscallError("bind", errno)}
	}
	if addr.IsValid() && !slices.Contains(h.addrs, addr) {
		return nil, fail(syscall.EADDRNOTAVAIL)
	}
	if port == 0 {
		p, ok := h.freePortLocked()
		if !ok {
			return nil, fail(syscall.EADDRINUSE)
		}
		ln.port = p
	}
	for _, other := range h.listeners[ln.port] {
		if ln.overlaps(other) {
			return nil, fail(syscall.EADDRINUSE)
		}
	}
	h.listeners[ln.port] = append(h.listeners[ln.port], ln)
	return ln, nil
}

// overlaps reports whether l and o could both receive one connection,
// which makes binding both an error.
func (l *listener) overlaps(o *listener) bool {
	if !l.fam.overlaps(o.fam) {
		return false
	}
	return !l.addr.IsValid() || !o.addr.IsValid() || l.addr == o.addr
}

// accepts reports whether a connection to dst belongs to l.
func (l *listener) accepts(dst netip.AddrPort) bool {
	if dst.Port() != l.port || !l.fam.allows(dst.Addr()) {
		return false
	}
	return !l.addr.IsValid() || l.addr == dst.Addr()
}

// listenerLocked returns the listener that takes a connection to dst, or nil.
func (h *Host) listenerLocked(dst netip.AddrPort) *listener {
	for _, l := range h.listeners[dst.Port()] {
		if l.accepts(dst) {
			return l
		}
	}
	return nil
}

// enqueueLocked puts an established connection in the backlog.
func (l *listener) enqueueLocked(c *conn) {
	l.backlog = append(l.backlog, c)
	l.signal()
}

// signal leaves a token for one waiting Accept, if none is there yet.
func (l *listener) signal() {
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

// Accept waits for and returns the next connection. After Close it returns
// an error wrapping net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	n := l.host.net
	for {
		n.mu.Lock()
		if l.closed {
			n.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
		}
		if len(l.backlog) > 0 {
			c := l.backlog[0]
			l.backlog[0] = nil
			l.backlog = l.backlog[1:]
			if len(l.backlog) > 0 {
				// Pass the turn on: another Accept may be waiting for it.
				l.signal()
			}
			n.mu.Unlock()
			return c, nil
		}
		n.mu.Unlock()
		select {
		case <-l.ready:
		case <-l.done:
		}
	}
}

// Close stops listening: blocked Accepts return, the port is free again, and
// connections still in the backlog are reset, as the kernel does.
func (l *listener) Close() error {
	n := l.host.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if l.closed {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.closed = true
	close(l.done)
	h := l.host
	h.listeners[l.port] = slices.DeleteFunc(h.listeners[l.port], func(o *listener) bool { return o == l })
	if len(h.listeners[l.port]) == 0 {
		delete(h.listeners, l.port)
	}
	for _, c := range l.backlog {
		n.breakLinkLocked(c.link)
	}
	l.backlog = nil
	return nil
}

// Addr returns the listening address as a *net.TCPAddr; its IP is nil for
// a listener on every address, so String gives ":port".
func (l *listener) Addr() net.Addr {
	a := &net.TCPAddr{Port: int(l.port)}
	if l.addr.IsValid() {
		a.IP = l.addr.AsSlice()
	}
	return a
}
