package netsim

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// FuzzNAT runs random sequences of dials, closes, address changes, NAT
// moves and port forwards through two NATs, and checks the bookkeeping
// that no single test sees whole: no mapping is released more often than
// held, and once every connection is closed no link, port or mapping use
// is left behind, so every mapping expires after the timeout.
func FuzzNAT(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 3, 0, 3, 5, 0, 1, 0, 0})
	f.Add([]byte{0, 0x10, 2, 5, 0, 0, 0, 0x12, 8, 2, 0, 0, 0, 0x10, 2, 1, 0, 0})
	f.Add([]byte{4, 2, 0, 0, 0x11, 3, 6, 0, 0, 0, 0x14, 3, 7, 40, 0, 0, 0x12, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 300 {
			return
		}
		synctest.Test(t, func(t *testing.T) { runNATOps(t, ops) })
	})
}

func runNATOps(t *testing.T, ops []byte) {
	const timeout = 20 * time.Second
	n := New()
	nats := []*NAT{
		n.AddNAT("cone", Cone, netip.MustParseAddr("203.0.113.1")),
		n.AddNAT("symmetric", Symmetric, netip.MustParseAddr("203.0.113.2")),
	}
	for _, x := range nats {
		x.SetTimeout(timeout)
	}
	var hosts []*Host
	for i := range 5 {
		h := n.AddHost(fmt.Sprintf("h%d", i), netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))
		if i < 4 {
			nats[i%2].Attach(h)
		}
		ln, err := h.Listen("tcp", ":7300")
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		defer ln.Close()
		hosts = append(hosts, h)
	}

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(ops) >= 3 {
		op, a, b := ops[0], ops[1], ops[2]
		ops = ops[3:]
		switch op % 7 {
		case 0: // dial from a host, from its peer port or an ephemeral one
			h := hosts[int(a)%len(hosts)]
			var targets []netip.AddrPort
			for _, o := range hosts {
				for _, ip := range o.Addrs() {
					targets = append(targets, netip.AddrPortFrom(ip, 7300))
				}
			}
			for _, x := range nats {
				for _, ip := range x.Public() {
					targets = append(targets, netip.AddrPortFrom(ip, 7300))
				}
				for _, m := range x.Mappings() {
					targets = append(targets, m.Public)
				}
			}
			port := uint16(0)
			if a&0x10 != 0 {
				port = 7300
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := h.Dialer(port)(ctx, "tcp", targets[int(b)%len(targets)].String())
			cancel()
			if err == nil {
				conns = append(conns, c)
			}
		case 1: // close one connection (the accepting end stays in a backlog)
			if len(conns) > 0 {
				i := int(a) % len(conns)
				conns[i].Close()
				conns = append(conns[:i], conns[i+1:]...)
			}
		case 2: // the ISP changes a NAT's public address
			x := nats[int(a)%len(nats)]
			x.SetPublic(netip.AddrFrom4([4]byte{203, 0, 113, 10 + b%8*10 + byte(int(a)%len(nats))}))
		case 3:
			time.Sleep(time.Duration(b) * time.Second)
		case 4: // move a host behind a NAT or onto the public network
			h := hosts[int(a)%len(hosts)]
			if b%3 == 2 {
				nats[0].Detach(h)
				nats[1].Detach(h)
			} else {
				nats[b%3].Attach(h)
			}
		case 5: // forward a public port to a host, if it is behind that NAT
			x := nats[int(a)%len(nats)]
			h := hosts[int(b)%len(hosts)]
			n.mu.Lock()
			behind := h.nat == x
			n.mu.Unlock()
			if behind {
				x.Forward(7300+uint16(b%2), h, 7300)
			}
		case 6: // a host's own address changes
			h := hosts[int(a)%len(hosts)]
			h.SetAddrs(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + int(a)%len(hosts) + 10*int(b%4))}))
		}
		checkUsers(t, n, nats)
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for _, h := range hosts {
		for _, ln := range h.listenersSnapshot() {
			ln.Close() // resets what is still in the backlog
		}
	}
	// Accepted ends were never read: they are in backlogs, reset above.
	n.mu.Lock()
	if len(n.links) != 0 {
		t.Errorf("%d links left after every connection closed", len(n.links))
	}
	for _, h := range hosts {
		if len(h.ports) != 0 || len(h.bound) != 0 {
			t.Errorf("host %s: ports %v, bound %v left after every connection closed", h, h.ports, h.bound)
		}
	}
	n.mu.Unlock()
	checkUsers(t, n, nats)
	time.Sleep(timeout)
	for _, x := range nats {
		if ms := x.Mappings(); len(ms) != 0 {
			t.Errorf("NAT %s: Mappings() = %v a timeout after everything closed, want none", x, ms)
		}
	}
}

// checkUsers fails t if a mapping was released more often than held.
func checkUsers(t *testing.T, n *Network, nats []*NAT) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range nats {
		for _, m := range x.byKey {
			if m.users < 0 {
				t.Fatalf("NAT %s: mapping %v→%v has %d users", x, m.key.inside, m.public, m.users)
			}
		}
	}
	for l := range n.links {
		for _, hop := range l.hops {
			if hop.m != nil && hop.m.users <= 0 {
				t.Fatalf("live link uses mapping %v→%v with %d users", hop.m.key.inside, hop.m.public, hop.m.users)
			}
		}
	}
}

// listenersSnapshot returns the host's listeners.
func (h *Host) listenersSnapshot() []*listener {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	var ls []*listener
	for _, l := range h.listeners {
		ls = append(ls, l...)
	}
	return ls
}
