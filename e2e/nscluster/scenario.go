package nscluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// writeTimeout bounds CommitWrite: an election after a leader's address
// changed comes first.
const writeTimeout = 60 * time.Second

// Change is one address change a scenario made and how long the cluster
// took to follow it.
type Change struct {
	// What describes the change for logs, such as
	// "n2 198.51.100.12 -> 198.51.100.61".
	What string
	// Converged is the time from the start of the first `ip addr` change
	// to the moment every node showed every member alive at its new
	// address (an upper bound; see WaitConverged).
	Converged time.Duration
}

// ReplaceAddrs replaces the interface address of each node with a fresh
// one, one after the other as fast as `ip` allows (the ISP handing out new
// leases after a power cut), then waits until the cluster converges and
// commits a write through a follower. It fails the test if either does
// not happen.
func (c *Cluster) ReplaceAddrs(nodes ...*Node) Change {
	c.t.Helper()
	var what []string
	start := time.Now()
	for _, n := range nodes {
		old := n.IP()
		n.host.SetAddr(n.sw, n.freshAddr())
		what = append(what, fmt.Sprintf("%s %s -> %s", n.name, old, n.IP()))
	}
	return c.follow(strings.Join(what, ", "), start)
}

// ReplaceWAN gives the cluster's NAT router a fresh WAN address and
// forgets its NAT state (netlab.Router.SetWAN), then waits until the
// cluster converges and commits a write through a follower.
func (c *Cluster) ReplaceWAN() Change {
	c.t.Helper()
	r := c.Router()
	if r == nil {
		c.t.Fatalf("nscluster: ReplaceWAN: the cluster has no NAT router")
	}
	old := r.WAN().Addr()
	c.wanChanges++
	start := time.Now()
	r.SetWAN(fmt.Sprintf("%s.%d/24", wanNet, freshWAN(c.wanChanges)))
	return c.follow(fmt.Sprintf("router %s WAN %s -> %s", r.Name(), old, r.WAN().Addr()), start)
}

// RestartOnNewAddr stops the node with SIGTERM, replaces its address,
// starts it again with the same data dir and command line, then waits
// until the cluster converges and commits a write through a follower.
// The time is taken from the address change; the restart is part of it.
func (c *Cluster) RestartOnNewAddr(n *Node) Change {
	c.t.Helper()
	n.Stop()
	old := n.IP()
	start := time.Now()
	n.host.SetAddr(n.sw, n.freshAddr())
	n.Restart()
	return c.follow(fmt.Sprintf("%s restarted, %s -> %s", n.name, old, n.IP()), start)
}

// follow waits for convergence after a change that started at start, then
// checks that the cluster commits a write and still shows the new
// addresses afterwards.
func (c *Cluster) follow(what string, start time.Time) Change {
	c.t.Helper()
	at, err := c.WaitConverged(context.Background())
	if err != nil {
		c.t.Fatalf("nscluster: after %s: %v", what, err)
	}
	ch := Change{What: what, Converged: at.Sub(start)}
	if err := c.CommitWrite(context.Background()); err != nil {
		c.t.Fatalf("nscluster: after %s: %v", what, err)
	}
	// Still correct everywhere after the write: the view did not flap.
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	if err := c.CheckNow(ctx); err != nil {
		c.t.Fatalf("nscluster: after %s and a write: %v", what, err)
	}
	return ch
}

// CheckNow asks every node once whether it shows every member alive at
// its current address.
func (c *Cluster) CheckNow(ctx context.Context) error {
	c.t.Helper()
	exp := c.expected()
	return eachNode(c.nodes, func(n *Node) error {
		ms, err := n.Members(ctx)
		if err == nil {
			err = exp[n.name].check(ms)
		}
		if err != nil {
			return fmt.Errorf("on %s: %w", n.name, err)
		}
		return nil
	})
}

// CommitWrite creates a join token (a write that commits through Raft)
// through a follower, retrying while an election settles, and waits until
// every node lists it.
func (c *Cluster) CommitWrite(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var lastErr error
	for {
		if id, via, err := c.writeOnce(ctx); err == nil {
			if err := c.waitToken(ctx, id); err != nil {
				return fmt.Errorf("write through %s: %w", via, err)
			}
			return nil
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no write through a follower within %v: %w", writeTimeout, lastErr)
		case <-time.After(c.opts.Poll):
		}
	}
}

// writeOnce creates a token through the first node that calls itself a
// follower and names a leader.
func (c *Cluster) writeOnce(ctx context.Context) (id, via string, err error) {
	var errs []error
	for _, n := range c.nodes {
		st, err := n.Status(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.RaftState != "Follower" || st.Leader == "" {
			errs = append(errs, fmt.Errorf("%s is %s with leader %q", n.name, st.RaftState, st.Leader))
			continue
		}
		tok, err := n.CreateToken(ctx, "write via "+n.name)
		if err != nil {
			return "", "", err
		}
		return tok.ID, n.name, nil
	}
	return "", "", fmt.Errorf("no follower with a leader: %w", errors.Join(errs...))
}

// waitToken waits until every node lists token id.
func (c *Cluster) waitToken(ctx context.Context, id string) error {
	for {
		err := eachNode(c.nodes, func(n *Node) error { return n.HasToken(ctx, id) })
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(c.opts.Poll):
		}
	}
}

// Follower returns a node that reports itself a Raft follower with a known
// leader, waiting for an election to settle if needed.
func (c *Cluster) Follower() *Node {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	for {
		var errs []error
		for _, n := range c.nodes {
			st, err := n.Status(ctx)
			switch {
			case err != nil:
				errs = append(errs, err)
			case st.RaftState != "Follower" || st.Leader == "":
				errs = append(errs, fmt.Errorf("%s is %s with leader %q", n.name, st.RaftState, st.Leader))
			default:
				return n
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("nscluster: no follower with a leader within %v: %v", writeTimeout, errors.Join(errs...))
			return nil
		case <-time.After(c.opts.Poll):
		}
	}
}

// Except returns the cluster's nodes without the given ones.
func (c *Cluster) Except(skip ...*Node) []*Node {
	return slices.DeleteFunc(slices.Clone(c.nodes), func(n *Node) bool { return slices.Contains(skip, n) })
}
