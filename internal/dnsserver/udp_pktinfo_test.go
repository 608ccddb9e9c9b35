package dnsserver

import (
	"net/netip"
	"testing"
)

func TestReplySource(t *testing.T) {
	for _, tc := range []struct {
		dst  string // "" for none
		want string // "" when the kernel must pick
	}{
		{"192.0.2.11", "192.0.2.11"},
		{"127.0.0.2", "127.0.0.2"},
		{"::ffff:192.0.2.11", "::ffff:192.0.2.11"}, // stays mapped for a dual-stack socket
		{"2001:db8::53", "2001:db8::53"},
		{"fe80::1", "fe80::1"},
		{"::1", "::1"},
		{"224.0.0.251", ""},
		{"ff02::fb", ""},
		{"::ffff:224.0.0.251", ""},
		{"255.255.255.255", ""},
		{"::ffff:255.255.255.255", ""},
		{"0.0.0.0", ""},
		{"::", ""},
		{"", ""},
	} {
		t.Run(tc.dst, func(t *testing.T) {
			var dst netip.Addr
			if tc.dst != "" {
				dst = netip.MustParseAddr(tc.dst)
			}
			got, ok := replySource(dst, tc.dst != "")
			switch {
			case tc.want == "" && ok:
				t.Errorf("replySource(%q) = %v, want none", tc.dst, got)
			case tc.want != "" && (!ok || got != netip.MustParseAddr(tc.want)):
				t.Errorf("replySource(%q) = %v, %v, want %s", tc.dst, got, ok, tc.want)
			}
		})
	}
}
