package buoy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"buoy/internal/consensus"
	"buoy/internal/kv"
	"buoy/internal/store"
)

// Writes to the key-value store on a follower go to the leader. Sent one
// RPC each, every write pays a frame each way, its JSON envelope, a yamux
// frame, a TLS record and a system call on both nodes, and a goroutine
// wake-up at every step: under load that was a sixth of the cluster's CPU.
// A follower's concurrent writes now travel together: a few forwarding
// goroutines each take whatever writes are waiting and send them as one
// kvBatchOp call, which the leader applies concurrently (so Raft commits
// them in one batch too) and answers write by write. A write that finds
// nothing waiting goes at once and alone, so a lone client waits no
// longer than before.
const (
	// kvBatchRawOp carries a batch in binary (kvbatch.go); kvBatchOp is
	// its JSON form, which leaders still serve for older followers.
	kvBatchRawOp = "kv-batch-raw"
	kvBatchOp    = "kv-batch"
	// kvForwarders is how many batches a follower has on the way to the
	// leader at once: while one commits, the next fills.
	kvForwarders = 4
	// kvMaxBatch bounds the writes of one batch (and the goroutines the
	// leader starts for it).
	kvMaxBatch = 64
	// kvQueue bounds the writes waiting for a forwarder; more wait to be
	// queued, each under its own context.
	kvQueue = 1024
	// kvRetryPause paces the retries of a write that never reached the
	// log because leadership moved.
	kvRetryPause = 50 * time.Millisecond
)

// kvForwarder sends a follower's key-value writes to the leader in
// batches. Its goroutines are started by start and end with the node's
// context.
type kvForwarder struct {
	n     *Node
	queue chan *kvCall
	// batches and batched count the batches of more than one write sent
	// and the writes in them, and fallbacks the batches a leader refused
	// (an older version) and that went write by write, for tests.
	batches, batched, fallbacks atomic.Uint64
}

// A kvCall is one write waiting for its batch. state moves once from
// callQueued to callTaken (a forwarder put it in a batch: it may reach the
// leader) or to callAbandoned (its caller gave up first: it is never
// sent).
type kvCall struct {
	ctx   context.Context
	req   kvRequest
	state atomic.Int32
	done  chan struct{} // closed once res and err are set
	res   KVResult
	err   error
}

const (
	callQueued int32 = iota
	callTaken
	callAbandoned
)

// kvAnswer is the leader's answer to one write of a batch.
type kvAnswer struct {
	Result *KVResult `json:"result,omitempty"`
	Error  string    `json:"error,omitempty"`
	Code   string    `json:"code,omitempty"`
}

func newKVForwarder(n *Node) *kvForwarder {
	return &kvForwarder{n: n, queue: make(chan *kvCall, kvQueue)}
}

// start runs the forwarding goroutines on the node's WaitGroup; they end
// when the node's context does.
func (f *kvForwarder) start() {
	for range kvForwarders {
		f.n.wg.Go(f.run)
	}
}

// do commits req, on this node if it leads, else through the leader. A
// write that never reached the log because leadership moved is tried
// again until ctx ends; one that may have reached it is not (at most
// once, see KV.txn).
func (f *kvForwarder) do(ctx context.Context, req kvRequest) (KVResult, error) {
	for {
		var res KVResult
		var err error
		if f.n.raft.IsLeader() {
			res, err = f.n.applyKV(ctx, req)
			res = cloneResult(res)
		} else {
			res, err = f.forward(ctx, req)
		}
		if err == nil || !errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrOutcomeUnknown) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return KVResult{}, fmt.Errorf("%s: %w (last error: %v)", kvOp, ctx.Err(), err)
		case <-f.n.ctx.Done():
			return KVResult{}, fmt.Errorf("%s: %w: %v", kvOp, ErrClosed, err)
		case <-time.After(kvRetryPause):
		}
	}
}

