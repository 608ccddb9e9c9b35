package netlab

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseHostPrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error // nil: any error is fine when want is ""
	}{
		{"198.51.100.11/24", "198.51.100.11/24", nil},
		{"192.0.2.1/24", "192.0.2.1/24", nil},
		{"203.0.113.254/24", "203.0.113.254/24", nil},
		{"203.0.113.9/32", "203.0.113.9/32", nil},
		{"192.0.2.5/30", "192.0.2.5/30", nil},
		{"192.0.2.0/31", "192.0.2.0/31", nil}, // point-to-point: no network address
		{"10.0.0.1/24", "", ErrNotTestAddr},
		{"172.16.0.1/24", "", ErrNotTestAddr},
		{"192.168.1.1/24", "", ErrNotTestAddr},
		{"8.8.8.8/24", "", ErrNotTestAddr},
		{"192.0.2.11/16", "", ErrNotTestAddr}, // its connected route would leave the range
		{"192.0.3.1/24", "", ErrNotTestAddr},
		{"2001:db8::1/64", "", ErrNotTestAddr},
		{"::ffff:192.0.2.1/120", "", ErrNotTestAddr},
		{"192.0.2.0/24", "", nil},   // network address
		{"192.0.2.255/24", "", nil}, // broadcast address
		{"192.0.2.11", "", nil},
		{"", "", nil},
		{"pi1", "", nil},
	}
	for _, tt := range tests {
		got, err := parseHostPrefix(tt.in)
		switch {
		case tt.want != "":
			if err != nil || got.String() != tt.want {
				t.Errorf("parseHostPrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		case err == nil:
			t.Errorf("parseHostPrefix(%q) = %v, want an error", tt.in, got)
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Errorf("parseHostPrefix(%q) error = %v, want %v", tt.in, err, tt.wantErr)
		}
	}
}

func TestParseRouteDst(t *testing.T) {
	tests := []struct {
		in   string
		want netip.Prefix
		ok   bool
	}{
		{"default", netip.Prefix{}, true},
		{"192.0.2.0/24", netip.MustParsePrefix("192.0.2.0/24"), true},
		{"203.0.113.128/25", netip.MustParsePrefix("203.0.113.128/25"), true},
		{"192.0.2.1/24", netip.Prefix{}, false}, // host bits
		{"0.0.0.0/0", netip.Prefix{}, false},    // spell it "default"
		{"10.0.0.0/8", netip.Prefix{}, false},
		{"192.0.0.0/16", netip.Prefix{}, false},
		{"Default", netip.Prefix{}, false},
	}
	for _, tt := range tests {
		got, err := parseRouteDst(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseRouteDst(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseTestAddr(t *testing.T) {
	for _, in := range []string{"192.0.2.1", "198.51.100.0", "203.0.113.255"} {
		if _, err := parseTestAddr(in); err != nil {
			t.Errorf("parseTestAddr(%q) = %v, want nil", in, err)
		}
	}
	for _, in := range []string{"127.0.0.1", "10.1.2.3", "192.0.2.1/24", "2001:db8::1", ""} {
		if a, err := parseTestAddr(in); err == nil {
			t.Errorf("parseTestAddr(%q) = %v, want an error", in, a)
		}
	}
}

func TestCheckName(t *testing.T) {
	good := []string{"pi1", "a", "nat-1", "lan", strings.Repeat("x", maxNameLen)}
	bad := []string{"", "-a", "a-", "Pi1", "pi_1", "pi 1", "pi/1", "pi.1", strings.Repeat("x", maxNameLen+1), "ä"}
	for _, n := range good {
		if err := checkName(n); err != nil {
			t.Errorf("checkName(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := checkName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("checkName(%q) = %v, want ErrBadName", n, err)
		}
	}
}

func TestParseNetnsList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a\n", []string{"a"}},
		{"nl1-abcdef-h-pi1 (id: 3)\nnl1-abcdef-s-lan (id: 2)\nother\n", []string{"nl1-abcdef-h-pi1", "nl1-abcdef-s-lan", "other"}},
		{"x (id: 1)\n\n  \ny", []string{"x", "y"}},
	}
	for _, tt := range tests {
		if got := parseNetnsList(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("parseNetnsList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLastAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.7/24", "192.0.2.255"},
		{"192.0.2.7/30", "192.0.2.7"},
		{"203.0.113.9/32", "203.0.113.9"},
		{"198.51.100.200/25", "198.51.100.255"},
	}
	for _, tt := range tests {
		if got := lastAddr(netip.MustParsePrefix(tt.in)); got.String() != tt.want {
			t.Errorf("lastAddr(%s) = %v, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRenderRules(t *testing.T) {
	fwd := []Forward{
		{Proto: "tcp", WANPort: 8080, Inside: netip.MustParseAddr("192.0.2.11"), InsidePort: 7000},
		{Proto: "udp", WANPort: 53, Inside: netip.MustParseAddr("192.0.2.12"), InsidePort: 5353},
	}
	tests := []struct {
		name     string
		mode     NATMode
		forwards []Forward
		want     string
	}{
		{"cone", Cone, nil, `table ip netlab
delete table ip netlab
table ip netlab {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "lan" oifname "wan" masquerade
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" oifname "wan" accept
		iifname "wan" oifname "lan" ct status dnat accept
	}
}
`},
		{"symmetric with forwards", Symmetric, fwd, `table ip netlab
delete table ip netlab
table ip netlab {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "wan" tcp dport 8080 dnat to 192.0.2.11:7000
		iifname "wan" udp dport 53 dnat to 192.0.2.12:5353
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname "lan" oifname "wan" masquerade fully-random
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" oifname "wan" accept
		iifname "wan" oifname "lan" ct status dnat accept
	}
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renderRules(tt.mode, tt.forwards); got != tt.want {
				t.Errorf("renderRules(%v, %v) =\n%s\nwant\n%s", tt.mode, tt.forwards, got, tt.want)
			}
		})
	}
}

// FuzzParseHostPrefix checks that whatever parseHostPrefix accepts is an
// IPv4 host address whose whole connected network is inside RFC 5737.
func FuzzParseHostPrefix(f *testing.F) {
	for _, s := range []string{"198.51.100.11/24", "192.0.2.0/31", "10.0.0.1/8", "192.0.2.11/16", "::ffff:192.0.2.1/120", "203.0.113.255/32", "1.2.3.4/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseHostPrefix(s)
		if err != nil {
			return
		}
		if !p.Addr().Is4() || p.Bits() < 24 {
			t.Fatalf("parseHostPrefix(%q) = %v: not an IPv4 /24 or longer", s, p)
		}
		if !isTestAddr(p.Masked().Addr()) || !isTestAddr(lastAddr(p)) {
			t.Fatalf("parseHostPrefix(%q) = %v: network %v..%v leaves RFC 5737", s, p, p.Masked().Addr(), lastAddr(p))
		}
		if again, err := parseHostPrefix(p.String()); err != nil || again != p {
			t.Fatalf("parseHostPrefix(%q) = %v, %v; want %v again", p.String(), again, err, p)
		}
	})
}

// FuzzParseNetnsList checks that every name parsed from `ip netns list`
// output is non-empty, has no blank, and comes from the start of a line.
func FuzzParseNetnsList(f *testing.F) {
	f.Add("a (id: 1)\nb\n")
	f.Add("\n\n x\t(y)\n")
	f.Fuzz(func(t *testing.T, out string) {
		for _, n := range parseNetnsList(out) {
			if n == "" || strings.ContainsAny(n, " \t\n\r\v\f") {
				t.Fatalf("parseNetnsList(%q) gave name %q", out, n)
			}
			if !strings.Contains(out, n) {
				t.Fatalf("parseNetnsList(%q) gave %q, not in the input", out, n)
			}
		}
	})
}
