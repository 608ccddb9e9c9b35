// Package rolelab runs a Buoy cluster with one failover role, "web", in
// Linux network namespaces (package netlab): one host per node on a
// shared switch (198.51.100.0/24), each agent serving DNS on its own
// address, and a hook script that appends "time epoch event holder" to a
// file per node for every promote, demote and change. The e2e tests use
// it to check failover with real processes, kill -9 and cable cuts;
// bench/failover uses it to time failover against keepalived.
//
// Everything is observed from outside the agents: the hook files (all
// processes share one clock, so their times compare), "buoy roles
// --json" run inside each node's namespace, and DNS queries sent from a
// socket opened in each node's namespace to that node's DNS server.
package rolelab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"buoy/e2e/netlab"
	"buoy/e2e/nscluster"
)

// Role is the failover role every cluster defines; Name is its DNS name.
const (
	Role = "web"
	Zone = "buoy.internal."
	Name = Role + "." + Zone
)

// Bounds of waits; nothing here asserts how fast a step is.
const (
	startTimeout = 60 * time.Second
)

// Options configure a cluster.
type Options struct {
	// Agent is the buoy binary the agents run; CLI the one for client
	// commands (Agent if empty).
	Agent, CLI string
	// Dir holds data dirs, logs, the hook script and event files.
	Dir string
	// Nodes is the cluster size (default 3).
	Nodes int
	// Profile is the agents' --failover-profile ("" for default).
	Profile string
	// LogLevel is the agents' --log-level (default info).
	LogLevel string
	// RoleYAML is the body of the role's definition in the config file
	// (under roles: web:), without hooks, which rolelab adds. Empty: the
	// role has every node as candidate and no checks.
	RoleYAML string
}

// Cluster is the running cluster.
type Cluster struct {
	t      netlab.TB
	lab    *netlab.Lab
	sw     *netlab.Switch
	opts   Options
	events string // directory of the event files
	Nodes  []*Node
}

// Node is one agent.
type Node struct {
	c    *Cluster
	Name string
	Host *netlab.Host
	IP   netip.Addr
	args []string
	log  string
	proc *netlab.Proc
	// dns is a UDP socket opened inside the node's namespace, for queries
	// to its DNS server.
	dns net.PacketConn
}

// New builds the lab and starts the cluster: n1 bootstraps, the others
// join; every agent reads the same config file with the role. It returns
// once every node sees every node alive.
func New(t netlab.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.CLI == "" {
		opts.CLI = opts.Agent
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	lab := netlab.New(t)
	c := &Cluster{t: t, lab: lab, sw: lab.Switch("net"), opts: opts, events: filepath.Join(opts.Dir, "events")}
	if err := os.MkdirAll(c.events, 0o755); err != nil {
		t.Fatalf("rolelab: %v", err)
	}
	hook := filepath.Join(opts.Dir, "hook")
	// date +%s.%N is the first thing the hook does: its time is when the
	// hook started.
	script := fmt.Sprintf("#!/bin/sh\necho \"$(date +%%s.%%N) $BUOY_EPOCH $BUOY_EVENT $BUOY_HOLDER\" >> %s/\"$BUOY_NODE\"\n", c.events)
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatalf("rolelab: %v", err)
	}
	cfg := fmt.Sprintf("roles:\n  %s:\n%s    hooks: {promote: %s, demote: %s, change: %s, timeout: 10s}\n",
		Role, indent(opts.RoleYAML, "    "), hook, hook, hook)
	cfgPath := filepath.Join(opts.Dir, "buoy.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("rolelab: %v", err)
	}
	for i := range opts.Nodes {
		h := lab.Host(fmt.Sprintf("n%d", i+1))
		ip := fmt.Sprintf("198.51.100.%d", 11+i)
		h.Attach(c.sw, ip+"/24")
		n := &Node{c: c, Name: h.Name(), Host: h, IP: netip.MustParseAddr(ip), log: filepath.Join(opts.Dir, h.Name()+".log")}
		n.args = []string{"agent", "--name", n.Name, "--data-dir", filepath.Join(opts.Dir, n.Name),
			"--peer-addr", ":7300", "--http-addr", "127.0.0.1:7380", "--dns-addr", ip + ":53",
			"--config", cfgPath, "--log-level", opts.LogLevel}
		if opts.Profile != "" {
			n.args = append(n.args, "--failover-profile", opts.Profile)
		}
		conn, err := listenIn(h.Netns())
		if err != nil {
			t.Fatalf("rolelab: DNS socket in %s: %v", n.Name, err)
		}
		t.Cleanup(func() { conn.Close() })
		n.dns = conn
		c.Nodes = append(c.Nodes, n)
	}
	first := c.Nodes[0]
	first.args = append(first.args, "--bootstrap")
	first.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var tok struct{ Token string }
	for {
		err := first.cliJSON(ctx, &tok, "token", "create")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("rolelab: token from n1: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range c.Nodes[1:] {
		n.args = append(n.args, "--join", first.IP.String()+":7300", "--token", tok.Token)
		n.Restart()
	}
	if err := c.WaitAlive(ctx, c.Nodes...); err != nil {
		t.Fatalf("rolelab: cluster does not form: %v", err)
	}
	return c
}

func indent(s, by string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) == "" {
			continue
		}
		b.WriteString(by + strings.TrimRight(l, "\n") + "\n")
	}
	return b.String()
}

