package netsim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestDialAccept(t *testing.T) {
	tests := []struct {
		name       string
		from       string // "a" or "b"
		address    string
		wantLocal  string // dialer's LocalAddr, which the acceptor must see as RemoteAddr
		wantRemote string // dialer's RemoteAddr, which is the acceptor's LocalAddr
	}{
		{"ipv4", "a", "198.51.100.1:7300", "192.0.2.1:49152", "198.51.100.1:7300"},
		{"ipv6", "a", "[2001:db8::b]:7300", "[2001:db8::a]:49152", "[2001:db8::b]:7300"},
		{"ipv4-mapped ipv6 is ipv4", "a", "[::ffff:198.51.100.1]:7300", "192.0.2.1:49152", "198.51.100.1:7300"},
		{"own address", "b", "198.51.100.1:7300", "198.51.100.1:49152", "198.51.100.1:7300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, b, ln := twoHosts(t)
				from := map[string]*Host{"a": a, "b": b}[tt.from]
				c, s := connect(t, from, ln, tt.address)
				checks := []struct {
					what string
					addr net.Addr
					want string
				}{
					{"client LocalAddr", c.LocalAddr(), tt.wantLocal},
					{"client RemoteAddr", c.RemoteAddr(), tt.wantRemote},
					{"server LocalAddr", s.LocalAddr(), tt.wantRemote},
					{"server RemoteAddr", s.RemoteAddr(), tt.wantLocal},
				}
				for _, ck := range checks {
					if _, ok := ck.addr.(*net.TCPAddr); !ok {
						t.Errorf("%s is %T, want *net.TCPAddr", ck.what, ck.addr)
					}
					if got := ck.addr.String(); got != ck.want {
						t.Errorf("%s = %s, want %s", ck.what, got, ck.want)
					}
				}
				mustRoundTrip(t, c, s, "ping")
				mustRoundTrip(t, s, c, "pong")
			})
		})
	}
}

func TestDialPicksFreshPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, _, ln := twoHosts(t)
		var ports []int
		for range 3 {
			c, _ := connect(t, a, ln, "198.51.100.1:7300")
			ports = append(ports, c.LocalAddr().(*net.TCPAddr).Port)
			c.Close()
		}
		if want := []int{49152, 49153, 49154}; !slices.Equal(ports, want) {
			t.Errorf("source ports = %v, want %v", ports, want)
		}
	})
}

func TestDialRefused(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, b *Host)
		address string
	}{
		{"no listener on port", nil, "198.51.100.1:7301"},
		{"listener on another address", func(t *testing.T, b *Host) {
			b.SetAddrs(ipB, ipB2, ip6B)
			mustListen(t, b, "tcp", "198.51.100.2:7400")
		}, "198.51.100.1:7400"},
		{"ipv4-only listener", func(t *testing.T, b *Host) {
			mustListen(t, b, "tcp4", ":7500")
		}, "[2001:db8::b]:7500"},
		{"closed listener", func(t *testing.T, b *Host) {
			mustListen(t, b, "tcp", ":7600").Close()
		}, "198.51.100.1:7600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, b, _ := twoHosts(t)
				if tt.setup != nil {
					tt.setup(t, b)
				}
				start := time.Now()
				c, err := a.DialContext(context.Background(), "tcp", tt.address)
				if !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("DialContext(%q) = %v, %v; want ECONNREFUSED", tt.address, c, err)
				}
				var op *net.OpError
				if !errors.As(err, &op) || op.Op != "dial" {
					t.Errorf("DialContext(%q) error %#v, want a *net.OpError from dial", tt.address, err)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("refusal took %v, want at once", d)
				}
			})
		})
	}
}

