//go:build linux

package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMmsghdrLayout checks that mmsghdr is laid out as the kernel's struct
// mmsghdr: the message header, then the length, padded to the header's
// alignment.
func TestMmsghdrLayout(t *testing.T) {
	var m mmsghdr
	hdr := unsafe.Sizeof(m.hdr)
	want := (hdr + 4 + unsafe.Alignof(m.hdr) - 1) &^ (unsafe.Alignof(m.hdr) - 1)
	if got := unsafe.Offsetof(m.n); got != hdr {
		t.Errorf("offset of mmsghdr.n = %d, want %d", got, hdr)
	}
	if got := unsafe.Sizeof(m); got != want {
		t.Errorf("sizeof(mmsghdr) = %d, want %d", got, want)
	}
	if unsafe.Sizeof(uintptr(0)) == 8 && want != 64 {
		t.Errorf("sizeof(mmsghdr) = %d on a 64-bit system, want 64", want)
	}
}

// sockaddr4 and sockaddr6 build socket addresses as the kernel writes them.
func sockaddr4(a [4]byte, port uint16) (unix.RawSockaddrInet6, uint32) {
	var sa unix.RawSockaddrInet6
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
	sa4.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], port)
	sa4.Addr = a
	return sa, unix.SizeofSockaddrInet4
}

func sockaddr6(a string, port uint16, scope uint32) (unix.RawSockaddrInet6, uint32) {
	sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr(a).As16(), Scope_id: scope}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
	return sa, unix.SizeofSockaddrInet6
}

func TestSockaddrAddrPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		sa   func() (unix.RawSockaddrInet6, uint32)
		want string // "" for none
	}{
		{"IPv4", func() (unix.RawSockaddrInet6, uint32) { return sockaddr4([4]byte{127, 0, 0, 1}, 5353) }, "127.0.0.1:5353"},
		{"IPv4 high port", func() (unix.RawSockaddrInet6, uint32) { return sockaddr4([4]byte{192, 0, 2, 1}, 65534) }, "192.0.2.1:65534"},
		{"IPv6", func() (unix.RawSockaddrInet6, uint32) { return sockaddr6("::1", 53, 0) }, "[::1]:53"},
		{"IPv4-mapped stays mapped", func() (unix.RawSockaddrInet6, uint32) { return sockaddr6("::ffff:192.0.2.7", 4242, 0) }, "[::ffff:192.0.2.7]:4242"},
		{"IPv6 scope as numeric zone", func() (unix.RawSockaddrInet6, uint32) { return sockaddr6("fe80::1", 5353, 3) }, "[fe80::1%3]:5353"},
		{"IPv6 address cut short", func() (unix.RawSockaddrInet6, uint32) {
			sa, _ := sockaddr6("::1", 53, 0)
			return sa, unix.SizeofSockaddrInet4
		}, ""},
		{"unknown family", func() (unix.RawSockaddrInet6, uint32) {
			sa, n := sockaddr6("::1", 53, 0)
			sa.Family = unix.AF_UNIX
			return sa, n
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa, n := tc.sa()
			got, ok := sockaddrAddrPort(&sa, n)
			switch {
			case tc.want == "" && ok:
				t.Errorf("sockaddrAddrPort = %v, want none", got)
			case tc.want != "" && (!ok || got.String() != tc.want):
				t.Errorf("sockaddrAddrPort = %v, %v, want %s", got, ok, tc.want)
			}
		})
	}
}

// TestListenUDPRecvBuffer checks that ListenUDP's sockets get the receive
// buffer asked for: the kernel reports twice the size set (its overhead),
// and without CAP_NET_ADMIN it caps the size at net.core.rmem_max.
func TestListenUDPRecvBuffer(t *testing.T) {
	want := UDPRecvBuffer
	if os.Geteuid() != 0 {
		b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		if err != nil {
			t.Fatalf("read rmem_max: %v", err)
		}
		max, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("rmem_max %q: %v", b, err)
		}
		want = min(want, max)
	}
	conns, err := ListenUDP("127.0.0.1:0", 2)
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	for _, c := range conns {
		defer c.Close()
		rc, err := c.(*net.UDPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		}); err != nil || gerr != nil {
			t.Fatalf("getsockopt SO_RCVBUF: %v, %v", err, gerr)
		}
		if got < 2*want {
			t.Errorf("SO_RCVBUF of %s = %d, want %d (twice %d)", c.LocalAddr(), got, 2*want, want)
		}
	}
}