// forward queues req for a forwarder and waits for its answer. If ctx
// ends first, a write not yet in a batch is dropped and reported as not
// sent; one in a batch may still apply, and says so.
func (f *kvForwarder) forward(ctx context.Context, req kvRequest) (KVResult, error) {
	c := &kvCall{ctx: ctx, req: req, done: make(chan struct{})}
	select {
	case f.queue <- c:
	case <-ctx.Done():
		return KVResult{}, fmt.Errorf("%s: %w (not sent)", kvOp, ctx.Err())
	case <-f.n.ctx.Done():
		return KVResult{}, fmt.Errorf("%s: %w", kvOp, ErrClosed)
	}
	var why error
	select {
	case <-c.done:
		return answer(ctx, c)
	case <-ctx.Done():
		why = ctx.Err()
	case <-f.n.ctx.Done():
		why = ErrClosed
	}
	if c.state.CompareAndSwap(callQueued, callAbandoned) {
		if f.n.raft.Leader() == "" {
			return KVResult{}, fmt.Errorf("%s: %w (not sent: %w)", kvOp, why, store.ErrNoLeader)
		}
		return KVResult{}, fmt.Errorf("%s: %w (not sent)", kvOp, why)
	}
	select {
	case <-c.done: // the answer came just as ctx ended
		return answer(ctx, c)
	default:
	}
	return KVResult{}, fmt.Errorf("%s: %w: %w", kvOp, store.ErrOutcomeUnknown, why)
}

// answer returns c's result. A batch is cancelled once all its callers
// have given up, and its error then names that cancellation: the caller
// gets its own reason instead (its deadline, say), still marked as of
// unknown outcome if the batch may have reached the leader.
func answer(ctx context.Context, c *kvCall) (KVResult, error) {
	if c.err == nil || ctx.Err() == nil || !errors.Is(c.err, context.Canceled) {
		return c.res, c.err
	}
	if errors.Is(c.err, store.ErrOutcomeUnknown) {
		return KVResult{}, fmt.Errorf("%s: %w: %w", kvOp, store.ErrOutcomeUnknown, ctx.Err())
	}
	return KVResult{}, fmt.Errorf("%s: %w (not sent: %v)", kvOp, ctx.Err(), c.err)
}

// run is one forwarding goroutine: it takes the next waiting write, waits
// until a leader is known (so that writes are not sent into an election,
// and a caller that gives up meanwhile knows its write went nowhere), adds
// the writes waiting behind it and sends them together.
func (f *kvForwarder) run() {
	for {
		var first *kvCall
		select {
		case first = <-f.queue:
		case <-f.n.ctx.Done():
			return
		}
		for f.n.raft.Leader() == "" && first.state.Load() == callQueued {
			select {
			case <-f.n.ctx.Done():
				return
			case <-time.After(kvRetryPause):
			}
		}
		if !first.state.CompareAndSwap(callQueued, callTaken) {
			continue // its caller gave up; the next one waits for a leader itself
		}
		batch := make([]*kvCall, 1, kvMaxBatch)
		batch[0] = first
	fill:
		for len(batch) < kvMaxBatch {
			select {
			case c := <-f.queue:
				if c.state.CompareAndSwap(callQueued, callTaken) {
					batch = append(batch, c)
				}
			default:
				break fill
			}
		}
		f.send(batch)
	}
}

