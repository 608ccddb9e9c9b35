//go:build linux

package dnsserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestPktinfoLayout checks the hand-written control message layout against
// x/sys's.
func TestPktinfoLayout(t *testing.T) {
	if got, want := cmsgHdrLen, unix.CmsgLen(0); got != want {
		t.Errorf("cmsgHdrLen = %d, want CmsgLen(0) = %d", got, want)
	}
	for _, n := range []int{0, 1, 12, 20, 21} {
		if got, want := cmsgAlign(cmsgHdrLen+n), unix.CmsgSpace(n); got != want {
			t.Errorf("cmsgAlign(%d+%d) = %d, want CmsgSpace(%d) = %d", cmsgHdrLen, n, got, n, want)
		}
	}
	if need := unix.CmsgSpace(unix.SizeofInet6Pktinfo); pktinfoSpace < need {
		t.Errorf("pktinfoSpace = %d, want at least CmsgSpace(in6_pktinfo) = %d", pktinfoSpace, need)
	}
}

// pktinfo4Msg and pktinfo6Msg are control messages as the kernel writes
// them, encoded by x/sys.
func pktinfo4Msg(ifindex int32, specDst, addr string) []byte {
	return unix.PktInfo4(&unix.Inet4Pktinfo{
		Ifindex:  ifindex,
		Spec_dst: netip.MustParseAddr(specDst).As4(),
		Addr:     netip.MustParseAddr(addr).As4(),
	})
}

func pktinfo6Msg(ifindex uint32, addr string) []byte {
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: netip.MustParseAddr(addr).As16(), Ifindex: ifindex})
}

// cmsg builds one control message of any level and type with data.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	if cmsgLenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(unix.CmsgLen(len(data))))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(unix.CmsgLen(len(data))))
	}
	binary.NativeEndian.PutUint32(b[cmsgLenSize:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgLenSize+4:], uint32(typ))
	copy(b[cmsgHdrLen:], data)
	return b
}

// withLen returns a copy of m with its length field set to n.
func withLen(m []byte, n int) []byte {
	m = bytes.Clone(m)
	if cmsgLenSize == 8 {
		binary.NativeEndian.PutUint64(m, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(m, uint32(n))
	}
	return m
}

func TestParsePktinfo(t *testing.T) {
	ttl := cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0})
	for _, tc := range []struct {
		name string
		b    []byte
		want string // "" for none
	}{
		{"IP_PKTINFO gives ipi_spec_dst", pktinfo4Msg(1, "127.0.0.2", "127.255.255.255"), "127.0.0.2"},
		{"IP_PKTINFO", pktinfo4Msg(2, "192.0.2.11", "192.0.2.11"), "192.0.2.11"},
		{"IPV6_PKTINFO", pktinfo6Msg(1, "::1"), "::1"},
		{"IPV6_PKTINFO IPv4-mapped", pktinfo6Msg(2, "::ffff:192.0.2.11"), "::ffff:192.0.2.11"},
		{"after another message", append(bytes.Clone(ttl), pktinfo6Msg(1, "2001:db8::53")...), "2001:db8::53"},
		{"only another message", ttl, ""},
		{"IP_PKTINFO's type at IPv6's level", cmsg(unix.IPPROTO_IPV6, unix.IP_PKTINFO, make([]byte, 20)), ""},
		{"data too short for in_pktinfo", cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, make([]byte, 11)), ""},
		{"data too short for in6_pktinfo", cmsg(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, make([]byte, 16)), ""},
		{"length shorter than the header", withLen(pktinfo6Msg(1, "::1"), cmsgHdrLen-1), ""},
		{"length beyond the buffer", withLen(pktinfo6Msg(1, "::1"), 200), ""},
		{"zero length", withLen(pktinfo4Msg(1, "127.0.0.2", "127.0.0.2"), 0), ""},
		{"cut in the data", pktinfo6Msg(1, "::1")[:cmsgHdrLen+10], ""},
		{"cut in the header", pktinfo6Msg(1, "::1")[:cmsgHdrLen-1], ""},
		{"broken message first", append(withLen(ttl, 3), pktinfo6Msg(1, "::1")...), ""},
		{"empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parsePktinfo(tc.b)
			switch {
			case tc.want == "" && ok:
				t.Errorf("parsePktinfo(%x) = %v, want none", tc.b, got)
			case tc.want != "" && (!ok || got != netip.MustParseAddr(tc.want)):
				t.Errorf("parsePktinfo(%x) = %v, %v, want %s", tc.b, got, ok, tc.want)
			}
		})
	}
}

func TestPutPktinfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		fam  pktinfoFamily
		src  string
		want []byte // as x/sys pads it; nil: nothing can be written
	}{
		{"IPv4 socket", pktinfo4, "192.0.2.11", pktinfo4Msg(0, "192.0.2.11", "0.0.0.0")},
		{"IPv4 socket, mapped source", pktinfo4, "::ffff:127.0.0.2", pktinfo4Msg(0, "127.0.0.2", "0.0.0.0")},
		{"IPv6 socket", pktinfo6, "2001:db8::53", pktinfo6Msg(0, "2001:db8::53")},
		{"dual-stack socket, IPv4 as mapped", pktinfo6, "::ffff:192.0.2.11", pktinfo6Msg(0, "::ffff:192.0.2.11")},
		{"dual-stack socket, IPv4 unmapped", pktinfo6, "192.0.2.11", pktinfo6Msg(0, "::ffff:192.0.2.11")},
		{"IPv6 on an IPv4 socket", pktinfo4, "2001:db8::53", nil},
		{"no family", pktinfoOff, "192.0.2.11", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Repeat([]byte{0xAA}, pktinfoSpace) // a used buffer
			n := putPktinfo(b, tc.fam, netip.MustParseAddr(tc.src))
			// Unpadded: the message's length, CMSG_LEN, not CMSG_SPACE.
			var want []byte
			if tc.want != nil {
				want = tc.want[:(*unix.Cmsghdr)(unsafe.Pointer(&tc.want[0])).Len]
			}
			if got := b[:n]; !bytes.Equal(got, want) {
				t.Errorf("putPktinfo(%v, %s) = %x, want %x", tc.fam, tc.src, got, want)
			}
		})
	}
}

// FuzzParsePktinfo checks that parsePktinfo never reads out of bounds,
// agrees with x/sys's parser on what it accepts, and reads back what
// putPktinfo writes.
func FuzzParsePktinfo(f *testing.F) {
	f.Add(pktinfo4Msg(1, "127.0.0.2", "127.0.0.2"))
	f.Add(pktinfo6Msg(1, "::ffff:192.0.2.11"))
	f.Add(append(cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0}), pktinfo6Msg(1, "2001:db8::53")...))
	f.Add(withLen(pktinfo6Msg(1, "::1"), 3))
	f.Fuzz(func(t *testing.T, in []byte) {
		// x/sys reads the header through a pointer: give it an aligned copy.
		b := make([]byte, len(in), len(in)+8)
		copy(b, in)
		got, ok := parsePktinfo(b)
		if msgs, err := unix.ParseSocketControlMessage(b); err == nil {
			var want netip.Addr
			for _, m := range msgs {
				if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
					want = netip.AddrFrom4([4]byte(m.Data[4:8]))
					break
				}
				if m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo {
					want = netip.AddrFrom16([16]byte(m.Data[:16]))
					break
				}
			}
			if got != want || ok != want.IsValid() {
				t.Fatalf("parsePktinfo(%x) = %v, %v; x/sys finds %v", b, got, ok, want)
			}
		}
		if !ok {
			return
		}
		fam := pktinfo6
		if got.Is4() {
			fam = pktinfo4
		}
		out := make([]byte, pktinfoSpace)
		n := putPktinfo(out, fam, got)
		if back, ok := parsePktinfo(out[:n]); !ok || back != got {
			t.Fatalf("parsePktinfo(putPktinfo(%v)) = %v, %v", got, back, ok)
		}
	})
}

// TestEnablePktinfo checks which sockets ask for destination addresses:
// wildcard ones only, with the option of their family.
func TestEnablePktinfo(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		want          pktinfoFamily
	}{
		{"udp4", "127.0.0.1:0", pktinfoOff},
		{"udp6", "[::1]:0", pktinfoOff},
		{"udp4", "0.0.0.0:0", pktinfo4},
		{"udp", "0.0.0.0:0", pktinfo6}, // Go opens a dual-stack IPv6 socket
		{"udp", ":0", pktinfo6},
		{"udp6", "[::]:0", pktinfo6},
	} {
		t.Run(tc.network+" "+tc.addr, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Fatalf("listen %s %s: %v", tc.network, tc.addr, err)
			}
			defer pc.Close()
			uc := pc.(*net.UDPConn)
			got, err := enablePktinfo(uc)
			if err != nil || got != tc.want {
				t.Fatalf("enablePktinfo(%s %s) = %v, %v, want %v", tc.network, tc.addr, got, err, tc.want)
			}
			rc, err := uc.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var v4, v6 int
			_ = rc.Control(func(fd uintptr) {
				v4, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO)
				v6, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO)
			})
			if on := v4 != 0 || v6 != 0; on != (tc.want != pktinfoOff) {
				t.Errorf("IP_PKTINFO = %d, IPV6_RECVPKTINFO = %d after enablePktinfo, want set: %v", v4, v6, tc.want != pktinfoOff)
			}
		})
	}
}

