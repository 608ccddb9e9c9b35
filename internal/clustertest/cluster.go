// Package clustertest runs whole Buoy clusters inside one test process: N
// real buoy.Nodes, each on its own host of an in-memory network
// (internal/netsim) with an RFC 5737 documentation address, talking TLS,
// yamux and Raft to each other exactly as they would over TCP. Nodes dial
// from the port they listen on, as buoy does; a node may sit behind a NAT
// box (AddNAT, JoinBehind) on a LAN of its own, and any node or NAT may
// get a new address at any time (ChangeAddr, ChangeNATAddr).
// AddressesKnown and WaitAddresses check that every node knows every
// node's current address through the public API (WantAddr, WantSelf say
// what that is).
//
// It is built for testing/synctest: run a scenario inside synctest.Test and
// Raft's election and heartbeat timeouts pass in virtual time, so a scenario
// that waits half a minute for a failover finishes in well under a second
// and its timings are deterministic enough to assert bounds on. Nothing in
// the harness starts a goroutine of its own; every node is Closed by
// Cluster.Close, which New registers with t.Cleanup, so the bubble ends
// without leaked goroutines.
//
// A Cluster works outside a bubble too (on real time), which is the
// fallback for a scenario that cannot run in one.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"buoy"
	"buoy/internal/netsim"
)

// PeerPort is the port every node accepts peer links on.
const PeerPort = 7300

// LogsEnv names an environment variable: when it is set, every test
// prints its nodes' logs, not only a failing one.
const LogsEnv = "BUOY_CLUSTERTEST_LOGS"

// startTimeout bounds Node.Start, which for a joiner includes the join.
const startTimeout = time.Minute

// Options tune a Cluster. The zero value is ready to use.
type Options struct {
	// MaxVoters is passed to every node's Config (0: buoy's default, 5).
	MaxVoters int
}

// Cluster is a set of Buoy nodes on one simulated network. It is not safe
// for concurrent use: drive it from the test goroutine.
type Cluster struct {
	t    testing.TB
	opts Options
	net  *netsim.Network
	logs *logBuffer
	root string // parent of every node's data dir

	nodes []*Node // in creation order
	nats  []*NAT  // in creation order
	// used counts the public addresses handed out (addrFor's index), so
	// that every node and NAT, and every address change, gets a fresh one.
	used int
	// epoch is when the cluster was created, in the clock of the caller
	// (virtual inside a synctest bubble).
	epoch time.Time
}

// Node is one member of the Cluster: a netsim host, a data dir, and the
// buoy.Node currently running on them (nil while killed).
type Node struct {
	Name string
	Host *netsim.Host
	// Addr is the host's current address: public, or on its NAT's LAN.
	// ChangeAddr changes it.
	Addr netip.Addr
	// NAT is the NAT the node sits behind, nil for a node on the public
	// network.
	NAT *NAT
	Dir string

	// Node is the running node, nil after Kill until Restart.
	Node *buoy.Node

	cfg buoy.Config // as first started, minus the listener
}

// PeerAddr returns the "ip:port" the node accepts peer links on.
func (n *Node) PeerAddr() string {
	return netip.AddrPortFrom(n.Addr, PeerPort).String()
}

// Live reports whether the node is running: not killed, and not stopped
// on its own after leaving or being removed (such a node still needs
// Close, which Kill and Cluster.Close do).
func (n *Node) Live() bool {
	if n.Node == nil {
		return false
	}
	select {
	case <-n.Node.Done():
		return false
	default:
		return true
	}
}

// New returns an empty cluster and registers its Close with t.Cleanup.
// Inside a synctest bubble call it from the bubble's test function, so the
// network belongs to the bubble.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{
		t:     t,
		opts:  opts,
		net:   netsim.New(),
		logs:  newLogBuffer(),
		root:  t.TempDir(),
		epoch: time.Now(),
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() || os.Getenv(LogsEnv) != "" {
			c.logs.dump(t)
		}
	})
	return c
}

// Since returns the time elapsed since the cluster was created: virtual
// time inside a synctest bubble.
func (c *Cluster) Since() time.Duration { return time.Since(c.epoch) }

// Network returns the simulated network, for faults the helpers do not
// cover (latency, IP changes).
func (c *Cluster) Network() *netsim.Network { return c.net }

// freshAddr returns a public address no node or NAT has had yet.
func (c *Cluster) freshAddr() netip.Addr {
	a := addrFor(c.used)
	c.used++
	return a
}