// Restart starts the node's agent (again) with its first command line and
// waits until its API answers.
func (n *Node) Restart() {
	c := n.c
	c.t.Helper()
	if n.Running() {
		c.t.Fatalf("rolelab: %s is running", n.Name)
	}
	p, err := nscluster.StartAgent(c.lab, n.Host, c.opts.Agent, n.args, n.log)
	if err != nil {
		c.t.Fatalf("rolelab: start %s: %v", n.Name, err)
	}
	n.proc = p
	err = nscluster.WaitAPI(p, n.log, 50*time.Millisecond, func(ctx context.Context) error {
		_, err := n.CLI(ctx, "status")
		return err
	})
	if err != nil {
		c.t.Fatalf("rolelab: %s: %v", n.Name, err)
	}
}

// Running reports whether the node's agent runs.
func (n *Node) Running() bool { return nscluster.ProcRunning(n.proc) }

// Kill sends SIGKILL to the agent (kill -9) and waits until it is gone.
func (n *Node) Kill() {
	n.c.t.Helper()
	if err := n.proc.Signal(syscall.SIGKILL); err != nil {
		n.c.t.Fatalf("rolelab: kill -9 %s: %v", n.Name, err)
	}
	<-n.proc.Done()
}

// Stop sends SIGTERM and waits until the agent exits.
func (n *Node) Stop() {
	n.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = n.proc.Stop(ctx)
}

// Cut pulls the node's cable: it reaches nobody and nobody reaches it.
func (n *Node) Cut() { n.c.lab.Cut(n.Host, n.c.sw) }

// Restore plugs the cable back in.
func (n *Node) Restore() { n.c.lab.Restore(n.Host, n.c.sw) }

// Log returns the path of the agent's log.
func (n *Node) Log() string { return n.log }

// CLI runs "buoy ARGS --http-addr ..." inside the node's namespace and
// returns its standard output (nscluster.RunCLI).
func (n *Node) CLI(ctx context.Context, args ...string) ([]byte, error) {
	return nscluster.RunCLI(ctx, n.Host, n.c.opts.CLI, args...)
}

func (n *Node) cliJSON(ctx context.Context, v any, args ...string) error {
	return nscluster.RunCLIJSON(ctx, n.Host, n.c.opts.CLI, v, args...)
}

// RoleState is the role as "buoy roles --json" on one node shows it.
type RoleState struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
	Epoch  uint64 `json:"epoch"`
	Held   bool   `json:"held"`
	Local  string `json:"local"`
}

// Role returns the role as the node sees it.
func (n *Node) Role(ctx context.Context) (RoleState, error) {
	var rs []RoleState
	if err := n.cliJSON(ctx, &rs, "roles"); err != nil {
		return RoleState{}, err
	}
	for _, r := range rs {
		if r.Name == Role {
			return r, nil
		}
	}
	return RoleState{}, fmt.Errorf("%s shows no role %s", n.Name, Role)
}

