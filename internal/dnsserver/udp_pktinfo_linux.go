//go:build linux

package dnsserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The control messages of a wildcard-bound socket, read and written here
// by hand rather than with unix.ParseSocketControlMessage, which allocates
// a slice per datagram.
//
// struct cmsghdr is a length (size_t: as wide as a pointer), a level and a
// type (int each), then the data, every part aligned to a pointer's width
// (CMSG_ALIGN). TestPktinfoLayout checks these against x/sys's CmsgLen and
// CmsgSpace.
const (
	cmsgLenSize = int(unsafe.Sizeof(uintptr(0)))
	cmsgHdrLen  = (unix.SizeofCmsghdr + cmsgLenSize - 1) &^ (cmsgLenSize - 1)
)

// pktinfoSpace is the control buffer of one datagram: room for one
// IPV6_PKTINFO or IP_PKTINFO message (40 or 32 bytes on 64-bit systems),
// the only control message these sockets ask for.
const pktinfoSpace = 64

// cmsgAlign rounds n up to the alignment of control messages.
func cmsgAlign(n int) int { return (n + cmsgLenSize - 1) &^ (cmsgLenSize - 1) }

// enablePktinfo asks the kernel to report the destination address of every
// datagram uc receives, when uc is bound to a wildcard address (a socket
// bound to one address answers from it anyway). It returns the control
// message the socket's answers must carry: IP_PKTINFO on an IPv4 socket,
// IPV6_PKTINFO on an IPv6 one, dual-stack sockets included (the kernel
// reports an IPv4 datagram's destination as an IPv4-mapped address in
// IPV6_PKTINFO, and takes one back).
func enablePktinfo(uc *net.UDPConn) (pktinfoFamily, error) {
	if !wildcardBound(uc) {
		return pktinfoOff, nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return pktinfoOff, fmt.Errorf("raw udp socket %s: %w", uc.LocalAddr(), err)
	}
	fam, err := setPktinfo(rc)
	if err != nil {
		return pktinfoOff, fmt.Errorf("udp socket %s: %w", uc.LocalAddr(), err)
	}
	return fam, nil
}

// pktinfoControl is enablePktinfo for ListenUDP, before the socket is
// bound to address: set from the start, the option covers the first
// queries too. (The kernel prepares an IPv4 datagram's IP_PKTINFO when it
// queues it: one queued before the option was set reports no address, and
// is answered from the address the kernel picks.) It is best effort:
// ServeUDP sets the option again, and logs if it fails.
func pktinfoControl(network, address string, c syscall.RawConn) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		_, _ = setPktinfo(c)
	}
}

// setPktinfo sets the option that reports destination addresses for the
// socket's family, and returns that family.
func setPktinfo(c syscall.RawConn) (pktinfoFamily, error) {
	fam, serr := pktinfoOff, error(nil)
	err := c.Control(func(fd uintptr) {
		var domain int
		if domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); serr != nil {
			serr = fmt.Errorf("getsockopt SO_DOMAIN: %w", serr)
			return
		}
		switch domain {
		case unix.AF_INET:
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil {
				serr = fmt.Errorf("setsockopt IP_PKTINFO: %w", serr)
				return
			}
			fam = pktinfo4
		case unix.AF_INET6:
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); serr != nil {
				serr = fmt.Errorf("setsockopt IPV6_RECVPKTINFO: %w", serr)
				return
			}
			fam = pktinfo6
		}
	})
	if err == nil {
		err = serr
	}
	return fam, err
}

// parsePktinfo returns the destination address in the control messages b
// that recvmsg filled in: ipi_spec_dst of an IP_PKTINFO message (the local
// address the kernel would answer from: the destination of a unicast
// datagram) or ipi6_addr of an IPV6_PKTINFO one, as the kernel wrote it
// (IPv4-mapped for an IPv4 datagram on a dual-stack socket). It allocates
// nothing and reports false when b holds neither, or is malformed.
func parsePktinfo(b []byte) (netip.Addr, bool) {
	for len(b) >= cmsgHdrLen {
		var n uint64
		if cmsgLenSize == 8 {
			n = binary.NativeEndian.Uint64(b)
		} else {
			n = uint64(binary.NativeEndian.Uint32(b))
		}
		if n < uint64(cmsgHdrLen) || n > uint64(len(b)) {
			return netip.Addr{}, false
		}
		level := int32(binary.NativeEndian.Uint32(b[cmsgLenSize:]))
		typ := int32(binary.NativeEndian.Uint32(b[cmsgLenSize+4:]))
		data := b[cmsgHdrLen:n]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr.
			return netip.AddrFrom4([4]byte(data[4:8])), true
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: ipi6_addr, ipi6_ifindex.
			return netip.AddrFrom16([16]byte(data[:16])), true
		}
		next := cmsgAlign(int(n))
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return netip.Addr{}, false
}

// putPktinfo writes into b (pktinfoSpace bytes at least) the control
// message that makes sendmsg send from src, and returns its length; 0 if
// fam cannot carry src (an IPv6 address on an IPv4 socket). The interface
// index is left 0: the answer takes the route the routing table gives it,
// as any other packet, rather than being forced out of the interface the
// query came in on (asymmetric routes would lose it).
//
// The length is CMSG_LEN, without the padding CMSG_SPACE adds after the
// last message: the kernel copies a control buffer of up to 36 bytes onto
// its stack, and allocates one for anything longer, once per datagram; an
// IPV6_PKTINFO message is 36 bytes, 40 with the padding (on 64-bit
// systems).
func putPktinfo(b []byte, fam pktinfoFamily, src netip.Addr) int {
	var (
		level, typ int
		dataLen    int
	)
	switch {
	case fam == pktinfo4 && src.Unmap().Is4():
		level, typ, dataLen = unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo
	case fam == pktinfo6 && src.IsValid():
		level, typ, dataLen = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo
	default:
		return 0
	}
	n := cmsgHdrLen + dataLen
	b = b[:n]
	clear(b) // unused fields: the buffer is reused
	if cmsgLenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(n))
	}
	binary.NativeEndian.PutUint32(b[cmsgLenSize:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgLenSize+4:], uint32(typ))
	data := b[cmsgHdrLen:]
	if fam == pktinfo4 {
		a := src.Unmap().As4()
		copy(data[4:8], a[:]) // ipi_spec_dst: the source; ipi_addr is ignored
	} else {
		a := src.As16() // IPv4 as IPv4-mapped, for a dual-stack socket
		copy(data[:16], a[:])
	}
	return n
}
