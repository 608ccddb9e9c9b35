package discovery

import (
	"fmt"
	"net/netip"
	"slices"

	"buoy/internal/wire"
)

// Family is an IP address family. Votes, NAT classes and records keep the
// families apart: a node's IPv4 and IPv6 addresses change independently.
type Family uint8

// IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// families lists the families in the order addresses are reported.
var families = [...]Family{IPv4, IPv6}

// FamilyOf returns a's family, IPv4 for an IPv4-mapped IPv6 address, and 0
// for the zero Addr.
func FamilyOf(a netip.Addr) Family {
	switch {
	case !a.IsValid():
		return 0
	case a.Unmap().Is4():
		return IPv4
	}
	return IPv6
}

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// index maps a family to its slot in per-family arrays, or -1.
func (f Family) index() int {
	switch f {
	case IPv4:
		return 0
	case IPv6:
		return 1
	}
	return -1
}

// canon returns ap as this package keeps addresses: IPv4-mapped IPv6 as
// plain IPv4, and no zone (a zone names an interface of the host that
// reported it, which means nothing to anyone else).
func canon(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// cgnatPrefix is the shared address space of carrier-grade NAT (RFC 6598).
var cgnatPrefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, 0}), 10)

func isCGNAT(a netip.Addr) bool { return a.IsValid() && cgnatPrefix.Contains(a.Unmap()) }

// limitedBroadcast is 255.255.255.255, which no unicast peer can have.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// unicast reports whether a can be a peer's address at all.
func unicast(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Unmap() != limitedBroadcast
}

// hostScoped reports whether a is only meaningful on one host or one
// link, so that no peer elsewhere can legitimately use it.
func hostScoped(a netip.Addr) bool {
	return a.IsLoopback() || a.IsLinkLocalUnicast()
}

// parseAddr parses an "IP:port" from a record and insists on the canonical
// form netip.AddrPort.String produces, so that a record parsed and written
// again has the same signed bytes.
func parseAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q: %v", ErrMalformed, s, err)
	}
	if err := checkRecordAddr(ap); err != nil {
		return netip.AddrPort{}, err
	}
	if ap.String() != s {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q is not in canonical form %q", ErrMalformed, s, ap.String())
	}
	return ap, nil
}

// checkRecordAddr checks one address a record may carry.
func checkRecordAddr(ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case !ap.IsValid():
		return fmt.Errorf("%w: invalid address", ErrMalformed)
	case a.Zone() != "":
		return fmt.Errorf("%w: address %s has a zone", ErrMalformed, ap)
	case a.Is4In6():
		return fmt.Errorf("%w: address %s is IPv4-mapped; write it as IPv4", ErrMalformed, ap)
	case ap.Port() == 0:
		return fmt.Errorf("%w: address %s has port 0", ErrMalformed, ap)
	case !unicast(a):
		return fmt.Errorf("%w: address %s is not a unicast address", ErrMalformed, ap)
	}
	return nil
}

// validName checks a node name the way pki.ValidName does (one lowercase
// DNS label). It is repeated here because this package may not import pki.
func validName(name string) error {
	if name == "" || len(name) > wire.MaxNodeLen {
		return fmt.Errorf("%w: node name %.70q must have 1 to %d characters", ErrMalformed, name, wire.MaxNodeLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: node name %q has %q at position %d; allowed are a-z, 0-9 and '-'", ErrMalformed, name, c, i)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("%w: node name %q starts or ends with '-'", ErrMalformed, name)
	}
	return nil
}

// containsIP reports whether any of aps has IP a.
func containsIP(aps []netip.AddrPort, a netip.Addr) bool {
	return slices.ContainsFunc(aps, func(ap netip.AddrPort) bool { return ap.Addr() == a })
}
