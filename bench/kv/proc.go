package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is one server process of a cluster under test, its output going to
// a log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	// done is closed by the goroutine that owns cmd.Wait once the process
	// has exited; stop makes sure it does.
	done chan struct{}
}

// startProc starts bin with args, output to logPath. The kernel kills the
// process if the benchmark dies without stopping it (Pdeathsig), so no
// server outlives a crashed run.
func startProc(name, bin string, args []string, env []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: log: %w", name, err)
	}
	defer f.Close() // the child holds its own copy
	fmt.Fprintf(f, "===== %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { // exits when the process does
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid is the process id (for perf -p).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stopAll sends SIGTERM to every process still running, waits up to 10 s
// for all of them together, then kills those left; it returns once every
// process has exited.
func stopAll(ps []*proc) {
	for _, p := range ps {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	late := false
	for _, p := range ps {
		if !late {
			select {
			case <-p.done:
				continue
			case <-deadline.C:
				late = true
			}
		}
		_ = p.cmd.Process.Kill() // no-op error if it has exited meanwhile
		<-p.done
	}
}

// exited describes how a process that should be running ended, with the
// end of its log.
func (p *proc) exited() error {
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.name, p.cmd.ProcessState, p.logPath, tail(p.logPath, 20))
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

// freePorts returns n loopback addresses whose ports nobody listened on a
// moment ago. They are all held open until the last is picked, so the n
// are distinct; another process may still take one before the server does,
// which makes that server's start fail with its log shown.
func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// cleanEnv is the environment for the servers: ours without the variables
// that would configure them behind the command line's back.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BUOY_") || strings.HasPrefix(kv, "ETCD") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
