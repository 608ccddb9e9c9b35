package buoy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

// KVEntry is one key with its value and the Raft indexes that created and
// last modified it.
type KVEntry = kv.Entry

// KVCommand is a transaction: checks, then operations, applied atomically.
type KVCommand = kv.Command

// KVResult is the outcome of a committed transaction.
type KVResult = kv.Result

// KVEvent is one change seen by a watch.
type KVEvent = kv.Event

// Errors of the key-value store callers branch on.
var (
	// ErrKVNotFound: no such key.
	ErrKVNotFound = kv.ErrNotFound
	// ErrKVCheckFailed: a compare-and-set or transaction check did not hold.
	ErrKVCheckFailed = kv.ErrCheckFailed
	// ErrKVCompacted: a watch fell behind the change log; re-read and resume.
	ErrKVCompacted = kv.ErrCompacted
	// ErrNoQuorum: a linearizable read cannot be served (this node cannot
	// reach a quorum); a stale read still can.
	ErrNoQuorum = store.ErrNoQuorum
	// ErrKVOutcomeUnknown: a write was sent but its answer lost (the
	// leader changed or the link broke): it may or may not have been
	// applied. It is not retried for the caller, who could otherwise see
	// it applied twice; read the key to find out.
	ErrKVOutcomeUnknown = store.ErrOutcomeUnknown
)

// KV is a node's client for the replicated key-value store.
type KV struct {
	n *Node
}

// KV returns the node's key-value store.
func (n *Node) KV() *KV { return &KV{n: n} }

// ReadOptions select how a read is served.
type ReadOptions struct {
	// Stale answers from this node's state without asking the leader: fast,
	// possibly behind, and possible without a quorum.
	Stale bool
}

// view returns a state through which a read is linearizable: the leader's
// confirmed commit index has been applied here. A stale read takes the
// current local state.
func (k *KV) view(ctx context.Context, o ReadOptions) (*store.State, error) {
	if o.Stale {
		return k.n.fsm.View(), nil
	}
	idx, err := k.n.raft.ReadIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("linearizable read: %w (a stale read is still possible)", err)
	}
	// idx is an entry the state machine sees (see consensus.ReadIndex), so
	// the view's own index reaches it.
	for {
		s := k.n.fsm.View()
		if s.Index >= idx {
			return s, nil
		}
		select {
		case <-s.Next():
		case <-ctx.Done():
			return nil, fmt.Errorf("linearizable read: waiting for index %d: %w", idx, ctx.Err())
		case <-k.n.ctx.Done():
			return nil, fmt.Errorf("linearizable read: %w", ErrClosed)
		}
	}
}

// Get reads one key. The returned index is the state's index (for a
// following blocking read).
func (k *KV) Get(ctx context.Context, key string, o ReadOptions) (KVEntry, uint64, error) {
	if err := kv.DefaultLimits.CheckKey(key); err != nil {
		return KVEntry{}, 0, err
	}
	s, err := k.view(ctx, o)
	if err != nil {
		return KVEntry{}, 0, err
	}
	e, ok := s.KV.Get(key)
	if !ok {
		return KVEntry{}, s.Index, fmt.Errorf("%w: %s", kv.ErrNotFound, key)
	}
	return e, s.Index, nil
}

// List reads every key under prefix, in order.
func (k *KV) List(ctx context.Context, prefix string, o ReadOptions) ([]KVEntry, uint64, error) {
	if prefix != "" {
		if err := kv.DefaultLimits.CheckPrefix(prefix); err != nil {
			return nil, 0, err
		}
	}
	s, err := k.view(ctx, o)
	if err != nil {
		return nil, 0, err
	}
	return s.KV.List(prefix), s.Index, nil
}

// PutOptions qualify a put.
type PutOptions struct {
	// CAS, if set, makes the put conditional on the key's modify index
	// (0: only if the key does not exist).
	CAS *uint64
	// TTL, if positive, makes the leader delete the key after it.
	TTL time.Duration
}