// WaitAlive waits until every one of nodes shows each of them alive and a
// Raft voter in "buoy members --json": before that, losing one node may
// cost the quorum.
func (c *Cluster) WaitAlive(ctx context.Context, nodes ...*Node) error {
	var last error
	for {
		last = nil
		for _, n := range nodes {
			var ms []member
			if err := n.cliJSON(ctx, &ms, "members"); err != nil {
				last = err
				break
			}
			for _, want := range nodes {
				if !slices.ContainsFunc(ms, func(m member) bool { return m.Name == want.Name && m.State == "alive" && m.Voter }) {
					last = fmt.Errorf("%s does not show %s alive and voting", n.Name, want.Name)
				}
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// member is one entry of "buoy members --json".
type member struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Voter bool   `json:"voter"`
}

// Holder waits until the given nodes agree on a holder of the role that
// is one of them, holds it (its own view says held) and whose promote
// hook has run; it returns the holder and the epoch.
func (c *Cluster) Holder(ctx context.Context, nodes ...*Node) (*Node, uint64, error) {
	var last error
	for {
		h, epoch, err := c.agreed(ctx, nodes)
		if err == nil {
			evs, _ := h.Events()
			if slices.ContainsFunc(evs, func(e Event) bool { return e.Kind == "promote" && e.Epoch == epoch }) {
				return h, epoch, nil
			}
			err = fmt.Errorf("%s holds %s at epoch %d but its promote hook has not run", h.Name, Role, epoch)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) agreed(ctx context.Context, nodes []*Node) (*Node, uint64, error) {
	var holder string
	var epoch uint64
	for i, n := range nodes {
		r, err := n.Role(ctx)
		if err != nil {
			return nil, 0, err
		}
		if i > 0 && (r.Holder != holder || r.Epoch != epoch) {
			return nil, 0, fmt.Errorf("%s sees holder %q epoch %d, %s sees %q epoch %d", nodes[0].Name, holder, epoch, n.Name, r.Holder, r.Epoch)
		}
		holder, epoch = r.Holder, r.Epoch
	}
	for _, n := range nodes {
		if n.Name == holder {
			r, err := n.Role(ctx)
			if err != nil {
				return nil, 0, err
			}
			if !r.Held {
				return nil, 0, fmt.Errorf("%s is assigned %s but does not hold it yet", n.Name, Role)
			}
			return n, epoch, nil
		}
	}
	return nil, 0, fmt.Errorf("holder %q is not among the nodes asked", holder)
}

// Event is one line a hook wrote.
type Event struct {
	At     time.Time
	Epoch  uint64
	Kind   string // promote, demote or change
	Holder string
}

// Events reads the node's hook events, oldest first.
func (n *Node) Events() ([]Event, error) {
	f, err := os.Open(filepath.Join(n.c.events, n.Name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue // a line being written
		}
		secs, err1 := strconv.ParseFloat(fs[0], 64)
		epoch, err2 := strconv.ParseUint(fs[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ev := Event{At: time.Unix(0, int64(secs*1e9)), Epoch: epoch, Kind: fs[2]}
		if len(fs) > 3 {
			ev.Holder = fs[3]
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

// FirstEvent returns the node's first event of kind at or after since.
func (n *Node) FirstEvent(kind string, since time.Time) (Event, bool) {
	evs, _ := n.Events()
	for _, e := range evs {
		if e.Kind == kind && !e.At.Before(since) {
			return e, true
		}
	}
	return Event{}, false
}

// Lookup asks the node's DNS server for the role's A record and returns
// the rcode and the addresses answered.
func (n *Node) Lookup(timeout time.Duration) (int, []netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(Name, dns.TypeA)
	m.RecursionDesired = false
	b, err := m.Pack()
	if err != nil {
		return 0, nil, err
	}
	_ = n.dns.SetDeadline(time.Now().Add(timeout))
	server := &net.UDPAddr{IP: n.IP.AsSlice(), Port: 53}
	if _, err := n.dns.WriteTo(b, server); err != nil {
		return 0, nil, err
	}
	buf := make([]byte, 1500)
	for {
		k, from, err := n.dns.ReadFrom(buf)
		if err != nil {
			return 0, nil, err
		}
		r := new(dns.Msg)
		if from.String() != server.String() || r.Unpack(buf[:k]) != nil || r.Id != m.Id {
			continue // a late answer to an earlier query
		}
		var ips []netip.Addr
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				ip, _ := netip.AddrFromSlice(a.A)
				ips = append(ips, ip.Unmap())
			}
		}
		return r.Rcode, ips, nil
	}
}

// Answers reports whether the node's DNS answers the role with exactly ip.
func (n *Node) Answers(ip netip.Addr) bool {
	rc, ips, err := n.Lookup(time.Second)
	return err == nil && rc == dns.RcodeSuccess && len(ips) == 1 && ips[0] == ip
}

// listenIn opens a UDP socket inside network namespace ns.
func listenIn(ns string) (net.PacketConn, error) {
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		c   net.PacketConn
		err error
	}
	ch := make(chan result, 1)
	// Exits once the socket is open; if it cannot go back to its own
	// namespace it exits still locked, and the runtime ends the thread.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		c, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err2 := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err2 != nil {
			if c != nil {
				c.Close()
			}
			ch <- result{err: errors.Join(err, err2)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c: c, err: err}
	}()
	r := <-ch
	return r.c, r.err
}

// DumpLogs logs the end of every agent's log (for a failed test).
func (c *Cluster) DumpLogs(lines int) {
	for _, n := range c.Nodes {
		c.t.Logf("--- %s (%s) ---\n%s", n.Name, n.log, nscluster.Tail(n.log, lines))
	}
}
