package netsim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// The NAT lab's addresses, all from RFC 5737: a LAN in 192.0.2.0/24 behind
// NATs whose public addresses are in 203.0.113.0/24, and public hosts in
// 198.51.100.0/24.
var (
	lanA    = netip.MustParseAddr("192.0.2.10")
	lanB    = netip.MustParseAddr("192.0.2.11")
	lanA2   = netip.MustParseAddr("192.0.2.12")
	lanE    = netip.MustParseAddr("192.0.2.20") // behind the second NAT
	natPub  = netip.MustParseAddr("203.0.113.10")
	natPub2 = netip.MustParseAddr("203.0.113.20")
	nat2Pub = netip.MustParseAddr("203.0.113.30")
	pubC    = netip.MustParseAddr("198.51.100.10")
	pubD    = netip.MustParseAddr("198.51.100.20")
)

// peerPort is where every host of the lab listens, and the port it dials
// from with Dialer, as a Buoy node does.
const peerPort = 7300

// natLab is a NAT with hosts a and b behind it and public hosts c and d,
// each listening on peerPort.
type natLab struct {
	n          *Network
	nat        *NAT
	a, b, c, d *Host
	ln         map[*Host]net.Listener
}

func newNATLab(t *testing.T, kind NATKind) *natLab {
	t.Helper()
	n := New()
	nat := n.AddNAT("router", kind, natPub)
	lab := &natLab{
		n:   n,
		nat: nat,
		a:   nat.AddHost("a", lanA),
		b:   nat.AddHost("b", lanB),
		c:   n.AddHost("c", pubC),
		d:   n.AddHost("d", pubD),
		ln:  make(map[*Host]net.Listener),
	}
	for _, h := range []*Host{lab.a, lab.b, lab.c, lab.d} {
		lab.ln[h] = mustListen(t, h, "tcp", ":7300")
	}
	return lab
}

// connectFrom dials address from h's port (0: ephemeral) and accepts the
// connection on to's listener.
func (lab *natLab) connectFrom(t *testing.T, h *Host, port uint16, to *Host, address string) (client, server net.Conn) {
	t.Helper()
	client, err := h.Dialer(port)(context.Background(), "tcp", address)
	if err != nil {
		t.Fatalf("%s: Dialer(%d)(%q): %v", h, port, address, err)
	}
	server, err = lab.ln[to].Accept()
	if err != nil {
		t.Fatalf("%s: Accept: %v", to, err)
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// wantDropped checks that a dial from h's port to address waits until its
// context ends, as a SYN that a NAT drops does.
func wantDropped(t *testing.T, h *Host, port uint16, address string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := h.Dialer(port)(ctx, "tcp", address)
	if c != nil {
		t.Errorf("%s: dial %s from port %d connected %v to %v; want it dropped", h, address, port, c.LocalAddr(), c.RemoteAddr())
		c.Close()
		return
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: dial %s from port %d = %v; want it dropped (context deadline)", h, address, port, err)
	}
}

func addrPort(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

func TestNATMapping(t *testing.T) {
	tests := []struct {
		kind     NATKind
		samePort bool // whether one inside socket shows one public port to two peers
	}{
		{Cone, true},
		{Symmetric, false},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newNATLab(t, tt.kind)
				c1, toC := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
				c2, toD := lab.connectFrom(t, lab.a, peerPort, lab.d, "198.51.100.20:7300")
				for _, c := range []net.Conn{c1, c2} {
					if got, want := addrPort(c.LocalAddr()), netip.AddrPortFrom(lanA, peerPort); got != want {
						t.Errorf("inside LocalAddr = %v, want %v", got, want)
					}
				}
				seenC, seenD := addrPort(toC.RemoteAddr()), addrPort(toD.RemoteAddr())
				for _, seen := range []netip.AddrPort{seenC, seenD} {
					if seen.Addr() != natPub || seen.Port() == peerPort {
						t.Errorf("peer sees the inside socket as %v, want %v and a mapped port", seen, natPub)
					}
				}
				if same := seenC.Port() == seenD.Port(); same != tt.samePort {
					t.Errorf("c sees %v and d sees %v: same port = %v, want %v", seenC, seenD, same, tt.samePort)
				}
				mustRoundTrip(t, c1, toC, "via the NAT")
				mustRoundTrip(t, toD, c2, "and back")

				// Another inside socket gets a port of its own.
				_, toC2 := lab.connectFrom(t, lab.a, 0, lab.c, "198.51.100.10:7300")
				if seen := addrPort(toC2.RemoteAddr()); seen.Addr() != natPub || seen.Port() == seenC.Port() || seen.Port() == seenD.Port() {
					t.Errorf("ephemeral socket seen as %v, want %v with a port not in {%d, %d}", seen, natPub, seenC.Port(), seenD.Port())
				}

				bound := netip.AddrPortFrom(lanA, peerPort)
				ephemeral := netip.AddrPortFrom(lanA, ephemeralFirst)
				dstC, dstD := netip.MustParseAddrPort("198.51.100.10:7300"), netip.MustParseAddrPort("198.51.100.20:7300")
				seenC2 := addrPort(toC2.RemoteAddr())
				want := []Mapping{
					{Host: lab.a, Inside: bound, Public: seenC},
					{Host: lab.a, Inside: ephemeral, Public: seenC2},
				}
				if tt.kind == Symmetric {
					want = []Mapping{
						{Host: lab.a, Inside: bound, Public: seenC, Remote: dstC},
						{Host: lab.a, Inside: bound, Public: seenD, Remote: dstD},
						{Host: lab.a, Inside: ephemeral, Public: seenC2, Remote: dstC},
					}
				}
				if got := lab.nat.Mappings(); !slices.Equal(got, want) {
					t.Errorf("Mappings() = %v, want %v", got, want)
				}
			})
		})
	}
}

