package hooks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is what happened to a role, and so which hook runs.
type Event string

// The hook events.
const (
	// Promote runs on the node that became the role's holder.
	Promote Event = "promote"
	// Demote runs on the node that stopped holding the role.
	Demote Event = "demote"
	// Change runs on every node when the role's holder changes.
	Change Event = "change"
)

// Defaults for Options left zero.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultOutputLimit = 64 << 10
	DefaultQueueLimit  = 64
)

// waitDelay is how long a run waits, after the hook exits or is killed,
// for other processes that still hold its output pipe before closing it.
const waitDelay = 2 * time.Second

// Errors a Result or a call wraps, for callers that branch on them.
var (
	// ErrNotFound: the hook's executable does not exist.
	ErrNotFound = errors.New("hook not found")
	// ErrNotExecutable: the file exists but cannot be run (mode, a
	// directory, no #! line).
	ErrNotExecutable = errors.New("hook not executable")
	// ErrTimeout: the hook ran past its timeout and was killed with its
	// process group.
	ErrTimeout = errors.New("hook timed out")
	// ErrKilled: a signal ended the hook, or shutdown killed it.
	ErrKilled = errors.New("hook killed")
	// ErrExit: the hook exited with a non-zero status.
	ErrExit = errors.New("hook failed")
	// ErrClosed: the runner is shutting down; the hook did not run.
	ErrClosed = errors.New("hook runner closed")
	// ErrQueueFull: the role already has Options.QueueLimit hooks waiting.
	ErrQueueFull = errors.New("hook queue full")
)

// Request describes one hook run.
type Request struct {
	// Role and Event select the queue and are passed to the hook.
	Role  string
	Event Event
	// Path is the executable. A name without a slash is looked up in
	// PATH; configs should give absolute paths.
	Path string
	// Epoch is the role's fencing epoch after the transition.
	Epoch uint64
	// Node is this node's name.
	Node string
	// Holder and HolderAddr name the role's holder after the transition
	// and its address ("" when nobody holds the role).
	Holder, HolderAddr string
	// Previous is the holder before the transition ("" if none).
	Previous string
	// Env holds extra "KEY=value" entries for the hook. BUOY_* entries
	// above win over them.
	Env []string
	// Timeout bounds the run (0: Options.Timeout).
	Timeout time.Duration
}

// Result is the outcome of one hook run.
type Result struct {
	Role  string
	Event Event
	Path  string
	Epoch uint64
	// Started is when the hook started (or would have), Duration how
	// long it ran.
	Started  time.Time
	Duration time.Duration
	// ExitCode is the hook's exit status, or -1 when it did not exit by
	// itself (killed, or never started).
	ExitCode int
	// Output is the hook's stdout and stderr, interleaved, bounded by
	// Options.OutputLimit; OutputDropped counts bytes left out.
	Output        []byte
	OutputDropped int64
	// Err is nil when the hook exited 0; otherwise it wraps ErrNotFound,
	// ErrNotExecutable, ErrTimeout, ErrKilled, ErrExit or ErrClosed.
	Err error
}

// OK reports whether the hook ran and exited 0.
func (r Result) OK() bool { return r.Err == nil }

// Options configure a Runner.
type Options struct {
	// Logger receives a record of every run with its output (default:
	// discarded).
	Logger *slog.Logger
	// Audit, if set, gets an entry for every run. The runner does not
	// close it.
	Audit *AuditLog
	// Timeout is the default run timeout (default 30 s).
	Timeout time.Duration
	// OutputLimit bounds the captured output of one run (default 64 KiB).
	OutputLimit int
	// QueueLimit bounds the hooks waiting per role (default 64).
	QueueLimit int
}

