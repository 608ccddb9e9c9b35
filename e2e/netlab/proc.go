package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// ErrExited is returned by Proc.WaitOutput when the process exits before
// printing what was awaited.
var ErrExited = errors.New("process exited")

// Command returns a command that runs name with args inside h's namespace
// (through `ip netns exec`, which execs the program, so the command's PID
// is the program's). ctx kills it as exec.CommandContext does. The caller
// may set Env, Dir, Stdin and the outputs, then either start it itself
// (and Wait for it) or hand it to Lab.Start. Either way the lab kills it
// by PID when the test ends; a caller that starts it itself must do so on
// the test's goroutine or one that finished before the test ends.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	l := h.lab
	cmd := exec.CommandContext(ctx, l.ipPath, append([]string{"netns", "exec", h.ns, name}, args...)...)
	// Wait returns this long after the process is gone even if a child
	// still holds its output pipes open.
	cmd.WaitDelay = procWaitDelay
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
	return cmd
}

// Run runs name with args inside h's namespace and returns its standard
// output. On failure the error names the command line and carries its
// standard error.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := h.Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("run %q in %s: %w: %s", strings.Join(append([]string{name}, args...), " "), h.name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Proc is a process started by Lab.Start. The lab owns its Wait: a
// goroutine per process waits for it and records how it ended; the lab's
// cleanup kills the process by PID and waits for that goroutine.
type Proc struct {
	cmd  *exec.Cmd
	out  outBuffer
	done chan struct{}
	err  error // how it ended; written before done is closed
}

// Start starts cmd, normally made by Host.Command, and returns the running
// process. A nil Stdout or Stderr is captured, both into the buffer that
// Output returns. The lab kills the process when the test ends.
func (l *Lab) Start(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	p.out.changed = make(chan struct{})
	if cmd.Stdout == nil {
		cmd.Stdout = &p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.out
	}
	// Hold the lock across Start so that the cleanup either sees the
	// process or refuses it: none can escape the kill.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), ErrClosed)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(cmd.Args, " "), err)
	}
	l.procs = append(l.procs, p)
	// Exits when the process has exited and its output is drained (at
	// most procWaitDelay later).
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output returns what the process printed on the captured outputs so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns how the process ended (as exec.Cmd.Wait does) once Done is
// closed, and nil before.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Wait waits for the process to exit and returns how it ended, or ctx's
// error first.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("wait for %s: %w", p.cmd.Path, ctx.Err())
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM, waits for the exit until ctx is done, then kills the
// process and waits for it. It returns how the process ended.
func (p *Proc) Stop(ctx context.Context) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only if it already exited
	select {
	case <-p.done:
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// WaitOutput waits until the captured output contains s. It returns
// ErrExited if the process exits first, or ctx's error.
func (p *Proc) WaitOutput(ctx context.Context, s string) error {
	for {
		out, changed := p.out.snapshot()
		if strings.Contains(out, s) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if strings.Contains(p.out.String(), s) {
				return nil
			}
			return fmt.Errorf("wait for %q from %s: %w (%v)", s, p.cmd.Path, ErrExited, p.err)
		case <-ctx.Done():
			return fmt.Errorf("wait for %q from %s: %w", s, p.cmd.Path, ctx.Err())
		}
	}
}

// outBuffer is a process's captured output, written by exec's copying
// goroutines and read by the test.
type outBuffer struct {
	// mu guards the following fields.
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is closed and replaced on every write, waking WaitOutput.
	changed chan struct{}
}

func (b *outBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

func (b *outBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// snapshot returns the output so far and a channel closed on the next
// write.
func (b *outBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}