func TestNATInbound(t *testing.T) {
	// mapped dials c from a's peer port, a listening there too, and returns
	// the public port c sees.
	mapped := func(t *testing.T, lab *natLab) uint16 {
		_, s := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
		return addrPort(s.RemoteAddr()).Port()
	}
	tests := []struct {
		name string
		kind NATKind
		run  func(t *testing.T, lab *natLab)
	}{
		{"unmapped port dropped", Cone, func(t *testing.T, lab *natLab) {
			wantDropped(t, lab.c, 0, "203.0.113.10:7300")
		}},
		{"private address unreachable from outside", Cone, func(t *testing.T, lab *natLab) {
			wantDropped(t, lab.c, 0, "192.0.2.10:7300")
		}},
		{"cone: mapped port open to anyone", Cone, func(t *testing.T, lab *natLab) {
			p := mapped(t, lab)
			c, s := lab.connectFrom(t, lab.d, 0, lab.a, netip.AddrPortFrom(natPub, p).String())
			if got, want := addrPort(s.RemoteAddr()), addrPort(c.LocalAddr()); got != want {
				t.Errorf("a sees the outside dialer as %v, want %v", got, want)
			}
			if got, want := addrPort(s.LocalAddr()), netip.AddrPortFrom(lanA, peerPort); got != want {
				t.Errorf("inbound LocalAddr = %v, want %v", got, want)
			}
			mustRoundTrip(t, c, s, "through the hole")
		}},
		{"mapping of a changed inside address leads nowhere", Cone, func(t *testing.T, lab *natLab) {
			p := mapped(t, lab) // reset by the change, so the mapping idles
			lab.a.SetAddrs(lanA2)
			wantDropped(t, lab.d, 0, netip.AddrPortFrom(natPub, p).String())
		}},
		{"symmetric: mapped port closed to others", Symmetric, func(t *testing.T, lab *natLab) {
			p := mapped(t, lab)
			wantDropped(t, lab.d, 0, netip.AddrPortFrom(natPub, p).String())
		}},
		{"symmetric: mapped port closed to another port of its destination", Symmetric, func(t *testing.T, lab *natLab) {
			p := mapped(t, lab)
			wantDropped(t, lab.c, 0, netip.AddrPortFrom(natPub, p).String())
		}},
		{"symmetric: mapped port open to its destination", Symmetric, func(t *testing.T, lab *natLab) {
			c, s := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
			p := addrPort(s.RemoteAddr()).Port()
			// While that connection lives, c cannot dial the same 4-tuple
			// back; once it is gone, the idle mapping still lets c in.
			c.Close()
			s.Close()
			c, s = lab.connectFrom(t, lab.c, peerPort, lab.a, netip.AddrPortFrom(natPub, p).String())
			mustRoundTrip(t, c, s, "the reply path")
		}},
		{"port forward", Symmetric, func(t *testing.T, lab *natLab) {
			lab.nat.Forward(8443, lab.b, peerPort)
			c, s := lab.connectFrom(t, lab.d, 0, lab.b, "203.0.113.10:8443")
			checks := []struct {
				what      string
				got, want netip.AddrPort
			}{
				{"dialer RemoteAddr", addrPort(c.RemoteAddr()), netip.MustParseAddrPort("203.0.113.10:8443")},
				{"inside LocalAddr", addrPort(s.LocalAddr()), netip.AddrPortFrom(lanB, peerPort)},
				{"inside RemoteAddr", addrPort(s.RemoteAddr()), addrPort(c.LocalAddr())},
			}
			for _, ck := range checks {
				if ck.got != ck.want {
					t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
				}
			}
			mustRoundTrip(t, c, s, "forwarded")
			// The forward follows b to a new private address.
			lab.b.SetAddrs(lanA2)
			c2, s2 := lab.connectFrom(t, lab.c, 0, lab.b, "203.0.113.10:8443")
			if got, want := addrPort(s2.LocalAddr()), netip.AddrPortFrom(lanA2, peerPort); got != want {
				t.Errorf("after b's address changed, inside LocalAddr = %v, want %v", got, want)
			}
			// Removing the forward stops new connections only.
			lab.nat.Unforward(8443)
			wantDropped(t, lab.d, 0, "203.0.113.10:8443")
			mustRoundTrip(t, c2, s2, "still forwarded")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt.run(t, newNATLab(t, tt.kind))
			})
		})
	}
}

