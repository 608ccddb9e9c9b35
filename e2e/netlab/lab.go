package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB a lab uses. *testing.T and *testing.B
// satisfy it; a program that is not a test (a benchmark driver) can
// implement it itself, running the registered cleanups when it is done.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// ErrBadPrefix is returned by Sweep for a prefix that is not the shape of
// a lab's prefix, so that a mistake cannot delete other namespaces.
var ErrBadPrefix = errors.New("not a netlab namespace prefix")

// ErrClosed is returned when a lab is used after its test ended.
var ErrClosed = errors.New("netlab: lab closed")

// SkipMessage is the reason New gives when it skips a test outside CI.
const SkipMessage = "needs root for network namespaces; runs in CI"

// Bounds on the commands a lab runs. They are generous because the machine
// may be loaded; nothing asserts how fast a command is.
const (
	cmdTimeout     = 20 * time.Second // one ip or nft call
	killWait       = 10 * time.Second // for killed processes to be reaped
	procWaitDelay  = 5 * time.Second  // exec.Cmd.WaitDelay for started programs
	cleanupTimeout = 60 * time.Second // for the whole cleanup
)

// Lab is one test's set of namespaces: switches, hosts and routers, and
// the processes started in them. Create it with New; it removes everything
// when the test ends.
type Lab struct {
	t      TB
	prefix string
	ipPath string
	// ctx is cancelled when the cleanup starts; every command the lab runs
	// for itself derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the following fields.
	mu       sync.Mutex
	closed   bool
	names    map[string]bool // node names in use, across kinds
	switches []*Switch
	hosts    []*Host
	cmds     []*exec.Cmd // made by Host.Command, killed at cleanup
	procs    []*Proc     // started by Lab.Start, killed and reaped at cleanup
}

// New makes an empty lab for t and registers its cleanup. Without root,
// ip or nft it skips t, or fails it when the environment variable CI is
// "true".
func New(t TB) *Lab {
	t.Helper()
	ipPath, err := checkHost()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("netlab: %v (CI=true, so this is a failure, not a skip)", err)
		}
		t.Skipf("netlab: %s: %v", SkipMessage, err)
	}
	prefix, err := newPrefix()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Lab{t: t, prefix: prefix, ipPath: ipPath, ctx: ctx, cancel: cancel, names: map[string]bool{}}
	t.Cleanup(l.cleanup)
	if err := l.probe(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("netlab: %v (CI=true, so this is a failure, not a skip)", err)
		}
		t.Skipf("netlab: %s: %v", SkipMessage, err)
	}
	return l
}

// checkHost finds ip and nft and checks that we are root.
func checkHost() (ipPath string, err error) {
	if os.Geteuid() != 0 {
		return "", errors.New("not running as root")
	}
	ipPath, err = exec.LookPath("ip")
	if err != nil {
		return "", fmt.Errorf("find ip (Debian package iproute2): %w", err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return "", fmt.Errorf("find nft (Debian package nftables): %w", err)
	}
	return ipPath, nil
}

// probe creates and deletes one namespace and lists its (empty) nftables
// ruleset, so that a root user without the needed capabilities or kernel
// support is found before the test builds anything.
func (l *Lab) probe() error {
	ns := l.prefix + "probe"
	if _, err := l.ip("netns", "add", ns); err != nil {
		return err
	}
	_, nftErr := l.run("", "ip", "netns", "exec", ns, "nft", "list", "ruleset")
	_, delErr := l.ip("netns", "del", ns)
	return errors.Join(nftErr, delErr)
}

// prefixPattern matches the prefixes newPrefix makes; Sweep accepts no
// other.
var prefixPattern = regexp.MustCompile(`^nl[0-9]+-[0-9a-f]{6}-$`)

// newPrefix returns "nl<pid>-<6 hex digits>-": the PID tells which process
// made a leftover namespace, the random part keeps labs of one process (and
// of a process that reuses a dead one's PID) apart.
func newPrefix() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random namespace prefix: %w", err)
	}
	return fmt.Sprintf("nl%d-%s-", os.Getpid(), hex.EncodeToString(b[:])), nil
}

