package nscluster

import (
	"net/netip"
	"strings"
	"testing"
)

func TestWantCheck(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.21")
	b := netip.MustParseAddr("198.51.100.61")
	lan := netip.MustParseAddr("192.0.2.11")
	w := want{"n1": {a}, "n2": {b, lan}}
	tests := []struct {
		name    string
		members []Member
		wantErr string // "" for no error; else a part of the message
	}{
		{"all correct", []Member{
			{Name: "n1", Address: "198.51.100.21:7300", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "alive"},
		}, ""},
		{"second address allowed", []Member{
			{Name: "n1", Address: "198.51.100.21:7300", State: "alive"},
			{Name: "n2", Address: "192.0.2.11:7300", State: "alive"},
		}, ""},
		{"old address", []Member{
			{Name: "n1", Address: "198.51.100.11:7300", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "alive"},
		}, `n1 at "198.51.100.11:7300", want 198.51.100.21:7300`},
		{"wrong port", []Member{
			{Name: "n1", Address: "198.51.100.21:7301", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "alive"},
		}, "n1 at"},
		{"no address", []Member{
			{Name: "n1", Address: "", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "alive"},
		}, `n1 at ""`},
		{"suspect", []Member{
			{Name: "n1", Address: "198.51.100.21:7300", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "suspect"},
		}, "n2 is suspect, want alive"},
		{"missing", []Member{
			{Name: "n1", Address: "198.51.100.21:7300", State: "alive"},
		}, "n2 missing"},
		{"stranger", []Member{
			{Name: "n1", Address: "198.51.100.21:7300", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "alive"},
			{Name: "n9", Address: "198.51.100.99:7300", State: "alive"},
		}, "unexpected member n9"},
		{"left", []Member{
			{Name: "n1", Address: "198.51.100.21:7300", State: "alive"},
			{Name: "n2", Address: "198.51.100.61:7300", State: "left"},
		}, "n2 is left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.check(tt.members)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("check(%+v) = %v, want nil", tt.members, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("check(%+v) = %v, want an error containing %q", tt.members, err, tt.wantErr)
			}
		})
	}
}

// TestFreshAddresses: every node's fresh addresses stay in its own range,
// inside the /24, away from the initial host numbers (11 to 15) and the
// router's addresses (1, 2 and the WAN range), and never repeat within 40
// changes, so no address moves between hosts.
func TestFreshAddresses(t *testing.T) {
	owner := map[int]int{}
	for slot := range maxFlat {
		seen := map[int]bool{}
		for k := 1; k <= freshSpan; k++ {
			h := freshHost(slot, k)
			if h < freshBase || h > 254 || h >= 11 && h <= 15 {
				t.Fatalf("freshHost(%d, %d) = %d, outside the fresh range", slot, k, h)
			}
			if seen[h] {
				t.Fatalf("freshHost(%d, %d) = %d, repeated within %d changes", slot, k, h, freshSpan)
			}
			seen[h] = true
			if o, ok := owner[h]; ok && o != slot {
				t.Fatalf("freshHost(%d, %d) = %d, also in slot %d's range", slot, k, h, o)
			}
			owner[h] = slot
		}
	}
	for k := 1; k <= 300; k++ {
		h := freshWAN(k)
		if h < routerLo || h >= routerHi {
			t.Fatalf("freshWAN(%d) = %d, outside [%d, %d)", k, h, routerLo, routerHi)
		}
		// The NAT topology's public nodes use slots 0 and 1 on the WAN.
		for slot := range 2 {
			for j := 1; j <= freshSpan; j++ {
				if freshHost(slot, j) == h {
					t.Fatalf("freshWAN(%d) = %d, also public node slot %d's", k, h, slot)
				}
			}
		}
	}
}

func TestShowAddrs(t *testing.T) {
	one := []netip.Addr{netip.MustParseAddr("203.0.113.9")}
	two := append(one, netip.MustParseAddr("192.0.2.11"))
	if got, want := showAddrs(one), "203.0.113.9:7300"; got != want {
		t.Errorf("showAddrs(%v) = %q, want %q", one, got, want)
	}
	if got, want := showAddrs(two), "one of [203.0.113.9:7300 192.0.2.11:7300]"; got != want {
		t.Errorf("showAddrs(%v) = %q, want %q", two, got, want)
	}
}
