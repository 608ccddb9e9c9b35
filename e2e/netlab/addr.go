package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrNotTestAddr is returned (and reported) for an address, prefix or route
// outside the RFC 5737 documentation ranges, the only ones a lab uses.
var ErrNotTestAddr = errors.New("not an RFC 5737 test address (192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24)")

// ErrBadName is reported for a host, switch or router name that is not a
// short lowercase label, or that the lab already uses.
var ErrBadName = errors.New("bad node name")

// testNets returns the RFC 5737 documentation networks. A function rather
// than a package variable so that nothing can change the list.
func testNets() [3]netip.Prefix {
	return [3]netip.Prefix{
		netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, 0}), 24),
		netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, 0}), 24),
		netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, 0}), 24),
	}
}

// isTestAddr reports whether a is an IPv4 address in an RFC 5737 network.
func isTestAddr(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	for _, n := range testNets() {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// parseTestAddr parses an IPv4 address in an RFC 5737 network.
func parseTestAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("parse address %q: %w", s, err)
	}
	if !isTestAddr(a) {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, ErrNotTestAddr)
	}
	return a, nil
}

// parseHostPrefix parses an interface address such as "198.51.100.11/24".
// The prefix must be /24 or longer, so that the connected route it creates
// stays inside the documentation network, and the address must not be the
// network's or broadcast address.
func parseHostPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse interface address %q: %w", s, err)
	}
	if !isTestAddr(p.Addr()) || p.Bits() < 24 {
		return netip.Prefix{}, fmt.Errorf("interface address %q: %w", s, ErrNotTestAddr)
	}
	if p.Bits() <= 30 && (p.Addr() == p.Masked().Addr() || p.Addr() == lastAddr(p)) {
		return netip.Prefix{}, fmt.Errorf("interface address %q: network or broadcast address", s)
	}
	return p, nil
}

// lastAddr returns the highest address of p (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// parseRouteDst parses a route destination: "default" (the zero Prefix) or
// a prefix inside a documentation network.
func parseRouteDst(s string) (netip.Prefix, error) {
	if s == "default" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse route destination %q: %w", s, err)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("route destination %q: host bits set (want %s)", s, p.Masked())
	}
	if !isTestAddr(p.Addr()) || p.Bits() < 24 {
		return netip.Prefix{}, fmt.Errorf("route destination %q: %w", s, ErrNotTestAddr)
	}
	return p, nil
}

// maxNameLen bounds node names so that namespace names stay short enough
// to read in `ip netns list`.
const maxNameLen = 20

// checkName accepts a lowercase DNS-like label: letters, digits and inner
// hyphens, at most maxNameLen long.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w %q: want 1 to %d characters", ErrBadName, name, maxNameLen)
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return fmt.Errorf("%w %q: want lowercase letters, digits and inner hyphens", ErrBadName, name)
		}
	}
	return nil
}

// parseNetnsList returns the namespace names in the output of
// `ip netns list`, whose lines read "name" or "name (id: 3)".
func parseNetnsList(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}