// Prefix returns the prefix of every namespace name this lab makes.
func (l *Lab) Prefix() string { return l.prefix }

// ip runs the ip command with the lab's per-command timeout.
func (l *Lab) ip(args ...string) ([]byte, error) {
	return l.run("", l.ipPath, args...)
}

// run runs one command for the lab itself with stdin, bounded by
// cmdTimeout and by the lab's context. The error names the command line and
// carries its stderr.
func (l *Lab) run(stdin, name string, args ...string) ([]byte, error) {
	return runCmd(l.ctx, stdin, name, args...)
}

// runCmd is run without a lab, for Sweep and the cleanup (whose lab context
// is already cancelled).
func runCmd(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// fatal fails the test with the lab's prefix in the message.
func (l *Lab) fatal(format string, args ...any) {
	l.t.Helper()
	l.t.Fatalf("netlab %s: "+format, append([]any{l.prefix}, args...)...)
}

// claim reserves a node name, failing the test when it is malformed or
// taken, or when the lab is closed.
func (l *Lab) claim(name string) {
	l.t.Helper()
	if err := checkName(name); err != nil {
		l.fatal("%v", err)
	}
	l.mu.Lock()
	closed, taken := l.closed, l.names[name]
	if !closed && !taken {
		l.names[name] = true
	}
	l.mu.Unlock()
	switch {
	case closed:
		l.fatal("%v", ErrClosed)
	case taken:
		l.fatal("%v %q: already used in this lab", ErrBadName, name)
	}
}

// addNetns creates a namespace with its loopback up.
func (l *Lab) addNetns(ns string) error {
	if _, err := l.ip("netns", "add", ns); err != nil {
		return err
	}
	_, err := l.ip("-n", ns, "link", "set", "lo", "up")
	return err
}

// cleanup kills the lab's processes, then deletes its namespaces and checks
// that none is left.
func (l *Lab) cleanup() {
	l.cancel()
	l.mu.Lock()
	l.closed = true
	cmds, procs := l.cmds, l.procs
	l.mu.Unlock()

	// By PID only: os.Process signals the process it started (through a
	// pidfd where the kernel has them), never a name or a group.
	for _, c := range cmds {
		if c.Process != nil {
			_ = c.Process.Kill() // an exited process answers ErrProcessDone
		}
	}
	for _, p := range procs {
		_ = p.cmd.Process.Kill()
	}
	reaped := time.After(killWait)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-reaped:
			l.t.Errorf("netlab %s: process %d (%s) not reaped %v after SIGKILL", l.prefix, p.PID(), p.cmd.Path, killWait)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := Sweep(ctx, l.prefix); err != nil {
		l.t.Errorf("netlab %s: remove namespaces: %v", l.prefix, err)
	}
	left, err := Namespaces(ctx, l.prefix)
	if err != nil {
		l.t.Errorf("netlab %s: list namespaces after cleanup: %v", l.prefix, err)
	}
	if len(left) > 0 {
		l.t.Errorf("netlab %s: namespaces left after cleanup: %v", l.prefix, left)
	}
}

// Namespaces returns the names of the network namespaces that start with
// prefix ("" lists all).
func Namespaces(ctx context.Context, prefix string) ([]string, error) {
	out, err := runCmd(ctx, "", "ip", "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, n := range parseNetnsList(string(out)) {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// Sweep deletes every network namespace whose name starts with prefix, a
// prefix returned by Lab.Prefix. It kills nothing: a lab kills its own
// processes before it sweeps. Deleting a namespace also deletes the veth
// ends in it, and so their peers in other namespaces. Sweep refuses any
// other shape of prefix with ErrBadPrefix.
func Sweep(ctx context.Context, prefix string) error {
	if !prefixPattern.MatchString(prefix) {
		return fmt.Errorf("sweep %q: %w", prefix, ErrBadPrefix)
	}
	names, err := Namespaces(ctx, prefix)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", prefix, err)
	}
	var errs []error
	for _, n := range names {
		if _, err := runCmd(ctx, "", "ip", "netns", "del", n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep %s: %w", prefix, err)
	}
	return nil
}
