//go:build !linux

package dnsserver

import (
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Elsewhere than on Linux the destination address goes through
// golang.org/x/net's control messages, which know each system's options
// (IP_RECVDSTADDR on the BSDs, IP_PKTINFO on Darwin and Solaris) and
// allocate a little per datagram. Where x/net cannot set a source address
// (IPv4 on FreeBSD, say) or the system has no such option (Windows),
// answers leave from the address the kernel picks, as before.

// pktinfoSpace is the control buffer of one datagram.
const pktinfoSpace = 128

// enablePktinfo asks the kernel to report the destination address of every
// datagram uc receives, when uc is bound to a wildcard address (a socket
// bound to one address answers from it anyway). It returns the family of
// control messages the socket's answers carry.
func enablePktinfo(uc *net.UDPConn) (pktinfoFamily, error) {
	if !wildcardBound(uc) {
		return pktinfoOff, nil
	}
	// Go reports a socket opened as AF_INET with a 4-byte address.
	if uc.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		if err := ipv4.NewPacketConn(uc).SetControlMessage(ipv4.FlagDst, true); err != nil {
			return pktinfoOff, err
		}
		return pktinfo4, nil
	}
	if err := ipv6.NewPacketConn(uc).SetControlMessage(ipv6.FlagDst, true); err != nil {
		return pktinfoOff, err
	}
	return pktinfo6, nil
}

// pktinfoControl would prepare a socket before it is bound; x/net works on
// the bound socket only, so ServeUDP does it all.
func pktinfoControl(network, address string, c syscall.RawConn) {}

// parsePktinfo returns the destination address in the control messages b
// that recvmsg filled in, or false when there is none.
func parsePktinfo(b []byte) (netip.Addr, bool) {
	var cm4 ipv4.ControlMessage
	if cm4.Parse(b) == nil && cm4.Dst != nil {
		return netip.AddrFromSlice(cm4.Dst)
	}
	var cm6 ipv6.ControlMessage
	if cm6.Parse(b) == nil && cm6.Dst != nil {
		return netip.AddrFromSlice(cm6.Dst)
	}
	return netip.Addr{}, false
}

// putPktinfo writes into b (pktinfoSpace bytes at least) the control
// message that makes sendmsg send from src, and returns its length; 0 if
// there is none for fam and src on this system.
func putPktinfo(b []byte, fam pktinfoFamily, src netip.Addr) int {
	var m []byte
	switch {
	case fam == pktinfo4 && src.Unmap().Is4():
		m = (&ipv4.ControlMessage{Src: src.Unmap().AsSlice()}).Marshal()
	case fam == pktinfo6 && src.IsValid():
		a := src.As16()
		m = (&ipv6.ControlMessage{Src: a[:]}).Marshal()
	}
	if len(m) > len(b) {
		return 0
	}
	return copy(b, m)
}