// Runner runs hooks: one queue per role, one hook at a time per role,
// different roles in parallel. A role's queue has a goroutine while it has
// work; it exits when the queue is empty. Shutdown or Close waits for all
// of them.
type Runner struct {
	opts Options
	log  *slog.Logger
	// killCtx ends when shutdown gives up waiting: running hooks are
	// killed and queued ones are not started.
	killCtx context.Context
	kill    context.CancelFunc
	wg      sync.WaitGroup

	// mu guards the following fields.
	mu     sync.Mutex
	closed bool
	queues map[string][]job
}

type job struct {
	req  Request
	done chan Result // buffered 1: the worker never waits for the caller
}

// New returns a runner with no hooks running.
func New(opts Options) *Runner {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.OutputLimit <= 0 {
		opts.OutputLimit = DefaultOutputLimit
	}
	if opts.QueueLimit <= 0 {
		opts.QueueLimit = DefaultQueueLimit
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{opts: opts, log: log, killCtx: ctx, kill: cancel, queues: map[string][]job{}}
}

// Enqueue queues req behind the hooks already queued for its role and
// returns a channel that receives its result once. It fails with ErrClosed
// after Shutdown or Close has begun, and ErrQueueFull when the role has
// too many hooks waiting.
func (r *Runner) Enqueue(req Request) (<-chan Result, error) {
	if req.Role == "" {
		return nil, fmt.Errorf("enqueue %s hook: no role", req.Event)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("enqueue %s hook for %s: %w", req.Event, req.Role, ErrClosed)
	}
	q, busy := r.queues[req.Role]
	if len(q) >= r.opts.QueueLimit {
		return nil, fmt.Errorf("enqueue %s hook for %s: %w (%d waiting)", req.Event, req.Role, ErrQueueFull, len(q))
	}
	j := job{req: req, done: make(chan Result, 1)}
	r.queues[req.Role] = append(q, j)
	if !busy {
		r.wg.Go(func() { r.work(req.Role) })
	}
	return j.done, nil
}

// Run queues req and waits for its result. When ctx ends first, Run
// returns ctx's error but the hook still runs in its turn: skipping a
// queued hook would break the order the role's hooks promise.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	done, err := r.Enqueue(req)
	if err != nil {
		return Result{}, err
	}
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("wait for %s hook of %s: %w", req.Event, req.Role, ctx.Err())
	}
}

// work runs role's queue until it is empty. A role has at most one worker:
// the queue's entry in r.queues exists exactly while one runs.
func (r *Runner) work(role string) {
	for {
		r.mu.Lock()
		q := r.queues[role]
		if len(q) == 0 {
			delete(r.queues, role)
			r.mu.Unlock()
			return
		}
		j := q[0]
		q[0] = job{}
		r.queues[role] = q[1:]
		r.mu.Unlock()

		var res Result
		if r.killCtx.Err() != nil {
			res = notRun(j.req, fmt.Errorf("%s hook %s for %s: %w", j.req.Event, j.req.Path, j.req.Role, ErrClosed))
		} else {
			res = r.execute(j.req)
		}
		r.report(res)
		j.done <- res
	}
}

func notRun(req Request, err error) Result {
	return Result{Role: req.Role, Event: req.Event, Path: req.Path, Epoch: req.Epoch, Started: time.Now(), ExitCode: -1, Err: err}
}