func mustListen(t *testing.T, h *Host, network, address string) net.Listener {
	t.Helper()
	ln, err := h.Listen(network, address)
	if err != nil {
		t.Fatalf("Listen(%q, %q): %v", network, address, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestDialErrors(t *testing.T) {
	n := New()
	v4only := n.AddHost("v4only", ipA)
	none := n.AddHost("none")
	n.AddHost("b", ipB, ip6B)
	tests := []struct {
		name    string
		host    *Host
		network string
		address string
		check   func(error) bool
	}{
		{"udp", v4only, "udp", "198.51.100.1:53", func(err error) bool {
			var u net.UnknownNetworkError
			return errors.As(err, &u)
		}},
		{"name instead of IP", v4only, "tcp", "b.example:7300", isAddrError},
		{"missing port", v4only, "tcp", "198.51.100.1", isAddrError},
		{"tcp4 to ipv6", v4only, "tcp4", "[2001:db8::b]:7300", isAddrError},
		{"tcp6 to ipv4", v4only, "tcp6", "198.51.100.1:7300", isAddrError},
		{"no ipv6 address", v4only, "tcp", "[2001:db8::b]:7300", func(err error) bool {
			return errors.Is(err, syscall.ENETUNREACH)
		}},
		{"no address at all", none, "tcp", "198.51.100.1:7300", func(err error) bool {
			return errors.Is(err, syscall.ENETUNREACH)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.host.DialContext(context.Background(), tt.network, tt.address)
			var op *net.OpError
			if !tt.check(err) || !errors.As(err, &op) {
				t.Errorf("DialContext(%q, %q) = %v, %v; want a *net.OpError of the right kind", tt.network, tt.address, c, err)
			}
		})
	}
}

func isAddrError(err error) bool {
	var ae *net.AddrError
	return errors.As(err, &ae)
}

// Dials that find no path must hang like a SYN into the void, so that the
// caller's own timeout is what ends them.
func TestDialBlocksUntilContextEnds(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(n *Network, a, b *Host)
		address string
	}{
		{"unknown address", func(*Network, *Host, *Host) {}, "203.0.113.9:7300"},
		{"partitioned", func(n *Network, a, b *Host) { n.Partition(a, b) }, "198.51.100.1:7300"},
		{"partitioned, given in reverse", func(n *Network, a, b *Host) { n.Partition(b, a) }, "198.51.100.1:7300"},
		{"destination down", func(_ *Network, _, b *Host) { b.Down() }, "198.51.100.1:7300"},
		{"source down", func(_ *Network, a, _ *Host) { a.Down() }, "198.51.100.1:7300"},
		{"destination down, no listener", func(_ *Network, _, b *Host) { b.Down() }, "198.51.100.1:9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, a, b, _ := twoHosts(t)
				tt.setup(n, a, b)
				start := time.Now()
				c, err := dialTimeout(a, tt.address, 10*time.Second)
				var ne net.Error
				if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("DialContext(%q) = %v, %v; want a timeout", tt.address, c, err)
				}
				if d := time.Since(start); d != 10*time.Second {
					t.Errorf("dial gave up after %v, want 10s", d)
				}
			})
		})
	}
}

func TestDialCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b, _ := twoHosts(t)
		n.Partition(a, b)
		ctx, cancel := context.WithCancel(context.Background())
		var err error
		done := started(func() { _, err = a.DialContext(ctx, "tcp", "198.51.100.1:7300") })
		time.Sleep(time.Minute)
		synctest.Wait()
		if finished(done) {
			t.Fatalf("dial across a partition returned %v, want it to wait", err)
		}
		cancel()
		<-done
		if !errors.Is(err, context.Canceled) {
			t.Errorf("DialContext after cancel = %v, want context.Canceled", err)
		}
	})
}