// Put writes a key and returns the new entry once committed.
func (k *KV) Put(ctx context.Context, key string, value []byte, o PutOptions) (KVEntry, error) {
	var exp time.Time
	if o.TTL > 0 {
		exp = k.n.raft.Now().Add(o.TTL) // re-stamped by the leader, see Txn
	}
	c := kv.Put(key, value, exp)
	if o.CAS != nil {
		c.Checks = append(c.Checks, kv.CAS(key, *o.CAS))
	}
	res, err := k.txn(ctx, c, o.TTL)
	if err != nil {
		return KVEntry{}, err
	}
	return res.Ops[0].Entry, nil
}

// Delete removes a key (if cas is set, only at that modify index). It
// reports whether the key existed.
func (k *KV) Delete(ctx context.Context, key string, cas *uint64) (bool, error) {
	c := kv.Delete(key)
	if cas != nil {
		c.Checks = append(c.Checks, kv.CAS(key, *cas))
	}
	res, err := k.Txn(ctx, c)
	if err != nil {
		return false, err
	}
	return res.Ops[0].Deleted > 0, nil
}

// DeletePrefix removes every key under prefix and says how many.
func (k *KV) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	res, err := k.Txn(ctx, kv.DeletePrefix(prefix))
	if err != nil {
		return 0, err
	}
	return res.Ops[0].Deleted, nil
}

// Txn commits a transaction: all checks hold and every operation applies
// at one index, or nothing changes (ErrKVCheckFailed).
func (k *KV) Txn(ctx context.Context, c KVCommand) (KVResult, error) {
	return k.txn(ctx, c, 0)
}

const kvOp = "kv"

// kvRequest is a transaction forwarded to the leader. TTL travels as a
// duration so the leader computes the expiry on its own clock.
type kvRequest struct {
	Cmd []byte        `json:"cmd"`
	TTL time.Duration `json:"ttl,omitempty"`
}

func (k *KV) txn(ctx context.Context, c KVCommand, ttl time.Duration) (KVResult, error) {
	if err := c.Validate(k.n.kvLimits()); err != nil {
		return KVResult{}, err
	}
	b, err := c.Encode()
	if err != nil {
		return KVResult{}, err
	}
	if k.n.kvFwd == nil {
		return KVResult{}, fmt.Errorf("%s: %w: the node is not started", kvOp, ErrClosed)
	}
	// At most once: a retried compare-and-set could report the failed
	// check its own first application caused, a retried put a modify
	// index another client never saw.
	res, err := k.n.kvFwd.do(ctx, kvRequest{Cmd: b, TTL: ttl})
	if err == nil {
		kv.FillPutValues(&res, &c) // a forwarded put's answer comes without its value
	}
	return res, err
}

// applyKV runs on the leader: it stamps the command with the leader's
// clock (and the TTL expiry from it), commits it and returns the result.
func (n *Node) applyKV(ctx context.Context, req kvRequest) (KVResult, error) {
	b, err := n.prepareKV(req)
	if err != nil {
		return KVResult{}, err
	}
	return kvOutcome(n.raft.ApplyRaw(ctx, b))
}

// prepareKV checks a write's command and stamps it with the leader's clock
// (and the TTL expiry from it), ready for the log.
func (n *Node) prepareKV(req kvRequest) ([]byte, error) {
	c, err := kv.DecodeCommand(req.Cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalidInput, err)
	}
	c.At = n.raft.Now()
	if req.TTL > 0 {
		for i := range c.Ops {
			if c.Ops[i].Kind == kv.OpPut {
				c.Ops[i].Expires = c.At.Add(req.TTL)
			}
		}
	}
	return c.Encode()
}