func TestNATMappingTimeout(t *testing.T) {
	for _, kind := range []NATKind{Cone, Symmetric} {
		t.Run(kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const timeout = 30 * time.Second
				lab := newNATLab(t, kind)
				lab.nat.SetTimeout(timeout)
				c, s := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
				public := addrPort(s.RemoteAddr())

				// A quiet connection keeps its mapping however long.
				time.Sleep(10 * timeout)
				if got := len(lab.nat.Mappings()); got != 1 {
					t.Fatalf("after %v of a quiet connection, %d mappings, want 1", 10*timeout, got)
				}
				c.Close()
				s.Close()
				time.Sleep(timeout - time.Nanosecond)
				if got := len(lab.nat.Mappings()); got != 1 {
					t.Fatalf("idle for just under the timeout, %d mappings, want 1", got)
				}
				// An inbound connection through the mapping (from the
				// destination it was made for, which both kinds let in) uses
				// it too, so the timeout starts again when it closes.
				c, s = lab.connectFrom(t, lab.c, peerPort, lab.a, public.String())
				mustRoundTrip(t, c, s, "still mapped")
				c.Close()
				s.Close()
				time.Sleep(timeout - time.Nanosecond)
				if got := len(lab.nat.Mappings()); got != 1 {
					t.Fatalf("idle again for just under the timeout, %d mappings, want 1", got)
				}
				time.Sleep(time.Nanosecond)
				if got := lab.nat.Mappings(); len(got) != 0 {
					t.Fatalf("idle for the timeout, Mappings() = %v, want none", got)
				}
				wantDropped(t, lab.c, peerPort, public.String())

				// The inside socket gets a fresh mapping.
				_, s3 := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
				if got := addrPort(s3.RemoteAddr()); got.Addr() != natPub || got.Port() == public.Port() {
					t.Errorf("after expiry, c sees %v, want %v with a port other than %d", got, natPub, public.Port())
				}
			})
		})
	}
	t.Run("a waiting dial keeps its mapping", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const timeout = 30 * time.Second
			lab := newNATLab(t, Cone)
			lab.nat.SetTimeout(timeout)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Another NAT's unmapped port: the SYN leaves, then vanishes.
			lab.n.AddNAT("far", Cone, nat2Pub)
			var err error
			done := started(func() {
				_, err = lab.a.Dialer(peerPort)(ctx, "tcp", "203.0.113.30:7300")
			})
			time.Sleep(10 * timeout)
			if got := len(lab.nat.Mappings()); got != 1 || finished(done) {
				t.Fatalf("while a dial waits: %d mappings, dial finished %v (%v); want 1, false", got, finished(done), err)
			}
			cancel()
			<-done
			time.Sleep(timeout)
			if got := lab.nat.Mappings(); len(got) != 0 {
				t.Errorf("after the dial ended and the timeout passed, Mappings() = %v, want none", got)
			}
		})
	})
}