// A waiting dial completes as soon as a path appears, as SYN retries would.
func TestBlockedDialCompletes(t *testing.T) {
	tests := []struct {
		name    string
		block   func(n *Network, a, b *Host)
		unblock func(n *Network, a, b *Host)
		address string
	}{
		{"heal", func(n *Network, a, b *Host) { n.Partition(a, b) }, func(n *Network, a, b *Host) { n.Heal(a, b) }, "198.51.100.1:7300"},
		{"heal all", func(n *Network, a, b *Host) { n.Partition(a, b) }, func(n *Network, _, _ *Host) { n.HealAll() }, "198.51.100.1:7300"},
		{"up", func(_ *Network, _, b *Host) { b.Down() }, func(_ *Network, _, b *Host) { b.Up() }, "198.51.100.1:7300"},
		{"address appears", func(*Network, *Host, *Host) {}, func(_ *Network, _, b *Host) { b.SetAddrs(ipB, ipC) }, "203.0.113.1:7300"},
		{"host appears", func(*Network, *Host, *Host) {}, func(n *Network, _, _ *Host) {
			c := n.AddHost("c", ipC)
			if _, err := c.Listen("tcp", ":7300"); err != nil {
				panic(err) // the dial below then fails the test
			}
		}, "203.0.113.1:7300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, a, b, _ := twoHosts(t)
				tt.block(n, a, b)
				var (
					c   net.Conn
					err error
				)
				done := started(func() { c, err = a.DialContext(context.Background(), "tcp", tt.address) })
				time.Sleep(time.Hour)
				synctest.Wait()
				if finished(done) {
					t.Fatalf("DialContext(%q) = %v, %v; want it to wait", tt.address, c, err)
				}
				tt.unblock(n, a, b)
				<-done
				if err != nil {
					t.Fatalf("DialContext(%q) after the path appeared: %v", tt.address, err)
				}
				c.Close()
			})
		})
	}
}

// wantReset checks that both a read and a write on c fail with a reset.
func wantReset(t *testing.T, what string, c net.Conn) {
	t.Helper()
	if n, err := c.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s Read = %d, %v; want ECONNRESET", what, n, err)
	}
	if n, err := c.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s Write = %d, %v; want ECONNRESET", what, n, err)
	}
}

func TestIPChange(t *testing.T) {
	t.Run("dialer's address removed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, _, ln := twoHosts(t)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			c.Write([]byte("lost in the change"))
			a.SetAddrs(ipA2)
			wantReset(t, "dialer", c)
			wantReset(t, "acceptor", s)
			_, s2 := connect(t, a, ln, "198.51.100.1:7300")
			if got, want := s2.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(), ipA2; got != want {
				t.Errorf("after IP change, acceptor sees source %v, want %v", got, want)
			}
		})
	})
	t.Run("unused address removed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, _, ln := twoHosts(t)
			a.SetAddrs(ipA, ipA2)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			a.SetAddrs(ipA)
			mustRoundTrip(t, c, s, "still here")
		})
	})
	t.Run("acceptor's address removed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, b, ln := twoHosts(t)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			b.SetAddrs(ipB2)
			wantReset(t, "dialer", c)
			wantReset(t, "acceptor", s)
			if c, err := dialTimeout(a, "198.51.100.1:7300", 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("dial to the old address = %v, %v; want a timeout", c, err)
			}
			// The wildcard listener follows the host to its new address.
			c2, s2 := connect(t, a, ln, "198.51.100.2:7300")
			mustRoundTrip(t, c2, s2, "found you")
		})
	})
	t.Run("blocked reader and writer wake", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, _, ln := twoHosts(t)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			var rerr, werr error
			reading := started(func() { _, rerr = c.Read(make([]byte, 8)) })
			writing := started(func() { _, werr = c.Write(make([]byte, 2*BufferSize)) })
			synctest.Wait()
			if finished(reading) || finished(writing) {
				t.Fatalf("Read or Write returned before the change: %v, %v", rerr, werr)
			}
			a.SetAddrs(ipA2)
			<-reading
			<-writing
			if !errors.Is(rerr, syscall.ECONNRESET) || !errors.Is(werr, syscall.ECONNRESET) {
				t.Errorf("blocked Read, Write = %v, %v; want ECONNRESET for both", rerr, werr)
			}
			wantReset(t, "acceptor", s)
		})
	})
	t.Run("address moves to another host", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, a, b, _ := twoHosts(t)
			lnA := mustListen(t, a, "tcp", ":7300")
			a.SetAddrs(ipA2)
			c := n.AddHost("c", ipA)
			lnC := mustListen(t, c, "tcp", ":7300")
			conn, s := connect(t, b, lnC, "192.0.2.1:7300")
			mustRoundTrip(t, conn, s, "you are not a")
			// Nothing must have reached a's listener.
			lnA.Close()
			if got, err := lnA.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("a's listener Accept = %v, %v; want nothing queued", got, err)
			}
		})
	})
}

