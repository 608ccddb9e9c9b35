package main

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// op is one request of a load step: worker is the client making it (which
// picks its connection), seq the request's number in the step (which picks
// its key).
type op func(ctx context.Context, worker, seq int) error

// stepResult is what one load step measured.
type stepResult struct {
	Clients int
	Done    int           // requests that succeeded
	Errors  int           // requests that failed
	Elapsed time.Duration // from the first request sent to the last answered
	P50     time.Duration
	P99     time.Duration
	// FirstErr is the first failure, to show what went wrong.
	FirstErr error
	// ServerCPU is the CPU time the system's server processes used during
	// the step, ClientCPU the load generator's (this process); zero when
	// unknown.
	ServerCPU, ClientCPU time.Duration
}

// CPUPerReq is the servers' CPU time per successful request.
func (r stepResult) CPUPerReq() time.Duration {
	if r.Done == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Done)
}

// PerSec is the step's throughput in successful requests per second.
func (r stepResult) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Done) / r.Elapsed.Seconds()
}

// maxErrors is how many failed requests end a step early: a system that
// fails that often is not being measured any more.
func maxErrors(count int) int { return max(100, count/10) }

// runStep runs count requests of do through clients concurrent workers,
// each sending its next request as soon as its previous one is answered
// (a closed loop, as a client waiting for its write would), and stops
// early after limit or maxErrors failures. A request still in flight when
// the limit passes is neither counted nor timed. runStep returns when every
// worker has returned.
func runStep(ctx context.Context, clients, count int, limit time.Duration, do op) stepResult {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var (
		next     atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex // guards the fields below
		lat      []time.Duration
		firstErr error
		last     time.Time
	)
	lat = make([]time.Duration, 0, count)
	start := time.Now()
	for w := range clients {
		// Each worker exits when the step's requests run out, its context
		// ends or too many requests failed.
		wg.Go(func() {
			mine := make([]time.Duration, 0, count/clients+1)
			var end time.Time
			for {
				seq := int(next.Add(1) - 1)
				if seq >= count || ctx.Err() != nil || failures.Load() >= int64(maxErrors(count)) {
					break
				}
				t0 := time.Now()
				err := do(ctx, w, seq)
				t1 := time.Now()
				if ctx.Err() != nil {
					break // cut off by the limit: not a failure of the system
				}
				if err != nil {
					failures.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, t1.Sub(t0))
				end = t1
			}
			mu.Lock()
			lat = append(lat, mine...)
			if end.After(last) {
				last = end
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	r := stepResult{Clients: clients, Done: len(lat), Errors: int(failures.Load()), FirstErr: firstErr}
	if len(lat) > 0 {
		r.Elapsed = last.Sub(start)
		slices.Sort(lat)
		r.P50 = percentile(lat, 0.50)
		r.P99 = percentile(lat, 0.99)
	}
	return r
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted,
// which must not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// errStepFailed reports a step whose every request failed.
var errStepFailed = errors.New("no request succeeded")