// send commits a batch through the leader (or here, if this node leads by
// now) and hands every write its answer. The call lasts while one of the
// batch's callers still waits; it is sent at most once.
func (f *kvForwarder) send(batch []*kvCall) {
	ctx, cancel := context.WithCancel(f.n.ctx)
	defer cancel()
	var waiting atomic.Int32
	waiting.Store(int32(len(batch)))
	for _, c := range batch {
		stop := context.AfterFunc(c.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	if len(batch) > 1 {
		f.batches.Add(1)
		f.batched.Add(uint64(len(batch)))
	}
	reqs := make([]kvRequest, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	var answers []kvAnswer
	var raw consensus.Raw
	local := false
	err := f.n.raft.OnLeaderAtMostOnce(ctx, kvBatchRawOp, consensus.Raw(encodeKVBatch(reqs)), &raw, func(ctx context.Context) (any, error) {
		local = true
		answers = f.n.applyKVBatch(ctx, reqs)
		for _, a := range answers {
			if a.Result != nil {
				*a.Result = cloneResult(*a.Result)
			}
		}
		return nil, nil
	})
	if err == nil && !local {
		if answers, err = decodeKVAnswers(raw, len(batch)); err != nil {
			// The leader applied the batch; what it said is lost.
			err = fmt.Errorf("%s: %w: %w", kvBatchRawOp, store.ErrOutcomeUnknown, err)
		}
	}
	if err == nil && len(answers) != len(batch) {
		err = fmt.Errorf("%s: %w: %d answers for %d writes", kvBatchRawOp, store.ErrOutcomeUnknown, len(answers), len(batch))
	}
	if errors.Is(err, store.ErrInvalidInput) && !errors.Is(err, store.ErrOutcomeUnknown) {
		// A leader that does not know kvBatchRawOp (an older version)
		// refuses the whole call before applying anything: send the
		// writes one by one, on the plain path any leader serves.
		f.fallbacks.Add(1)
		var wg sync.WaitGroup
		for _, c := range batch {
			wg.Go(func() {
				c.res, c.err = f.one(ctx, c.req)
				close(c.done)
			})
		}
		wg.Wait()
		return
	}
	for i, c := range batch {
		switch {
		case err != nil:
			c.err = err
		case answers[i].Error != "":
			c.err = store.FromCode(answers[i].Code, answers[i].Error)
		case answers[i].Result == nil:
			c.err = fmt.Errorf("%s: %w: answer %d has no result", kvBatchRawOp, store.ErrOutcomeUnknown, i)
		default:
			c.res = *answers[i].Result
		}
		close(c.done)
	}
}

// one commits a single write through the leader, or here.
func (f *kvForwarder) one(ctx context.Context, req kvRequest) (KVResult, error) {
	var res KVResult
	err := f.n.raft.OnLeaderAtMostOnce(ctx, kvOp, req, &res, func(ctx context.Context) (any, error) {
		r, err := f.n.applyKV(ctx, req)
		res = cloneResult(r)
		return nil, err
	})
	return res, err
}

// applyKVBatch runs on the leader: it applies the writes of a batch
// concurrently, so that Raft takes them into one log batch, and answers
// each on its own.
func (n *Node) applyKVBatch(ctx context.Context, reqs []kvRequest) []kvAnswer {
	answers := make([]kvAnswer, len(reqs))
	waits := make([]func() (any, error), len(reqs))
	for i, req := range reqs {
		b, err := n.prepareKV(req)
		if err != nil {
			answers[i] = kvAnswerOf(KVResult{}, err)
			continue
		}
		waits[i] = n.raft.ApplyRawAsync(ctx, b)
	}
	for i, wait := range waits {
		if wait != nil {
			answers[i] = kvAnswerOf(kvOutcome(wait()))
		}
	}
	return answers
}

// registerKVBatchRPC serves kvBatchRawOp and kvBatchOp on the leader.
func (n *Node) registerKVBatchRPC() {
	if n.kvRawOff {
		return // a test stands in for a leader older than raw bodies
	}
	n.raft.HandleRaw(kvBatchRawOp, func(ctx context.Context, from string, body []byte) ([]byte, error) {
		reqs, err := decodeKVBatch(body)
		if err != nil {
			return nil, fmt.Errorf("%w: kv batch from %s: %w", store.ErrInvalidInput, from, err)
		}
		return encodeKVAnswers(n.applyKVBatch(ctx, reqs)), nil
	})
	n.raft.Handle(kvBatchOp, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		var reqs []kvRequest
		if err := json.Unmarshal(body, &reqs); err != nil {
			return nil, fmt.Errorf("%w: kv batch from %s: %v", store.ErrInvalidInput, from, err)
		}
		if len(reqs) > kvMaxBatch {
			return nil, fmt.Errorf("%w: kv batch from %s: %d writes, at most %d", store.ErrInvalidInput, from, len(reqs), kvMaxBatch)
		}
		return n.applyKVBatch(ctx, reqs), nil
	})
}

// cloneResult copies the values in r: the state machine's result shares
// them with the log entry and the stored map, which a caller must not be
// able to change.
func cloneResult(r KVResult) KVResult {
	if r.Ops == nil {
		return r
	}
	ops := make([]kv.OpResult, len(r.Ops))
	copy(ops, r.Ops)
	for i := range ops {
		if ops[i].Entry.Value != nil {
			ops[i].Entry.Value = append([]byte{}, ops[i].Entry.Value...)
		}
	}
	r.Ops = ops
	return r
}