func TestAddrs(t *testing.T) {
	n := New()
	h := n.AddHost("h", ipB, netip.MustParseAddr("::ffff:192.0.2.1"), ipB)
	if got, want := h.Addrs(), []netip.Addr{ipB, ipA}; !slices.Equal(got, want) {
		t.Errorf("Addrs() = %v, want %v (unmapped, without duplicates)", got, want)
	}
	h.Addrs()[0] = ipC
	if got := h.Addrs()[0]; got != ipB {
		t.Errorf("Addrs()[0] = %v after editing a returned slice, want %v", got, ipB)
	}
	h.SetAddrs()
	if got := h.Addrs(); len(got) != 0 {
		t.Errorf("Addrs() after SetAddrs() = %v, want none", got)
	}
	if h.Name() != "h" || h.String() != "h" {
		t.Errorf("Name(), String() = %q, %q; want %q", h.Name(), h.String(), "h")
	}
}

func TestAddrsMisuse(t *testing.T) {
	tests := []struct {
		name string
		do   func(n *Network, h *Host)
		want string
	}{
		{"address of another host", func(n *Network, _ *Host) { n.AddHost("other", ipA) }, "held by host h"},
		{"SetAddrs with another host's address", func(n *Network, _ *Host) { n.AddHost("other").SetAddrs(ipA) }, "held by host h"},
		{"invalid address", func(_ *Network, h *Host) { h.SetAddrs(netip.Addr{}) }, "not a host address"},
		{"unspecified address", func(_ *Network, h *Host) { h.SetAddrs(netip.IPv4Unspecified()) }, "not a host address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := New()
			h := n.AddHost("h", ipA)
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want one mentioning %q", msg, tt.want)
				}
			}()
			tt.do(n, h)
		})
	}
}

