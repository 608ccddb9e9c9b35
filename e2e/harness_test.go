package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"buoy/e2e/nscluster"
)

// The buoy binaries built by TestMain, written once before any test runs
// and only read afterwards: agentBin runs the agents, buoyBin the client
// commands. Under -race the agents are race-built too; the client stays
// plain, since a race-built binary takes about a second just to start,
// which polling cannot afford.
var buoyBin, agentBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the binary into a temporary directory, runs the tests and
// removes the directory (a deferred call would not run under os.Exit).
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "buoy-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temporary dir for the binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if buoyBin, err = nscluster.BuildBinary(filepath.Join(dir, "buoy"), false); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	agentBin = buoyBin
	if raceEnabled {
		if agentBin, err = nscluster.BuildBinary(filepath.Join(dir, "buoy-race"), true); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	return m.Run()
}

// Bounds of every wait. They are generous because the machine may be
// loaded; no test asserts how fast anything happens.
const (
	waitTimeout = 30 * time.Second // for a state to be reached
	exitTimeout = 60 * time.Second // for an agent to exit (a join attempt alone may take 30 s)
	cliTimeout  = 20 * time.Second // for one CLI call
	pollEvery   = 100 * time.Millisecond
)

// eventually calls check until it returns nil or waitTimeout passes, then
// fails the test with the last error.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %v", waitTimeout, what, err)
		}
		time.Sleep(pollEvery)
	}
}

// freeAddr returns a loopback address with a port nobody listened on a
// moment ago. Another process may take it before the agent does; starts
// retry once with new ports when that happens.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// env is the environment for every buoy process: ours without BUOY_*
// variables, so that only the command line configures the process.
func env() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "BUOY_") })
}

// cluster is the set of agent processes one test started, with their data
// dirs and logs under one temporary directory. Its cleanup stops every
// process still running and, if the test failed, prints the end of each
// log.
type cluster struct {
	t     *testing.T
	dir   string
	nodes []*node
}

// use makes the cluster's helpers report to t, a subtest, until the
// returned function restores the parent: FailNow must be called on the
// test whose goroutine is running. Subtests here never run in parallel.
func (c *cluster) use(t *testing.T) (restore func()) {
	parent := c.t
	c.t = t
	return func() { c.t = parent }
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, dir: t.TempDir()}
	// Registered after TempDir, so it runs before the dir is removed.
	t.Cleanup(c.cleanup)
	return c
}

