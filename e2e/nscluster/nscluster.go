// Package nscluster runs real "buoy agent" processes inside the network
// namespaces of a netlab lab and measures how fast a cluster follows the
// address changes a home network goes through: a host's `ip addr`
// replaced, several at once, a NAT router's WAN address replaced, a node
// restarted on a new address. It is shared by the e2e tests, which assert
// that the cluster converges, and by bench/convergence, which repeats the
// same scenarios and reports their timing.
//
// Every agent listens for peers on ":7300" (a wildcard, because a listener
// bound to one address would be lost with it) and serves its HTTP API on
// its own namespace's loopback, 127.0.0.1:7380. Everything is observed
// through the buoy command line run inside each node's namespace, the way
// an operator would: "buoy members --json" and "buoy status --json".
//
// Methods that build or change the cluster fail the test on error, like
// netlab's, and must be called from the test's goroutine. Methods that
// only observe return errors.
package nscluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"buoy/e2e/netlab"
)

// PeerPort is the port every agent accepts peer links on.
const PeerPort = 7300

// HTTPAddr is every agent's HTTP API address, inside its own namespace.
const HTTPAddr = "127.0.0.1:7380"

// Bounds of waits. They are generous because the machine may be loaded;
// nothing here asserts how fast a step is, only the caller may judge the
// durations it is given.
const (
	startTimeout = 60 * time.Second // for an agent's API to answer
	stopTimeout  = 15 * time.Second // for an agent to exit after SIGTERM
	cliTimeout   = 20 * time.Second // for one CLI call
	// DefaultConvergeTimeout bounds WaitConverged when the caller's
	// context has no deadline.
	DefaultConvergeTimeout = 90 * time.Second
)

// TB is what a cluster needs from its test: netlab's TB plus Failed, to
// print the agents' logs when something went wrong. *testing.T satisfies
// it.
type TB interface {
	netlab.TB
	Failed() bool
}

// Options configure a cluster.
type Options struct {
	// Agent is the buoy binary the agents run. Required.
	Agent string
	// CLI is the buoy binary for client commands; Agent if empty. (A
	// race-built binary is slow to start, which polling cannot afford.)
	CLI string
	// Dir holds the agents' data dirs and logs. Required.
	Dir string
	// LogLevel is the agents' --log-level; "info" if empty.
	LogLevel string
	// Poll is the pause between two CLI calls to one node while waiting;
	// 50 ms if zero.
	Poll time.Duration
}

// Cluster is a set of agents in one lab.
type Cluster struct {
	t    TB
	lab  *netlab.Lab
	opts Options

	nodes []*Node
	// wanChanges counts the router's fresh WAN addresses.
	wanChanges int
}

// Node is one agent: its namespace, where its address lives, its data dir
// and log, and the process running it.
type Node struct {
	c       *Cluster
	name    string
	host    *netlab.Host
	sw      *netlab.Switch // the switch its address is on
	router  *netlab.Router // the NAT router it sits behind, or nil
	net     string         // its network's first three octets
	slot    int            // picks its range of fresh addresses
	changes int            // fresh addresses handed out so far
	dataDir string
	logPath string
	args    []string // fixed by the first start, reused by restarts
	proc    *netlab.Proc
}

