package nscluster

import (
	"context"
	"fmt"
	"time"

	"buoy/e2e/netlab"
)

// Address plan. Every address is an RFC 5737 documentation address, the
// only kind netlab hands out. Fresh addresses come from a range of its
// own for each node (and for the router), so that no address ever moves
// from one host to another: a peer's ARP cache could still hold the old
// owner's MAC for it, and the test would measure neighbour discovery.
const (
	flatNet   = "198.51.100"
	wanNet    = "203.0.113"
	lanNet    = "192.0.2"
	freshBase = 20 // first fresh host number of slot 0
	freshSpan = 40 // fresh host numbers per slot
	maxFlat   = 5  // slots 0..4 fit below .220
	routerLo  = 100
	routerHi  = 250
)

// freshHost returns the host number of a node's k-th fresh address.
func freshHost(slot, k int) int {
	return freshBase + slot*freshSpan + k%freshSpan
}

// freshWAN returns the host number of the router's k-th fresh WAN address.
func freshWAN(k int) int {
	return routerLo + k%(routerHi-routerLo)
}

// Flat builds a lab with size hosts on one switch (198.51.100.0/24, so
// every host reaches every other one directly, as public hosts on the
// Internet do) and starts a cluster on them: n1 bootstraps, the others
// join through n1 with one token. It returns once every node shows every
// node alive at its address.
func Flat(t TB, opts Options, size int) *Cluster {
	t.Helper()
	if size < 2 || size > maxFlat {
		t.Fatalf("nscluster: flat cluster of %d nodes: want 2 to %d", size, maxFlat)
	}
	lab := netlab.New(t)
	c := newCluster(t, lab, opts)
	sw := lab.Switch("net")
	for i := range size {
		h := lab.Host(fmt.Sprintf("n%d", i+1))
		h.Attach(sw, fmt.Sprintf("%s.%d/24", flatNet, 11+i))
		c.addNode(h.Name(), h, sw, nil, flatNet)
	}
	c.form()
	return c
}

// NAT builds a lab with two public hosts, p1 and p2, on a WAN switch
// (203.0.113.0/24) and a home router "nat" (WAN 203.0.113.2, LAN
// 192.0.2.1, masquerade, no port forwards) with two hosts behind it, h1
// and h2 (192.0.2.11 and .12), and starts a cluster on them: p1
// bootstraps, the others join through p1. The home nodes cannot be dialed
// from outside; they keep the links they dial. It returns once every node
// shows every node alive at its address.
func NAT(t TB, opts Options) *Cluster {
	t.Helper()
	lab := netlab.New(t)
	c := newCluster(t, lab, opts)
	wan, lan := lab.Switch("wan"), lab.Switch("lan")
	for i := range 2 {
		h := lab.Host(fmt.Sprintf("p%d", i+1))
		h.Attach(wan, fmt.Sprintf("%s.%d/24", wanNet, 11+i))
		c.addNode(h.Name(), h, wan, nil, wanNet)
	}
	r := lab.Router("nat", wan, wanNet+".2/24", lan, lanNet+".1/24")
	for i := range 2 {
		h := lab.Host(fmt.Sprintf("h%d", i+1))
		h.Attach(lan, fmt.Sprintf("%s.%d/24", lanNet, 11+i))
		h.Route("default", lanNet+".1")
		c.addNode(h.Name(), h, lan, r, lanNet)
	}
	c.form()
	return c
}

// form starts the first node with --bootstrap, the others with a token
// from it, and waits until every node sees every other alive at its
// current address.
func (c *Cluster) form() {
	c.t.Helper()
	first := c.nodes[0]
	first.Start("--bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// The bootstrap node must lead and have recorded itself before it can
	// hand out a token.
	var tok Token
	var err error
	for {
		if tok, err = first.CreateToken(ctx, "nscluster"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("nscluster: token from %s: %v", first.name, err)
		case <-time.After(c.opts.Poll):
		}
	}
	join := first.PeerAddr()
	for _, n := range c.nodes[1:] {
		n.Start("--join", join, "--token", tok.Token)
	}
	if _, err := c.WaitConverged(context.Background()); err != nil {
		c.t.Fatalf("nscluster: cluster of %v does not form: %v", c.names(), err)
	}
}

// Router returns the NAT router of the cluster's lab, or nil.
func (c *Cluster) Router() *netlab.Router {
	for _, n := range c.nodes {
		if n.router != nil {
			return n.router
		}
	}
	return nil
}

func (c *Cluster) names() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.name
	}
	return out
}

// freshAddr returns the node's next unused interface address, as a CIDR.
func (n *Node) freshAddr() string {
	n.changes++
	return fmt.Sprintf("%s.%d/24", n.net, freshHost(n.slot, n.changes))
}