// addrFor spreads nodes over the three RFC 5737 ranges, so that nodes of
// one cluster do not all look like they share a LAN.
func addrFor(i int) netip.Addr {
	prefixes := [...][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	p := prefixes[i%len(prefixes)]
	return netip.AddrFrom4([4]byte{p[0], p[1], p[2], byte(10 + i/len(prefixes))})
}

// Bootstrap starts the cluster's first node, which creates the cluster.
func (c *Cluster) Bootstrap(name string) *Node {
	c.t.Helper()
	if len(c.nodes) > 0 {
		c.t.Fatalf("Bootstrap(%q): the cluster already has nodes", name)
	}
	n := c.addNode(name, nil)
	n.cfg.Bootstrap = true
	if err := c.start(n); err != nil {
		c.t.Fatalf("bootstrap %s: %v", name, err)
	}
	return n
}

// Join starts a new node that joins with a fresh single-use token created
// on the first live node, dialing the live nodes' peer addresses (the
// first node first).
func (c *Cluster) Join(name string) *Node {
	c.t.Helper()
	n, err := c.TryJoin(name)
	if err != nil {
		c.t.Fatalf("join %s: %v", name, err)
	}
	return n
}

// TryJoin is Join that returns the error instead of failing the test. The
// node stays in the cluster's list either way, not running if it failed.
func (c *Cluster) TryJoin(name string) (*Node, error) {
	c.t.Helper()
	return c.tryJoin(name, nil)
}

// tryJoin adds a node, behind nat if it is not nil, and joins it.
func (c *Cluster) tryJoin(name string, nat *NAT) (*Node, error) {
	c.t.Helper()
	live := c.Live()
	if len(live) == 0 {
		return nil, errors.New("no live node to create a token on")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := live[0].Node.CreateToken(ctx, buoy.TokenRequest{MaxUses: 1, Description: "join " + name})
	if err != nil {
		return nil, fmt.Errorf("create token on %s: %w", live[0].Name, err)
	}
	n := c.addNode(name, nat)
	n.cfg.Token = tok.Token
	for _, l := range live {
		if reaches(n, l) {
			n.cfg.Join = append(n.cfg.Join, l.PeerAddr())
		}
	}
	return n, c.start(n)
}

func (c *Cluster) addNode(name string, nat *NAT) *Node {
	c.t.Helper()
	if c.Get(name) != nil {
		c.t.Fatalf("node %q exists already", name)
	}
	n := &Node{
		Name: name,
		NAT:  nat,
		Dir:  filepath.Join(c.root, name),
	}
	if nat == nil {
		n.Addr = c.freshAddr()
		n.Host = c.net.AddHost(name, n.Addr)
	} else {
		n.Addr = nat.freshLANAddr()
		n.Host = nat.AddHost(name, n.Addr)
	}
	// A node dials from the port it listens on (as buoy does with
	// SO_REUSEPORT), so that a NAT maps its links the way it maps a real
	// node's and the NAT class its peers' views add up to is meaningful.
	dial := n.Host.Dialer(PeerPort)
	n.cfg = buoy.Config{
		Name:      name,
		DataDir:   n.Dir,
		HTTPAddr:  "-",
		MaxVoters: c.opts.MaxVoters,
		Logger:    c.logs.logger(),
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		},
	}
	c.nodes = append(c.nodes, n)
	return n
}

// start runs a new buoy.Node on n's host with n's config and a fresh
// listener.
func (c *Cluster) start(n *Node) error {
	ln, err := n.Host.Listen("tcp", fmt.Sprintf(":%d", PeerPort))
	if err != nil {
		return fmt.Errorf("listen on %s: %w", n.Name, err)
	}
	cfg := n.cfg
	cfg.PeerListener = ln
	bn, err := buoy.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := bn.Start(ctx); err != nil {
		// Start closes what it started, but not a listener it never took
		// (it fails before that for a departed data dir).
		ln.Close()
		return err
	}
	n.Node = bn
	return nil
}

// Get returns the node called name, or nil.
func (c *Cluster) Get(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// MustGet returns the node called name or fails the test.
func (c *Cluster) MustGet(name string) *Node {
	c.t.Helper()
	n := c.Get(name)
	if n == nil {
		c.t.Fatalf("no node %q in the cluster", name)
	}
	return n
}

// Nodes returns every node, live or not, in creation order.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Live returns the running nodes in creation order.
func (c *Cluster) Live() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.Live() {
			out = append(out, n)
		}
	}
	return out
}

// Kill crashes a node: its host drops off the network (its connections
// are reset, as a power cut would leave them to time out), then the node
// is closed to end its goroutines. Its data dir stays.
func (c *Cluster) Kill(name string) {
	c.t.Helper()
	n := c.MustGet(name)
	if n.Node == nil {
		c.t.Fatalf("Kill(%q): node is not running", name)
	}
	n.Host.Down()
	if err := n.Node.Close(); err != nil {
		c.t.Logf("close %s: %v", name, err)
	}
	n.Node = nil
}

// Restart brings a killed node back: its host comes up and a new
// buoy.Node starts on the same data dir with the same configuration.
func (c *Cluster) Restart(name string) {
	c.t.Helper()
	if err := c.TryRestart(name); err != nil {
		c.t.Fatalf("restart %s: %v", name, err)
	}
}

// TryRestart is Restart that returns the error instead of failing the
// test.
func (c *Cluster) TryRestart(name string) error {
	c.t.Helper()
	n := c.MustGet(name)
	if n.Node != nil {
		return fmt.Errorf("restart %s: node is running", name)
	}
	n.Host.Up()
	return c.start(n)
}

// Partition cuts every path between the named nodes and all others; the
// named nodes still reach each other. Heal undoes it.
func (c *Cluster) Partition(names ...string) {
	c.t.Helper()
	var in []*Node
	for _, name := range names {
		in = append(in, c.MustGet(name))
	}
	for _, a := range in {
		for _, b := range c.nodes {
			if !slices.Contains(in, b) {
				c.net.Partition(a.Host, b.Host)
			}
		}
	}
}

// Heal removes every cut made by Partition.
func (c *Cluster) Heal() { c.net.HealAll() }

// Close closes every running node. New registers it with t.Cleanup;
// calling it earlier is allowed.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		if n.Node == nil {
			continue
		}
		if err := n.Node.Close(); err != nil {
			c.t.Logf("close %s: %v", n.Name, err)
		}
		n.Node = nil
	}
}

// RemoveLeftMarker deletes the marker a departed node writes into its
// data dir, so a test can restart it with its old certificate and watch
// the cluster refuse that certificate.
func (n *Node) RemoveLeftMarker() error {
	// The marker's name is buoy's leftMarker; if it changes, the restart
	// that follows fails with buoy.ErrLeft and the test says so.
	return os.Remove(filepath.Join(n.Dir, "LEFT"))
}

// LogCount returns how many of the nodes' log lines kept so far contain
// every one of parts (the buffer keeps the last few thousand lines).
func (c *Cluster) LogCount(parts ...string) int { return c.logs.count(parts...) }