// TestListenUDPPktinfo checks that ListenUDP's wildcard sockets report
// destination addresses from the start, and its others do not.
func TestListenUDPPktinfo(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"0.0.0.0:0", 1},
		{"[::]:0", 1},
		{"127.0.0.1:0", 0},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			conns, err := ListenUDP(tc.addr, 2)
			if err != nil {
				t.Fatalf("ListenUDP(%s): %v", tc.addr, err)
			}
			for _, c := range conns {
				defer c.Close()
				rc, err := c.(*net.UDPConn).SyscallConn()
				if err != nil {
					t.Fatal(err)
				}
				var got int
				_ = rc.Control(func(fd uintptr) {
					// 127.0.0.1 is an IPv4 socket, the others dual-stack.
					if tc.want == 0 {
						got, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO)
					} else {
						got, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO)
					}
				})
				if got != tc.want {
					t.Errorf("ListenUDP(%s): socket %s reports destinations: %d, want %d", tc.addr, c.LocalAddr(), got, tc.want)
				}
			}
		})
	}
}

// TestServeUDPReplySource serves a wildcard socket and asks through
// 127.0.0.2, a second loopback address (all of 127.0.0.0/8 is local on
// Linux): each answer, fast or slow path or FORMERR, must come from
// 127.0.0.2 and not from 127.0.0.1, the address the kernel picks for a
// reply to 127.0.0.1 by itself. Over IPv6, ::1 is the only loopback
// address; the answer must still come back from it.
func TestServeUDPReplySource(t *testing.T) {
	s := newTestServer(t, "")
	queries := []struct {
		name  string
		raw   []byte
		rcode int
	}{
		{"fast path", mustPack(t, testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 1232}.msg()), dns.RcodeSuccess},
		{"slow path", mustPack(t, testQuery{name: "www.example.org.", qtype: dns.TypeMAILA}.msg()), dns.RcodeNotImplemented},
		{"FORMERR", []byte{0x42, 0x42, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3}, dns.RcodeFormatError},
	}
	for _, sock := range []struct {
		network, addr string
		client        string // where the client is bound
		server        string // where it sends
	}{
		// An IPv4 socket, which ListenUDP does not open: the option is set
		// before the first query arrives, as ListenUDP does.
		{"udp4", "0.0.0.0:0", "127.0.0.1:0", "127.0.0.2"},
		// ListenUDP's dual-stack socket: IPv4-mapped addresses.
		{"udp", "0.0.0.0:0", "127.0.0.1:0", "127.0.0.2"},
		{"udp", "0.0.0.0:0", "[::1]:0", "::1"},
		{"udp6", "[::]:0", "[::1]:0", "::1"},
	} {
		for _, loop := range udpLoops {
			t.Run(sock.network+" "+sock.addr+" to "+sock.server+"/"+loop.name, func(t *testing.T) {
				var uc *net.UDPConn
				if sock.network == "udp" {
					conns, err := ListenUDP(sock.addr, 1)
					if err != nil {
						t.Fatalf("ListenUDP(%s): %v", sock.addr, err)
					}
					uc = conns[0].(*net.UDPConn)
				} else {
					pc, err := net.ListenPacket(sock.network, sock.addr)
					if err != nil {
						t.Fatalf("listen %s %s: %v", sock.network, sock.addr, err)
					}
					uc = pc.(*net.UDPConn)
					if _, err := enablePktinfo(uc); err != nil {
						t.Fatalf("enablePktinfo: %v", err)
					}
				}
				defer uc.Close()
				defer runLoop(t, loop.name, loop.serve, s, uc)()

				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(sock.client)))
				if err != nil {
					t.Fatalf("client socket: %v", err)
				}
				defer c.Close()
				server := netip.AddrPortFrom(netip.MustParseAddr(sock.server), uint16(uc.LocalAddr().(*net.UDPAddr).Port))
				buf := make([]byte, 2048)
				for _, q := range queries {
					if _, err := c.WriteToUDPAddrPort(q.raw, server); err != nil {
						t.Fatalf("%s: send to %v: %v", q.name, server, err)
					}
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("%s: read answer: %v", q.name, err)
					}
					if from.Addr().Unmap() != server.Addr() || from.Port() != server.Port() {
						t.Errorf("%s: answer to a query sent to %v came from %v", q.name, server, from)
					}
					m := new(dns.Msg)
					if err := m.Unpack(buf[:n]); err != nil {
						t.Fatalf("%s: unpack answer: %v", q.name, err)
					}
					if m.Rcode != q.rcode {
						t.Errorf("%s: rcode %s, want %s", q.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[q.rcode])
					}
				}
			})
		}
	}
}

// TestServeUDPAllocsWildcard is TestServeUDPAllocs on a wildcard socket
// asked through 127.0.0.2: reading the destination address and sending
// from it must not allocate either.
func TestServeUDPAllocsWildcard(t *testing.T) {
	if allocs := serveUDPAllocs(t, "0.0.0.0:0", net.IPv4(127, 0, 0, 2)); allocs >= 1 {
		t.Errorf("%v allocations per query through ServeUDP on a wildcard socket, want 0", allocs)
	}
}
