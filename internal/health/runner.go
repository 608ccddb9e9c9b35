package health

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Transition reports that one check changed status.
type Transition struct {
	// Runner is the runner's Options.Name (the role, for a node).
	Runner string
	// Check is the index of the check in the specs given to Start, and
	// Name its Spec.Name.
	Check int
	Name  string
	// Healthy is the check's new status.
	Healthy bool
	// AllHealthy is whether every check of the runner is healthy after
	// this transition: what decides if the node is a candidate.
	AllHealthy bool
	// Err is the failure of the probe that caused the transition (nil
	// for a transition to healthy).
	Err error
	// At is when that probe ended.
	At time.Time
}

// CheckStatus is the state of one check.
type CheckStatus struct {
	Name    string
	Healthy bool
	// Passes and Fails count the current run of consecutive results.
	Passes, Fails int
	// Probes counts the probes run so far; zero means none has ended yet.
	Probes uint64
	// LastErr is the latest probe's failure, nil if it passed.
	LastErr error
	// LastAt is when the latest probe ended, LastDuration how long it took.
	LastAt       time.Time
	LastDuration time.Duration
}

// Status is a snapshot of a runner.
type Status struct {
	// Healthy is true when every check is healthy (and for a runner with
	// no checks).
	Healthy bool
	Checks  []CheckStatus
	// Dropped counts transitions that did not fit in the Notify channel.
	Dropped uint64
}

// Options configure a Runner.
type Options struct {
	// Name is copied into every Transition, so that one channel can serve
	// the runners of several roles.
	Name string
	// Notify, if set, receives every transition. The runner never waits
	// for it: a transition that does not fit in its buffer is dropped and
	// counted in Status.Dropped, and the reader catches up with Status.
	// The runner never closes it.
	Notify chan<- Transition
}

// Runner runs a set of checks, one goroutine each, from Start until Close.
// Each goroutine probes its check right away and then every interval
// (measured from the start of one probe to the start of the next; a probe
// that takes longer delays the next, never overlaps it). All checks start
// failing.
type Runner struct {
	opts    Options
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	dropped atomic.Uint64

	// mu guards the following fields.
	mu       sync.Mutex
	checks   []checkState
	nHealthy int
}

type checkState struct {
	spec    Spec
	tracker Tracker
	status  CheckStatus
}

// Start validates specs, applying defaults, and starts a goroutine per
// check. Close stops them. The first invalid spec is an error (wrapping
// ErrSpec) and nothing is started.
func Start(specs []Spec, opts Options) (*Runner, error) {
	probers := make([]Prober, len(specs))
	for i, s := range specs {
		p, err := NewProber(s)
		if err != nil {
			return nil, fmt.Errorf("check %d (%s): %w", i+1, s.WithDefaults().Name, err)
		}
		probers[i] = p
	}
	return start(specs, probers, opts), nil
}

// start runs the given probers under the timing of their specs; tests use
// it with probers of their own.
func start(specs []Spec, probers []Prober, opts Options) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{opts: opts, cancel: cancel, checks: make([]checkState, len(specs))}
	for i, s := range specs {
		s = s.WithDefaults()
		r.checks[i] = checkState{spec: s, tracker: NewTracker(s.Rise, s.Fall), status: CheckStatus{Name: s.Name}}
	}
	for i := range specs {
		r.wg.Go(func() { r.loop(ctx, i, probers[i]) })
	}
	return r
}

// loop probes check i until ctx ends (Close).
func (r *Runner) loop(ctx context.Context, i int, p Prober) {
	interval := r.checks[i].spec.Interval // immutable after start
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		began := time.Now()
		err := p.Probe(ctx)
		if ctx.Err() != nil {
			// Closed mid-probe: the result says nothing about the service.
			return
		}
		ended := time.Now()
		r.record(i, err, ended, ended.Sub(began))
		timer.Reset(max(0, interval-time.Since(began)))
	}
}

// record feeds one result to check i's tracker and sends a transition if
// its status changed.
func (r *Runner) record(i int, err error, at time.Time, took time.Duration) {
	r.mu.Lock()
	c := &r.checks[i]
	changed := c.tracker.Observe(err == nil)
	c.status.Healthy = c.tracker.Healthy()
	c.status.Passes, c.status.Fails = c.tracker.Passes(), c.tracker.Fails()
	c.status.Probes++
	c.status.LastErr, c.status.LastAt, c.status.LastDuration = err, at, took
	if changed {
		if c.status.Healthy {
			r.nHealthy++
		} else {
			r.nHealthy--
		}
	}
	t := Transition{
		Runner: r.opts.Name, Check: i, Name: c.spec.Name,
		Healthy: c.status.Healthy, AllHealthy: r.nHealthy == len(r.checks),
		Err: err, At: at,
	}
	r.mu.Unlock()
	if !changed || r.opts.Notify == nil {
		return
	}
	select {
	case r.opts.Notify <- t:
	default:
		r.dropped.Add(1)
	}
}

// Healthy reports whether every check is healthy. A runner with no checks
// is healthy.
func (r *Runner) Healthy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nHealthy == len(r.checks)
}

// Status returns a snapshot of every check.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{Healthy: r.nHealthy == len(r.checks), Checks: make([]CheckStatus, len(r.checks)), Dropped: r.dropped.Load()}
	for i, c := range r.checks {
		st.Checks[i] = c.status
	}
	return st
}

// Close stops every check, killing exec probes in flight, and waits for
// the goroutines to return. It is safe to call more than once.
func (r *Runner) Close() error {
	r.cancel()
	r.wg.Wait()
	return nil
}