// newCluster returns an empty cluster in lab, which must belong to t, and
// registers a cleanup that stops every agent with SIGTERM (so a race-built
// agent reports its races), fails t if an agent reported a data race, and
// prints the end of every log if t failed. It runs before the lab removes
// the namespaces.
func newCluster(t TB, lab *netlab.Lab, opts Options) *Cluster {
	t.Helper()
	if opts.Agent == "" || opts.Dir == "" {
		t.Fatalf("nscluster: Options.Agent and Options.Dir are required")
	}
	if opts.CLI == "" {
		opts.CLI = opts.Agent
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	c := &Cluster{t: t, lab: lab, opts: opts}
	t.Cleanup(c.cleanup)
	return c
}

// Lab returns the lab the cluster lives in.
func (c *Cluster) Lab() *netlab.Lab { return c.lab }

// Nodes returns the cluster's nodes in the order they were added.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Node returns the node named name, failing the test if there is none.
func (c *Cluster) Node(name string) *Node {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("nscluster: no node named %q", name)
	return nil
}

func (c *Cluster) cleanup() {
	for _, n := range c.nodes {
		if n.Running() {
			_ = n.proc.Signal(syscall.SIGTERM)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	for _, n := range c.nodes {
		if n.proc == nil {
			continue
		}
		if err := n.proc.Wait(ctx); errors.Is(err, context.DeadlineExceeded) {
			c.t.Errorf("nscluster: %s did not exit within %v of SIGTERM; the lab kills it", n.name, stopTimeout)
		}
	}
	for _, n := range c.nodes {
		// A race-built agent reports races in its log (and exits 66).
		if data, err := os.ReadFile(n.logPath); err == nil && bytes.Contains(data, []byte("WARNING: DATA RACE")) {
			c.t.Errorf("nscluster: %s reported a data race; see its log (%s)", n.name, n.logPath)
		}
	}
	if c.t.Failed() {
		for _, n := range c.nodes {
			c.t.Logf("--- last lines of %s's log (%s) ---\n%s", n.name, n.logPath, Tail(n.logPath, 60))
		}
	}
}

// Tail returns the last lines of a file (an agent's log), or why it
// cannot be read.
func Tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// addNode registers a node living in host with its address on sw; it is
// not started.
func (c *Cluster) addNode(name string, host *netlab.Host, sw *netlab.Switch, router *netlab.Router, net string) *Node {
	n := &Node{
		c: c, name: name, host: host, sw: sw, router: router, net: net,
		slot:    len(c.nodes),
		dataDir: filepath.Join(c.opts.Dir, name, "data"),
		logPath: filepath.Join(c.opts.Dir, name+".log"),
	}
	c.nodes = append(c.nodes, n)
	return n
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Host returns the namespace the node runs in.
func (n *Node) Host() *netlab.Host { return n.host }

// IP returns the node's interface address.
func (n *Node) IP() netip.Addr {
	n.c.t.Helper()
	return n.host.IP(n.sw)
}

// PublicIP returns the address the node's peers outside its LAN see: its
// router's WAN address if it is behind one, else its interface address.
func (n *Node) PublicIP() netip.Addr {
	n.c.t.Helper()
	if n.router != nil {
		return n.router.WAN().Addr()
	}
	return n.IP()
}

// PeerAddr is where the node accepts peer links on its interface address.
func (n *Node) PeerAddr() string {
	n.c.t.Helper()
	return netip.AddrPortFrom(n.IP(), PeerPort).String()
}

// LogPath returns the file the agent logs to.
func (n *Node) LogPath() string { return n.logPath }

// Start launches the agent for the first time with extra flags after the
// common ones (--bootstrap, or --join and --token), and waits until its
// API answers.
func (n *Node) Start(extra ...string) {
	c := n.c
	c.t.Helper()
	if n.args != nil {
		c.t.Fatalf("nscluster: start %s: already started once; use Restart", n.name)
	}
	n.args = append([]string{"agent",
		"--name", n.name,
		"--data-dir", n.dataDir,
		"--peer-addr", fmt.Sprintf(":%d", PeerPort),
		"--http-addr", HTTPAddr,
		"--log-level", c.opts.LogLevel,
	}, extra...)
	n.launch()
}

// Restart launches the agent again with the command line of its first
// start, as a user restarting a service would, and waits for its API.
func (n *Node) Restart() {
	n.c.t.Helper()
	if n.args == nil {
		n.c.t.Fatalf("nscluster: restart %s: never started", n.name)
	}
	n.launch()
}

func (n *Node) launch() {
	c := n.c
	c.t.Helper()
	if n.Running() {
		c.t.Fatalf("nscluster: launch %s: already running (pid %d)", n.name, n.proc.PID())
	}
	if err := os.MkdirAll(filepath.Dir(n.dataDir), 0o700); err != nil {
		c.t.Fatalf("nscluster: %v", err)
	}
	p, err := StartAgent(c.lab, n.host, c.opts.Agent, n.args, n.logPath)
	if err != nil {
		c.t.Fatalf("nscluster: start %s: %v", n.name, err)
	}
	n.proc = p
	err = WaitAPI(p, n.logPath, c.opts.Poll, func(ctx context.Context) error {
		_, err := n.Status(ctx)
		return err
	})
	if err != nil {
		c.t.Fatalf("nscluster: %s: %v", n.name, err)
	}
}

// StartAgent starts bin with args (an "agent" command line) inside host's
// namespace, its output appended to logPath after a line that names the
// command, its environment ours without BUOY_* variables so that only the
// command line configures it. lab owns the process and kills it by PID
// when the test ends; Pdeathsig also kills it if the program dies without
// running its cleanups. rolelab starts its agents with it too.
func StartAgent(lab *netlab.Lab, host *netlab.Host, bin string, args []string, logPath string) (*netlab.Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close() // the child holds its own copy
	fmt.Fprintf(f, "===== %s: buoy %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := host.Command(context.Background(), bin, args...)
	cmd.Env = env()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = agentProcAttr()
	return lab.Start(cmd)
}

// WaitAPI calls ready, which asks the agent's API something, every poll
// until it succeeds. It fails if p exits first, quoting the end of
// logPath, or if ready has not succeeded within 60 s.
func WaitAPI(p *netlab.Proc, logPath string, poll time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := ready(ctx); err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("exited (%v) before its API answered:\n%s", p.Err(), Tail(logPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("API does not answer after %v", startTimeout)
		case <-time.After(poll):
		}
	}
}

// env is the environment for every buoy process: ours without BUOY_*
// variables, so that only the command line configures it.
func env() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "BUOY_") })
}

// Running reports whether the agent's latest process has not exited.
func (n *Node) Running() bool { return ProcRunning(n.proc) }

// ProcRunning reports whether p, a process of StartAgent or nil (never
// started), is running.
func ProcRunning(p *netlab.Proc) bool {
	if p == nil {
		return false
	}
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// Stop stops the agent with SIGTERM and waits for it to exit, killing it
// if it takes longer than 15 s (which fails the test).
func (n *Node) Stop() {
	c := n.c
	c.t.Helper()
	if !n.Running() {
		c.t.Fatalf("nscluster: stop %s: not running", n.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	_ = n.proc.Stop(ctx)
	if ctx.Err() != nil {
		c.t.Fatalf("nscluster: %s did not exit within %v of SIGTERM", n.name, stopTimeout)
	}
}

// CLI runs a client command against the node's API, inside its
// namespace, with RunCLI.
func (n *Node) CLI(ctx context.Context, args ...string) ([]byte, error) {
	return RunCLI(ctx, n.host, n.c.opts.CLI, args...)
}

// cliJSON runs a client command with --json and decodes its output.
func (n *Node) cliJSON(ctx context.Context, v any, args ...string) error {
	return RunCLIJSON(ctx, n.host, n.c.opts.CLI, v, args...)
}

// RunCLI runs the client command args of the buoy binary bin inside
// host's namespace, against the agent's API there (HTTPAddr): args are
// the command words ("members", "token create", "roles move"), then
// flags; --http-addr is put right after the command words. It returns
// standard output; the error carries standard error. The process has the
// agents' environment, so BUOY_* variables of ours do not reach it.
func RunCLI(ctx context.Context, host *netlab.Host, bin string, args ...string) ([]byte, error) {
	words := 1
	if len(args) > 1 && (args[0] == "token" || args[0] == "roles") && !strings.HasPrefix(args[1], "-") {
		words = 2
	}
	full := slices.Concat(args[:min(words, len(args))], []string{"--http-addr", HTTPAddr}, args[min(words, len(args)):])
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	cmd := host.Command(ctx, bin, full...)
	cmd.Env = env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("buoy %s on %s: %w: %s", strings.Join(full, " "), host.Name(), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// RunCLIJSON is RunCLI with --json added, decoding the output into v.
func RunCLIJSON(ctx context.Context, host *netlab.Host, bin string, v any, args ...string) error {
	out, err := RunCLI(ctx, host, bin, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("buoy %s --json on %s: decoding %q: %w", strings.Join(args, " "), host.Name(), out, err)
	}
	return nil
}

// The JSON the CLI prints, declared here rather than imported so that the
// tests check the field names a user's scripts depend on.
type (
	// Member is one entry of "buoy members --json".
	Member struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Voter   bool   `json:"voter"`
		Leader  bool   `json:"leader"`
		State   string `json:"state"`
	}
	// Status is "buoy status --json", in part.
	Status struct {
		Name         string        `json:"name"`
		Leader       string        `json:"leader"`
		RaftState    string        `json:"raft_state"`
		CommitIndex  uint64        `json:"commit_index"`
		SelfAddress  string        `json:"self_address"`
		NAT          string        `json:"nat"`
		Observations []Observation `json:"observations"`
	}
	// Observation is one peer's view of a node, in Status.
	Observation struct {
		Observer string `json:"observer"`
		Seen     string `json:"seen"`
	}
	// Token is "buoy token create --json".
	Token struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
	tokenInfo struct {
		ID string `json:"id"`
	}
)

// Members runs "buoy members --json" on the node.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	var ms []Member
	err := n.cliJSON(ctx, &ms, "members")
	return ms, err
}

// Status runs "buoy status --json" on the node.
func (n *Node) Status(ctx context.Context) (Status, error) {
	var st Status
	err := n.cliJSON(ctx, &st, "status")
	return st, err
}

// CreateToken runs "buoy token create --json" on the node: a write that
// commits through Raft, forwarded to the leader from a follower.
func (n *Node) CreateToken(ctx context.Context, description string) (Token, error) {
	var tok Token
	if err := n.cliJSON(ctx, &tok, "token", "create", "--description", description); err != nil {
		return tok, err
	}
	if tok.Token == "" || tok.ID == "" {
		return tok, fmt.Errorf("token create on %s = %+v, want a token and an ID", n.name, tok)
	}
	return tok, nil
}

// HasToken reports whether the node's "buoy token list" shows id.
func (n *Node) HasToken(ctx context.Context, id string) error {
	var ts []tokenInfo
	if err := n.cliJSON(ctx, &ts, "token", "list"); err != nil {
		return err
	}
	if !slices.ContainsFunc(ts, func(tk tokenInfo) bool { return tk.ID == id }) {
		return fmt.Errorf("token list on %s has no token %s", n.name, id)
	}
	return nil
}

// eachNode runs f for every node concurrently and joins their errors.
func eachNode(nodes []*Node, f func(n *Node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = f(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Use makes the cluster fail and log through t, a subtest, until the
// returned function restores the previous TB: FailNow must be called on
// the test whose goroutine is running. The lab keeps reporting to the
// test that made it.
func (c *Cluster) Use(t TB) (restore func()) {
	prev := c.t
	c.t = t
	return func() { c.t = prev }
}