func TestPartition(t *testing.T) {
	heals := []struct {
		name string
		heal func(n *Network, a, b *Host)
	}{
		{"Heal", func(n *Network, a, b *Host) { n.Heal(a, b) }},
		{"Heal reversed", func(n *Network, a, b *Host) { n.Heal(b, a) }},
		{"HealAll", func(n *Network, _, _ *Host) { n.HealAll() }},
	}
	for _, tt := range heals {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, a, b, ln := twoHosts(t)
				third := n.AddHost("third", ipC)
				c, s := connect(t, a, ln, "198.51.100.1:7300")
				c.Write([]byte("before"))
				n.Partition(a, b)

				// What arrived before the cut stays readable.
				got := make([]byte, len("before"))
				if _, err := io.ReadFull(s, got); err != nil || string(got) != "before" {
					t.Fatalf("ReadFull after cut = %q, %v; want %q", got, err, "before")
				}
				// Writes are buffered up to the limit, then block; reads block.
				if n, err := c.Write([]byte("during")); n != len("during") || err != nil {
					t.Fatalf("Write across cut = %d, %v; want it buffered", n, err)
				}
				big := patterned(BufferSize)
				writing := started(func() {
					if n, err := c.Write(big); n != len(big) || err != nil {
						t.Errorf("Write after heal = %d, %v; want %d, nil", n, err, len(big))
					}
				})
				var fromServer []byte
				serverReading := started(func() {
					fromServer = make([]byte, len("during")+len(big))
					if _, err := io.ReadFull(s, fromServer); err != nil {
						t.Errorf("server ReadFull: %v", err)
					}
				})
				clientReading := started(func() { mustRoundTripRead(t, c, "reply") })
				if _, err := s.Write([]byte("reply")); err != nil {
					t.Fatalf("server Write across cut: %v", err)
				}
				time.Sleep(time.Hour)
				synctest.Wait()
				if finished(writing) || finished(serverReading) || finished(clientReading) {
					t.Fatal("a Read or a full Write returned across the cut")
				}

				// New dials between them hang; others are unaffected.
				if conn, err := dialTimeout(a, "198.51.100.1:7300", 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("dial across cut = %v, %v; want a timeout", conn, err)
				}
				var dialed net.Conn
				dialing := started(func() {
					var err error
					if dialed, err = a.DialContext(context.Background(), "tcp", "198.51.100.1:7300"); err != nil {
						t.Errorf("dial after heal: %v", err)
					}
				})
				c3, s3 := connect(t, third, ln, "198.51.100.1:7300")
				mustRoundTrip(t, c3, s3, "bystander")

				tt.heal(n, a, b)
				for _, done := range []<-chan struct{}{writing, serverReading, clientReading, dialing} {
					<-done
				}
				if want := append([]byte("during"), big...); string(fromServer) != string(want) {
					t.Errorf("server read %d bytes after heal, not the %d written in order", len(fromServer), len(want))
				}
				if dialed != nil {
					dialed.Close()
				}
				mustRoundTrip(t, c, s, "after")
			})
		})
	}
}

// mustRoundTripRead reads exactly want from r.
func mustRoundTripRead(t *testing.T, r net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
		t.Errorf("ReadFull = %q, %v; want %q", got, err, want)
	}
}

func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func TestDownUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b, ln := twoHosts(t)
		lnA := mustListen(t, a, "tcp", ":7300")
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		var rerr error
		reading := started(func() { _, rerr = c.Read(make([]byte, 8)) })
		synctest.Wait()

		b.Down()
		<-reading
		if !errors.Is(rerr, syscall.ECONNRESET) {
			t.Errorf("blocked Read on Down = %v, want ECONNRESET", rerr)
		}
		wantReset(t, "dialer", c)
		wantReset(t, "acceptor", s)
		for _, d := range []struct {
			from    *Host
			address string
		}{{a, "198.51.100.1:7300"}, {b, "192.0.2.1:7300"}} {
			if conn, err := dialTimeout(d.from, d.address, 5*time.Second); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s dial %s while b is down = %v, %v; want a timeout", d.from, d.address, conn, err)
			}
		}

		b.Up()
		c2, s2 := connect(t, a, ln, "198.51.100.1:7300")
		mustRoundTrip(t, c2, s2, "back")
		c3, s3 := connect(t, b, lnA, "192.0.2.1:7300")
		mustRoundTrip(t, c3, s3, "and forth")
	})
}

