package clustertest

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAddrFor: node addresses are distinct and all inside the RFC 5737
// documentation ranges.
func TestAddrFor(t *testing.T) {
	docs := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
	}
	tests := []struct {
		i    int
		want string
	}{
		{0, "192.0.2.10"},
		{1, "198.51.100.10"},
		{2, "203.0.113.10"},
		{3, "192.0.2.11"},
		{29, "203.0.113.19"},
	}
	for _, tt := range tests {
		if got := addrFor(tt.i).String(); got != tt.want {
			t.Errorf("addrFor(%d) = %s, want %s", tt.i, got, tt.want)
		}
	}
	seen := map[netip.Addr]int{}
	for i := range 100 {
		a := addrFor(i)
		if j, dup := seen[a]; dup {
			t.Fatalf("addrFor(%d) = addrFor(%d) = %s", i, j, a)
		}
		seen[a] = i
		inDocs := false
		for _, p := range docs {
			inDocs = inDocs || p.Contains(a)
		}
		if !inDocs {
			t.Errorf("addrFor(%d) = %s, outside RFC 5737", i, a)
		}
	}
}

// TestConvergedSeesSplit: the harness's agreement check is not a
// tautology: a node cut off from the others loses its leader, and
// Converged says so until the cut heals.
func TestConvergedSeesSplit(t *testing.T) {
	Run(t, func(t *testing.T) {
		c := New(t, Options{})
		grow(t, c, names(3)...)
		c.WaitMembers(convergeBound, names(3)...)
		if _, err := c.Converged(); err != nil {
			t.Fatalf("Converged() = %v on a healthy cluster", err)
		}

		leader := c.WaitLeader(electBound)
		cut := c.Followers(leader)[0]
		c.Partition(cut.Name)
		time.Sleep(5 * time.Second) // past Raft's heartbeat timeout
		_, err := c.Converged()
		if err == nil || !strings.Contains(err.Error(), cut.Name) {
			t.Errorf("Converged() with %s cut off = %v, want an error naming it", cut.Name, err)
		}
		others := c.Followers(cut)
		if _, err := c.ConvergedAmong(others...); err != nil {
			t.Errorf("ConvergedAmong(the majority) = %v, want agreement", err)
		}

		c.Heal()
		c.WaitMembers(convergeBound, names(3)...)
	})
}
