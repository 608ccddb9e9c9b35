package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"buoy"
)

// AddressesKnown checks, through each live node's public API, that every
// live node knows where it and every other live node are now:
//
//   - Node.Self() is WantSelf (what its peers see of it);
//   - Node.PeerAddr(other) is WantAddr(node, other);
//   - in Node.Members(), each live node's entry has that same address
//     (WantSelf with the peer port for its own entry) and state "alive".
//
// It returns every mismatch found, or nil.
func (c *Cluster) AddressesKnown() error {
	return addressesKnown(c.Live())
}

func addressesKnown(live []*Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, n := range live {
		if got, want := n.Node.Self(), WantSelf(n); got != want {
			errs = append(errs, fmt.Errorf("%s: Self() = %v, want %v", n.Name, got, want))
		}
		ms, err := n.Node.Members(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("members on %s: %w", n.Name, err))
			continue
		}
		byName := make(map[string]buoy.Member, len(ms))
		for _, m := range ms {
			byName[m.Name] = m
		}
		for _, o := range live {
			want := WantAddr(n, o)
			if o == n {
				want = netip.AddrPortFrom(WantSelf(n), PeerPort)
			} else if got, ok := n.Node.PeerAddr(o.Name); !ok || got != want {
				errs = append(errs, fmt.Errorf("%s: PeerAddr(%q) = %v, %t; want %v", n.Name, o.Name, got, ok, want))
			}
			m, ok := byName[o.Name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: Members() lacks %s", n.Name, o.Name))
			case m.Address != want.String() || m.State != "alive":
				errs = append(errs, fmt.Errorf("%s: Members() has %s at %q, %s; want %v, alive", n.Name, o.Name, m.Address, m.State, want))
			}
		}
	}
	return errors.Join(errs...)
}

// WaitAddresses waits until AddressesKnown holds; it fails the test after
// timeout with the mismatches left.
func (c *Cluster) WaitAddresses(timeout time.Duration) {
	c.t.Helper()
	if err := c.Wait(timeout, c.AddressesKnown); err != nil {
		c.t.Fatalf("addresses did not converge: %v", err)
	}
}

// Write commits a write through via (a join token, the cheapest write
// there is) and waits until every live node has applied it, all within
// timeout. A follower forwards the write to the leader, so a write
// through one proves that its links carry Raft's traffic both ways.
func (c *Cluster) Write(via *Node, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	tok, err := via.Node.CreateToken(ctx, buoy.TokenRequest{Description: "write through " + via.Name})
	if err != nil {
		return fmt.Errorf("write through %s: %w", via.Name, err)
	}
	return c.Wait(time.Until(deadline), func() error {
		for _, n := range c.Live() {
			toks, err := n.Node.Tokens(ctx)
			if err != nil {
				return fmt.Errorf("tokens on %s: %w", n.Name, err)
			}
			found := false
			for _, ti := range toks {
				found = found || ti.ID == tok.ID
			}
			if !found {
				return fmt.Errorf("%s has not applied token %s written through %s", n.Name, tok.ID, via.Name)
			}
		}
		return nil
	})
}