// execute runs one hook to completion, timeout or kill.
func (r *Runner) execute(req Request) Result {
	what := fmt.Sprintf("%s hook %s for %s", req.Event, req.Path, req.Role)
	if req.Path == "" {
		return notRun(req, fmt.Errorf("%s hook for %s: %w: no path", req.Event, req.Role, ErrNotFound))
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = r.opts.Timeout
	}
	ctx, cancel := context.WithTimeoutCause(r.killCtx, timeout, ErrTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, req.Path)
	cmd.Env = environ(req)
	out := newCapture(r.opts.OutputLimit)
	cmd.Stdout, cmd.Stderr = out, out
	inOwnGroup(cmd)
	cmd.WaitDelay = waitDelay

	res := Result{Role: req.Role, Event: req.Event, Path: req.Path, Epoch: req.Epoch, Started: time.Now(), ExitCode: -1}
	err := cmd.Run()
	res.Duration = time.Since(res.Started)
	res.Output, res.OutputDropped = out.Bytes()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// The hook succeeded; something it started kept the output open.
		r.log.Warn("hook exited but a process it started kept its output open; redirect that process's output",
			"role", req.Role, "event", req.Event, "path", req.Path)
	case errors.Is(context.Cause(ctx), ErrTimeout):
		res.Err = fmt.Errorf("%s: %w: killed after %v", what, ErrTimeout, timeout)
	case r.killCtx.Err() != nil:
		res.Err = fmt.Errorf("%s: %w: runner shut down", what, ErrKilled)
	case errors.As(err, &exitErr):
		if sig, ok := signalOf(exitErr.ProcessState); ok {
			res.Err = fmt.Errorf("%s: %w by signal %v", what, ErrKilled, sig)
		} else {
			res.Err = fmt.Errorf("%s: %w: exit status %d%s", what, ErrExit, res.ExitCode, lastLine(res.Output))
		}
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		res.Err = fmt.Errorf("%s: %w (%v)", what, ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		res.Err = fmt.Errorf("%s: %w: permission denied (is it chmod +x, and not a directory?)", what, ErrNotExecutable)
	case isExecFormat(err):
		res.Err = fmt.Errorf("%s: %w: exec format error (does the script start with #!?)", what, ErrNotExecutable)
	default:
		res.Err = fmt.Errorf("%s: %w", what, err)
	}
	return res
}

// lastLine returns ": " and the last non-empty line of out, shortened, to
// say in an error why a hook failed.
func lastLine(out []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(out), "?"))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

// environ is the hook's environment: the agent's, without its own BUOY_*
// settings (which may hold secrets, and would be confused with the hook's
// variables), then the caller's extras, then the hook variables.
func environ(req Request) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BUOY_") {
			env = append(env, kv)
		}
	}
	env = append(env, req.Env...)
	// exec keeps the last of duplicate keys, so these win.
	return append(env,
		"BUOY_ROLE="+req.Role,
		"BUOY_EVENT="+string(req.Event),
		"BUOY_EPOCH="+strconv.FormatUint(req.Epoch, 10),
		"BUOY_NODE="+req.Node,
		"BUOY_HOLDER="+req.Holder,
		"BUOY_HOLDER_ADDR="+req.HolderAddr,
		"BUOY_PREVIOUS="+req.Previous,
	)
}

// report logs a run and appends it to the audit log.
func (r *Runner) report(res Result) {
	attrs := []any{
		"role", res.Role, "event", res.Event, "path", res.Path, "epoch", res.Epoch,
		"exit", res.ExitCode, "duration", res.Duration, "output", string(res.Output),
	}
	if res.Err != nil {
		r.log.Warn("hook failed", append(attrs, "err", res.Err)...)
	} else {
		r.log.Info("hook ran", attrs...)
	}
	if r.opts.Audit == nil {
		return
	}
	if err := r.opts.Audit.Append(HookEntry(res)); err != nil {
		r.log.Error("audit log", "err", err)
	}
}

// Shutdown stops accepting hooks and waits for the queued ones to run.
// If ctx ends first, it kills the running hooks, fails the ones not yet
// started with ErrClosed, waits for the queue goroutines to return, and
// returns ctx's error.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	done := make(chan struct{})
	// This goroutine ends when the workers do, which the kill below
	// guarantees; Shutdown waits for it on every path.
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		r.kill()
		return nil
	case <-ctx.Done():
		r.kill()
		<-done
		return fmt.Errorf("shut down hook runner: %w", ctx.Err())
	}
}

// Close kills running hooks, fails queued ones with ErrClosed, and waits
// for the queue goroutines. It is safe to call more than once.
func (r *Runner) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