func TestLatency(t *testing.T) {
	const lat = 50 * time.Millisecond
	t.Run("dial takes a round trip", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, a, b, ln := twoHosts(t)
			n.SetLatency(a, b, lat)
			start := time.Now()
			connect(t, a, ln, "198.51.100.1:7300")
			if d := time.Since(start); d != 2*lat {
				t.Errorf("dial took %v, want %v", d, 2*lat)
			}
			start = time.Now()
			if _, err := a.DialContext(context.Background(), "tcp", "198.51.100.1:1"); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial to closed port = %v, want ECONNREFUSED", err)
			}
			if d := time.Since(start); d != 2*lat {
				t.Errorf("refusal took %v, want %v", d, 2*lat)
			}
		})
	})
	t.Run("writes arrive one latency later", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, a, b, ln := twoHosts(t)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			n.SetLatency(b, a, lat) // applies to existing connections
			start := time.Now()
			c.Write([]byte("one"))
			time.Sleep(lat / 2)
			c.Write([]byte("two"))
			mustRoundTripRead(t, s, "one")
			if d := time.Since(start); d != lat {
				t.Errorf("first write arrived after %v, want %v", d, lat)
			}
			mustRoundTripRead(t, s, "two")
			if d := time.Since(start); d != lat+lat/2 {
				t.Errorf("second write arrived after %v, want %v", d, lat+lat/2)
			}
			start = time.Now()
			s.Write([]byte("back"))
			mustRoundTripRead(t, c, "back")
			if d := time.Since(start); d != lat {
				t.Errorf("reply arrived after %v, want %v", d, lat)
			}
		})
	})
	t.Run("in flight during a cut arrives after heal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, a, b, ln := twoHosts(t)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			n.SetLatency(a, b, lat)
			c.Write([]byte("in flight"))
			time.Sleep(lat / 5)
			n.Partition(a, b)
			time.Sleep(time.Second)
			n.Heal(a, b)
			healed := time.Now()
			mustRoundTripRead(t, s, "in flight")
			if d := time.Since(healed); d != lat {
				t.Errorf("data arrived %v after heal, want %v", d, lat)
			}
		})
	})
	t.Run("close arrives one latency later", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n, a, b, ln := twoHosts(t)
			n.SetLatency(a, b, lat)
			c, s := connect(t, a, ln, "198.51.100.1:7300")
			start := time.Now()
			c.Close()
			if _, err := s.Write([]byte("not yet known")); err != nil {
				t.Errorf("Write before the close arrived: %v", err)
			}
			if _, err := s.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("Read = %v, want io.EOF", err)
			}
			if d := time.Since(start); d != lat {
				t.Errorf("EOF arrived after %v, want %v", d, lat)
			}
			if _, err := s.Write([]byte("too late")); !errors.Is(err, syscall.EPIPE) {
				t.Errorf("Write after the close arrived = %v, want EPIPE", err)
			}
		})
	})
}

// TestMoveSilently: an address change that leaves the host's connections
// silent, as Linux does, instead of reset.
func TestMoveSilently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b, ln := twoHosts(t)
		c, s := connect(t, a, ln, "198.51.100.1:7300")
		mustRoundTrip(t, c, s, "before")
		a.MoveSilently(ipA2)

		// Both ends' writes are taken (buffered), nothing arrives either
		// way, and a close tells the other end nothing: only deadlines
		// end their waits.
		for _, w := range []struct {
			name string
			from net.Conn
		}{{"dialer", c}, {"acceptor", s}} {
			if n, err := w.from.Write([]byte("into the void")); n != len("into the void") || err != nil {
				t.Errorf("%s Write after the move = %d, %v; want it buffered", w.name, n, err)
			}
		}
		for _, r := range []struct {
			name string
			conn net.Conn
		}{{"dialer", c}, {"acceptor", s}} {
			r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := r.conn.Read(make([]byte, 64)); !isTimeout(err) {
				t.Errorf("%s Read after the move = %d, %v; want a timeout", r.name, n, err)
			}
			r.conn.SetReadDeadline(time.Time{})
		}
		n.HealAll() // not a cut: nothing to heal
		c.Close()
		s.SetReadDeadline(time.Now().Add(time.Minute))
		if n, err := s.Read(make([]byte, 64)); !isTimeout(err) {
			t.Errorf("acceptor Read after the dialer's Close = %d, %v; want a timeout, not data or EOF", n, err)
		}

		// The far end dials the old address in vain; the moved host
		// dials from its new one.
		if conn, err := dialTimeout(b, "192.0.2.1:7300", 10*time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("dial to the old address = %v, %v; want a timeout", conn, err)
		}
		_, s2 := connect(t, a, ln, "198.51.100.1:7300")
		if got := s2.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got != ipA2 {
			t.Errorf("after the move, acceptor sees source %v, want %v", got, ipA2)
		}
	})
}