func (c *cluster) cleanup() {
	// SIGTERM all at once, then wait with one shared deadline, so a node
	// that hangs on shutdown costs the deadline once, not once per node.
	for _, n := range c.nodes {
		if n.running() {
			_ = n.proc.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range c.nodes {
		if n.proc == nil {
			continue
		}
		select {
		case <-n.proc.done:
		case <-time.After(time.Until(deadline)):
		}
		if n.running() {
			c.t.Errorf("%s did not exit within 15 s of SIGTERM; killing it", n.name)
			_ = n.proc.cmd.Process.Kill()
			<-n.proc.done
		}
	}
	for _, n := range c.nodes {
		// A race-built agent reports races in its log (and exits 66).
		if data, err := os.ReadFile(n.logPath); err == nil && bytes.Contains(data, []byte("WARNING: DATA RACE")) {
			c.t.Errorf("%s reported a data race; see its log below", n.key)
		}
	}
	if c.t.Failed() {
		for _, n := range c.nodes {
			c.t.Logf("--- last lines of %s's log (%s) ---\n%s", n.key, n.logPath, tail(n.logPath, 40))
		}
	}
}

// tail returns the last lines of a file.
func tail(path string, lines int) string {
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

// node is one agent: its name, data dir, addresses and command line, and
// the process currently running it, if any.
type node struct {
	c        *cluster
	name     string
	key      string // unique in the cluster: names the node's folder and log
	dataDir  string
	peerAddr string
	httpAddr string
	extra    []string // what follows the common flags: --bootstrap, --join/--token, ...
	args     []string // the whole command line, fixed by the first start
	logPath  string

	proc *proc // the latest process; nil before the first start
}

// proc is one run of an agent. A goroutine started by launch owns cmd.Wait;
// it exits when the process does and then closes done. Every process is
// stopped by the cluster's cleanup at the latest, so the goroutine always
// ends.
type proc struct {
	cmd     *exec.Cmd
	logFrom int64         // where this run's output starts in the log file
	done    chan struct{} // closed once the process has exited and been reaped
}

// node registers a new agent with fresh ports and an empty data dir; it is
// not started. extra follows the common flags on the command line.
func (c *cluster) node(name string, extra ...string) *node {
	c.t.Helper()
	// Each node gets its own folder, also a second node with a name
	// already used in this test (a refused duplicate, say).
	key := name
	for i := 2; slices.ContainsFunc(c.nodes, func(n *node) bool { return n.key == key }); i++ {
		key = fmt.Sprintf("%s-%d", name, i)
	}
	n := &node{
		c:        c,
		name:     name,
		key:      key,
		dataDir:  filepath.Join(c.dir, key, "data"),
		peerAddr: freeAddr(c.t),
		httpAddr: freeAddr(c.t),
		extra:    extra,
		logPath:  filepath.Join(c.dir, key+".log"),
	}
	c.nodes = append(c.nodes, n)
	return n
}

// commandLine is the agent's command line for its current ports.
func (n *node) commandLine() []string {
	return append([]string{"agent",
		"--name", n.name,
		"--data-dir", n.dataDir,
		"--peer-addr", n.peerAddr,
		"--http-addr", n.httpAddr,
		"--dns-addr", "127.0.0.1:0",
		"--kv-text-addr", "-", // several agents share this machine's 127.0.0.1:7381
	}, n.extra...)
}

// launch starts a process with the node's command line. The first launch
// fixes the command line; later ones reuse it exactly, as a user restarting
// a service would.
func (n *node) launch() {
	t := n.c.t
	t.Helper()
	if n.running() {
		t.Fatalf("launch %s: already running (pid %d)", n.name, n.proc.cmd.Process.Pid)
	}
	if n.args == nil {
		n.args = n.commandLine()
	}
	if err := os.MkdirAll(filepath.Dir(n.logPath), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("open log of %s: %v", n.name, err)
	}
	defer f.Close() // the child holds its own copy
	fmt.Fprintf(f, "===== %s: buoy %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(n.args, " "))
	from, err := f.Seek(0, 2)
	if err != nil {
		t.Fatalf("log of %s: %v", n.name, err)
	}
	cmd := exec.Command(agentBin, n.args...)
	cmd.Env = env()
	cmd.SysProcAttr = agentProcAttr()
	cmd.Stdout = f
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	p := &proc{cmd: cmd, logFrom: from, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.done)
	}()
	n.proc = p
}

// running reports whether the latest process has not exited yet.
func (n *node) running() bool {
	if n.proc == nil {
		return false
	}
	select {
	case <-n.proc.done:
		return false
	default:
		return true
	}
}

// output returns what the latest process wrote (stderr and stdout).
func (n *node) output() string {
	data, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	if n.proc == nil || int64(len(data)) < n.proc.logFrom {
		return string(data)
	}
	return string(data[n.proc.logFrom:])
}

// portTaken reports whether the latest process exited because one of its
// ports was taken between freeAddr and the agent's listen.
func (n *node) portTaken() bool {
	return !n.running() && strings.Contains(n.output(), "address already in use")
}

// repickPorts gives a node that never ran successfully new ports.
func (n *node) repickPorts() {
	n.c.t.Logf("%s: a port was taken; retrying with new ports", n.name)
	n.peerAddr, n.httpAddr = freeAddr(n.c.t), freeAddr(n.c.t)
	n.args = nil
}

// start registers, launches and waits for a new agent whose HTTP API
// answers. A start that loses the port race is retried once.
func (c *cluster) start(name string, extra ...string) *node {
	c.t.Helper()
	n := c.node(name, extra...)
	n.launch()
	if err := n.waitAPI(); err != nil && n.portTaken() {
		n.repickPorts()
		n.launch()
	}
	if err := n.waitAPI(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	return n
}

// restart launches the node again with the same command line and waits for
// its API.
func (n *node) restart() {
	n.c.t.Helper()
	n.launch()
	if err := n.waitAPI(); err != nil {
		n.c.t.Fatalf("restart %s: %v", n.name, err)
	}
}

// waitAPI waits until the agent's HTTP API answers "buoy status", or
// returns an error if the process exits first.
func (n *node) waitAPI() error {
	deadline := time.Now().Add(waitTimeout)
	for {
		if !n.running() {
			return fmt.Errorf("%s exited with code %d before its API answered:\n%s", n.name, n.exitCode(), n.output())
		}
		if _, err := n.status(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: API at %s does not answer after %v", n.name, n.httpAddr, waitTimeout)
		}
		time.Sleep(pollEvery)
	}
}

// exitCode is the latest process's exit code (-1 if killed by a signal).
func (n *node) exitCode() int {
	return n.proc.cmd.ProcessState.ExitCode()
}

// waitExit waits for the latest process to exit and returns its code and
// output. The test fails if it is still running after exitTimeout.
func (n *node) waitExit() (int, string) {
	n.c.t.Helper()
	select {
	case <-n.proc.done:
		return n.exitCode(), n.output()
	case <-time.After(exitTimeout):
		n.c.t.Fatalf("%s still running after %v, want it to exit; output:\n%s", n.name, exitTimeout, n.output())
		return 0, ""
	}
}

// kill stops the process with SIGKILL (kill -9) and waits until it is
// reaped, so its ports are free again.
func (n *node) kill() {
	n.c.t.Helper()
	if err := n.proc.cmd.Process.Kill(); err != nil {
		n.c.t.Fatalf("kill -9 %s: %v", n.name, err)
	}
	<-n.proc.done
}

// terminate sends SIGTERM and returns the exit code; the test fails if the
// process does not exit.
func (n *node) terminate() int {
	n.c.t.Helper()
	if err := n.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.c.t.Fatalf("SIGTERM %s: %v", n.name, err)
	}
	code, _ := n.waitExit()
	return code
}