func TestNATSetPublic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newNATLab(t, Cone)
		lab.nat.Forward(peerPort, lab.b, peerPort)
		out, outS := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
		in, inS := lab.connectFrom(t, lab.d, 0, lab.b, "203.0.113.10:7300")
		lan, lanS := lab.connectFrom(t, lab.a, peerPort, lab.b, "192.0.2.11:7300")

		lab.nat.SetPublic(natPub2)
		wantReset(t, "outbound dialer", out)
		wantReset(t, "outbound acceptor", outS)
		wantReset(t, "inbound dialer", in)
		wantReset(t, "inbound acceptor", inS)
		mustRoundTrip(t, lan, lanS, "the LAN does not care")
		if got := lab.nat.Mappings(); len(got) != 0 {
			t.Errorf("Mappings() after SetPublic = %v, want none", got)
		}
		if got, want := lab.nat.Public(), []netip.Addr{natPub2}; !slices.Equal(got, want) {
			t.Errorf("Public() = %v, want %v", got, want)
		}

		_, s := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
		if got := addrPort(s.RemoteAddr()).Addr(); got != natPub2 {
			t.Errorf("after SetPublic, c sees a as %v, want %v", got, natPub2)
		}
		wantDropped(t, lab.d, 0, "203.0.113.10:7300")
		lab.connectFrom(t, lab.d, 0, lab.b, "203.0.113.20:7300") // the forward moved along

		// The old address is free for a host to take.
		lab.n.AddHost("new owner", natPub)
	})
}

func TestNATLAN(t *testing.T) {
	for _, kind := range []NATKind{Cone, Symmetric} {
		t.Run(kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newNATLab(t, kind)
				c, s := lab.connectFrom(t, lab.a, peerPort, lab.b, "192.0.2.11:7300")
				if got, want := addrPort(s.RemoteAddr()), netip.AddrPortFrom(lanA, peerPort); got != want {
					t.Errorf("b sees a as %v, want its private address %v", got, want)
				}
				mustRoundTrip(t, c, s, "next door")
				if got := lab.nat.Mappings(); len(got) != 0 {
					t.Errorf("LAN traffic made mappings %v, want none", got)
				}
			})
		})
	}
}

func TestNATHairpin(t *testing.T) {
	tests := []struct {
		kind    NATKind
		hairpin bool // the kind's default
	}{
		{Cone, true},
		{Symmetric, false},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newNATLab(t, tt.kind)
				lab.nat.Forward(peerPort, lab.b, peerPort)
				if !tt.hairpin {
					wantDropped(t, lab.a, 0, "203.0.113.10:7300")
					lab.nat.SetHairpin(true)
				}
				c, s := lab.connectFrom(t, lab.a, 0, lab.b, "203.0.113.10:7300")
				if got := addrPort(s.RemoteAddr()); got.Addr() != natPub {
					t.Errorf("hairpinned connection seen from %v, want a's public address %v", got, natPub)
				}
				mustRoundTrip(t, c, s, "out and back in")
				lab.nat.SetHairpin(false)
				mustRoundTrip(t, s, c, "established connections go on")
				wantDropped(t, lab.a, 0, "203.0.113.10:7300")
			})
		})
	}
	t.Run("cone: to a peer's mapping", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newNATLab(t, Cone)
			_, viaC := lab.connectFrom(t, lab.b, peerPort, lab.c, "198.51.100.10:7300")
			bPublic := addrPort(viaC.RemoteAddr())
			_, viaA := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
			aPublic := addrPort(viaA.RemoteAddr())
			_, s := lab.connectFrom(t, lab.a, peerPort, lab.b, bPublic.String())
			if got := addrPort(s.RemoteAddr()); got != aPublic {
				t.Errorf("b sees a's hairpinned connection from %v, want a's mapping %v", got, aPublic)
			}
		})
	})
}