// kvOutcome reads the state machine's answer to a committed write.
func kvOutcome(out any, err error) (KVResult, error) {
	if err != nil {
		return KVResult{}, err
	}
	switch v := out.(type) {
	case kv.Result:
		return v, nil
	case error:
		return KVResult{}, v
	}
	return KVResult{}, fmt.Errorf("unexpected answer %T from the state machine", out)
}

// registerKVRPC serves the key-value RPCs and starts the forwarding of
// this node's writes to the leader.
func (n *Node) registerKVRPC() {
	n.kvFwd = newKVForwarder(n)
	n.kvFwd.start()
	n.registerKVBatchRPC()
	n.raft.Handle(kvOp, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		var req kvRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("%w: kv request from %s: %v", store.ErrInvalidInput, from, err)
		}
		return n.applyKV(ctx, req)
	})
}

func (n *Node) kvLimits() kv.Limits {
	l := kv.DefaultLimits
	if n.cfg.KVMaxKey > 0 {
		l.MaxKeyBytes = n.cfg.KVMaxKey
	}
	if n.cfg.KVMaxValue > 0 {
		l.MaxValueBytes = n.cfg.KVMaxValue
	}
	return l
}

// WaitIndex blocks until a key under prefix (or the key itself, when
// prefix is a full key) changes after index, or ctx ends; it returns the
// changes and the index to pass next time. This is the blocking query of
// the HTTP API (?index=N&wait=30s).
func (k *KV) WaitIndex(ctx context.Context, prefix string, index uint64) ([]KVEvent, uint64, error) {
	for {
		s := k.n.fsm.View()
		evs, err := s.KV.Changes(index, prefix)
		if err != nil {
			return nil, s.KV.LastChange(), err
		}
		if len(evs) > 0 {
			return evs, evs[len(evs)-1].Index, nil
		}
		select {
		case <-s.Next():
		case <-ctx.Done():
			return nil, max(index, s.KV.LastChange()), nil
		case <-k.n.done:
			return nil, index, ErrLeft
		case <-k.n.ctx.Done():
			return nil, index, ErrClosed
		}
	}
}

// WatchEvent is one delivery of a watch: changes, or the error that ended
// it (ErrKVCompacted when the watcher fell behind: nothing is skipped
// silently).
type WatchEvent struct {
	Events []KVEvent
	Err    error
}

// Watch streams every change under prefix after index, in order, until ctx
// ends. The channel is closed after an event carrying Err, or when ctx ends.
func (k *KV) Watch(ctx context.Context, prefix string, index uint64) <-chan WatchEvent {
	ch := make(chan WatchEvent, 16)
	k.n.wg.Go(func() {
		defer close(ch)
		for {
			evs, next, err := k.WaitIndex(ctx, prefix, index)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				select {
				case ch <- WatchEvent{Err: err}:
				case <-ctx.Done():
				}
				return
			}
			index = next
			if len(evs) == 0 {
				continue
			}
			select {
			case ch <- WatchEvent{Events: evs}:
			case <-ctx.Done():
				return
			case <-k.n.ctx.Done():
				return
			}
		}
	})
	return ch
}

// expireLoop runs on every node and acts on the leader: it commits the
// deletion of keys whose TTL passed, through the log, so every node deletes
// them once and at the same index.
func (n *Node) expireLoop() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.ctx.Done():
			return
		}
		wait := time.Second
		if n.raft.IsLeader() {
			s := n.fsm.View()
			now := n.raft.Now()
			if due := s.KV.Expired(now, 256); len(due) > 0 {
				ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
				c := kv.Expire(now, due)
				b, err := c.Encode()
				if err == nil {
					_, err = n.raft.ApplyRaw(ctx, b)
				}
				cancel()
				if err != nil && !errors.Is(err, store.ErrNotLeader) {
					n.log.Warn("expiring keys", "keys", len(due), "err", err)
				}
				wait = 0
			} else if next, ok := s.KV.NextExpiry(); ok {
				wait = min(wait, max(next.Sub(now), 10*time.Millisecond))
			}
		}
		t.Reset(wait)
	}
}
