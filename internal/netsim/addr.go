package netsim

import (
	"net"
	"net/netip"
	"strconv"
)

// family restricts a listener or dial to IPv4 or IPv6, as "tcp4" and
// "tcp6" do; familyAny ("tcp") allows both.
type family int

const (
	familyAny family = iota
	family4
	family6
)

func familyOf(network string) (family, error) {
	switch network {
	case "tcp":
		return familyAny, nil
	case "tcp4":
		return family4, nil
	case "tcp6":
		return family6, nil
	}
	return 0, net.UnknownNetworkError(network)
}

func (f family) allows(a netip.Addr) bool {
	switch f {
	case family4:
		return a.Is4()
	case family6:
		return a.Is6()
	}
	return true
}

// overlaps reports whether two listeners of families f and g could both
// receive one connection.
func (f family) overlaps(g family) bool {
	return f == familyAny || g == familyAny || f == g
}

// parseDialAddr parses an "ip:port" literal. Names are refused because the
// network has no resolver; tests resolve names themselves.
func parseDialAddr(address string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, &net.AddrError{Err: "want an ip:port literal", Addr: address}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// parseListenAddr parses ":port" or "ip:port". The returned address is
// invalid for a wildcard (":7300", "0.0.0.0:7300", "[::]:7300"); the
// returned family is family4 for "0.0.0.0", which on Linux means every IPv4
// address only, and familyAny otherwise.
func parseListenAddr(address string) (netip.Addr, uint16, family, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return netip.Addr{}, 0, 0, &net.AddrError{Err: err.Error(), Addr: address}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.Addr{}, 0, 0, &net.AddrError{Err: "invalid port", Addr: address}
	}
	if host == "" {
		return netip.Addr{}, uint16(port), familyAny, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, 0, &net.AddrError{Err: "want an IP literal", Addr: address}
	}
	switch {
	case a == netip.IPv4Unspecified():
		return netip.Addr{}, uint16(port), family4, nil
	case a.IsUnspecified():
		return netip.Addr{}, uint16(port), familyAny, nil
	}
	return a.Unmap(), uint16(port), familyAny, nil
}