// Two hosts behind two different NATs and a public host both reach: the
// topology where traffic must be relayed unless a hole can be punched.
func TestNATTwoNATs(t *testing.T) {
	tests := []struct {
		kind  NATKind // of both NATs
		punch bool    // whether e reaches a at the mapping c sees
	}{
		{Cone, true},
		{Symmetric, false},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newNATLab(t, tt.kind)
				e := lab.n.AddNAT("far", tt.kind, nat2Pub).AddHost("e", lanE)
				lab.ln[e] = mustListen(t, e, "tcp", ":7300")

				_, aAtC := lab.connectFrom(t, lab.a, peerPort, lab.c, "198.51.100.10:7300")
				_, eAtC := lab.connectFrom(t, e, peerPort, lab.c, "198.51.100.10:7300")
				if got := addrPort(eAtC.RemoteAddr()).Addr(); got != nat2Pub {
					t.Errorf("c sees e from %v, want %v", got, nat2Pub)
				}
				aPublic := addrPort(aAtC.RemoteAddr())
				wantDropped(t, e, peerPort, "192.0.2.10:7300")
				wantDropped(t, e, peerPort, "203.0.113.10:7300")
				if !tt.punch {
					wantDropped(t, e, peerPort, aPublic.String())
					return
				}
				c, s := lab.connectFrom(t, e, peerPort, lab.a, aPublic.String())
				if got := addrPort(s.RemoteAddr()).Addr(); got != nat2Pub {
					t.Errorf("a sees e's punched connection from %v, want %v", got, nat2Pub)
				}
				mustRoundTrip(t, c, s, "no relay needed")
			})
		})
	}
}

func TestNATAttachDetach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := New()
		nat := n.AddNAT("router", Cone, natPub)
		a := n.AddHost("a", pubD)
		c := n.AddHost("c", pubC)
		ln := mustListen(t, c, "tcp", ":7300")
		conn, s := connect(t, a, ln, "198.51.100.10:7300")
		if got := addrPort(s.RemoteAddr()).Addr(); got != pubD {
			t.Errorf("before Attach, c sees %v, want %v", got, pubD)
		}

		nat.Attach(a)
		wantReset(t, "dialer", conn)
		wantReset(t, "acceptor", s)
		_, s = connect(t, a, ln, "198.51.100.10:7300")
		if got := addrPort(s.RemoteAddr()).Addr(); got != natPub {
			t.Errorf("behind the NAT, c sees %v, want %v", got, natPub)
		}

		nat.Detach(a)
		if got := nat.Mappings(); len(got) != 0 {
			t.Errorf("Mappings() after Detach = %v, want none", got)
		}
		_, s = connect(t, a, ln, "198.51.100.10:7300")
		if got := addrPort(s.RemoteAddr()).Addr(); got != pubD {
			t.Errorf("after Detach, c sees %v, want %v", got, pubD)
		}
	})
}

func TestDialer(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b *Host, ln net.Listener)
	}{
		{"one port to two destinations at once", func(t *testing.T, a, b *Host, ln net.Listener) {
			mustListen(t, b, "tcp", ":7301")
			c1, err := a.Dialer(peerPort)(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("first dial: %v", err)
			}
			defer c1.Close()
			c2, err := a.Dialer(peerPort)(context.Background(), "tcp", "198.51.100.1:7301")
			if err != nil {
				t.Fatalf("second dial: %v", err)
			}
			defer c2.Close()
			for _, c := range []net.Conn{c1, c2} {
				if got, want := addrPort(c.LocalAddr()), netip.AddrPortFrom(ipA, peerPort); got != want {
					t.Errorf("LocalAddr = %v, want %v", got, want)
				}
			}
		}},
		{"same 4-tuple refused until closed", func(t *testing.T, a, b *Host, ln net.Listener) {
			dial := a.Dialer(peerPort)
			c1, err := dial(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("first dial: %v", err)
			}
			s1, _ := ln.Accept()
			if c, err := dial(context.Background(), "tcp", "198.51.100.1:7300"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("dial of a 4-tuple in use = %v, %v; want EADDRNOTAVAIL", c, err)
			}
			c1.Close()
			s1.Close()
			c2, err := dial(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("dial after close: %v", err)
			}
			c2.Close()
		}},
		{"an accepted connection holds its 4-tuple too", func(t *testing.T, a, b *Host, ln net.Listener) {
			mustListen(t, a, "tcp", ":7300")
			c, err := b.Dialer(peerPort)(context.Background(), "tcp", "192.0.2.1:7300")
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if c, err := a.Dialer(peerPort)(context.Background(), "tcp", "198.51.100.1:7300"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("dial back on the same 4-tuple = %v, %v; want EADDRNOTAVAIL", c, err)
			}
		}},
		{"ephemeral ports skip a bound port", func(t *testing.T, a, b *Host, ln net.Listener) {
			c1, err := a.Dialer(ephemeralFirst)(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("dial from %d: %v", ephemeralFirst, err)
			}
			s1, _ := ln.Accept()
			defer s1.Close()
			c2, err := a.DialContext(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("DialContext: %v", err)
			}
			defer c2.Close()
			if got, want := addrPort(c2.LocalAddr()).Port(), uint16(ephemeralFirst+1); got != want {
				t.Errorf("DialContext source port = %d, want %d", got, want)
			}
			c1.Close()
			s1.Close()
			a.net.mu.Lock()
			bound := a.bound[ephemeralFirst]
			a.net.mu.Unlock()
			if bound != 0 {
				t.Errorf("after Close, %d sockets still bound to %d", bound, ephemeralFirst)
			}
		}},
		{"Dialer(0) is DialContext", func(t *testing.T, a, b *Host, ln net.Listener) {
			c, err := a.Dialer(0)(context.Background(), "tcp", "198.51.100.1:7300")
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := addrPort(c.LocalAddr()).Port(); got != ephemeralFirst {
				t.Errorf("source port = %d, want %d", got, ephemeralFirst)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, b, ln := twoHosts(t)
				tt.run(t, a, b, ln)
			})
		})
	}
}

func TestNATMisuse(t *testing.T) {
	tests := []struct {
		name string
		f    func(n *Network, x *NAT, inside, outside *Host)
		want string // in the panic message
	}{
		{"NAT takes a host's address", func(n *Network, x *NAT, _, _ *Host) { n.AddNAT("b", Cone, pubC) }, "held by host c"},
		{"NAT takes another NAT's address", func(n *Network, x *NAT, _, _ *Host) { n.AddNAT("b", Cone, natPub) }, "held by NAT router"},
		{"host takes a NAT's address", func(n *Network, x *NAT, _, _ *Host) { n.AddHost("b", natPub) }, "public address of NAT router"},
		{"SetAddrs to a NAT's address", func(n *Network, x *NAT, _, o *Host) { o.SetAddrs(natPub) }, "public address of NAT router"},
		{"SetPublic to a host's address", func(n *Network, x *NAT, _, _ *Host) { x.SetPublic(pubC) }, "held by host c"},
		{"invalid public address", func(n *Network, x *NAT, _, _ *Host) { x.SetPublic(netip.Addr{}) }, "not a host address"},
		{"unknown kind", func(n *Network, x *NAT, _, _ *Host) { n.AddNAT("b", 0, nat2Pub) }, "unknown kind"},
		{"forward to an outside host", func(n *Network, x *NAT, _, o *Host) { x.Forward(80, o, 80) }, "not behind it"},
		{"forward port 0", func(n *Network, x *NAT, i, _ *Host) { x.Forward(0, i, 80) }, "must not be 0"},
		{"zero timeout", func(n *Network, x *NAT, _, _ *Host) { x.SetTimeout(0) }, "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := New()
			x := n.AddNAT("router", Cone, natPub)
			inside := x.AddHost("a", lanA)
			outside := n.AddHost("c", pubC)
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want one containing %q", msg, tt.want)
				}
			}()
			tt.f(n, x, inside, outside)
		})
	}
}

func TestNATKindString(t *testing.T) {
	tests := []struct {
		kind NATKind
		want string
	}{
		{Cone, "cone"},
		{Symmetric, "symmetric"},
		{NATKind(7), "NATKind(7)"},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.want {
			t.Errorf("NATKind(%d).String() = %q, want %q", int(tt.kind), got, tt.want)
		}
	}
}
