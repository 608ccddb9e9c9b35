package clustertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"buoy/internal/kv"
)

// KVClient is the part of a key-value API a linearizability workload
// drives: the library (buoy.KV) in a whole-cluster test, HTTP against real
// processes. Reads are linearizable (never stale).
type KVClient interface {
	// Get returns the key's value and modify index; an error wrapping
	// kv.ErrNotFound when it does not exist.
	Get(ctx context.Context, key string) (value string, index uint64, err error)
	// Put writes the key, only if its modify index is *cas when cas is not
	// nil (0: only if absent), and returns the new modify index. A failed
	// condition is an error wrapping kv.ErrCheckFailed.
	Put(ctx context.Context, key, value string, cas *uint64) (index uint64, err error)
	// Delete removes the key and reports whether it existed.
	Delete(ctx context.Context, key string) (existed bool, err error)
}

// KVSeedEnv replays one run of a linearizability test:
// BUOY_KVLIN_SEED=<seed from the log>. Goroutine scheduling still varies,
// so a replay repeats the operations and faults, not every interleaving.
const KVSeedEnv = "BUOY_KVLIN_SEED"

// retryPause is how long a client waits when its target has no node.
const retryPause = 50 * time.Millisecond

// KVTarget picks the node a client's next operation goes to: its name and
// client, or a nil client when no node can take it now.
type KVTarget func(client int, rng *rand.Rand) (node string, c KVClient)

// KVWorkload is a set of concurrent clients doing random gets, puts,
// compare-and-sets and deletes on a few keys, each operation on a node the
// target picks, recorded into a KVHistory.
type KVWorkload struct {
	Clients      int
	Keys         []string
	OpsPerClient int           // each client stops after this many operations
	OpTimeout    time.Duration // bound of one operation; a write that runs out is of unknown outcome
	MaxPause     time.Duration // a client pauses up to this long between operations
	Seed         uint64
}

// Start runs the clients until each has done OpsPerClient operations or
// ctx ends, and returns a function that waits for all of them. The clients
// are goroutines owned by the returned wait, which the caller must call.
func (w KVWorkload) Start(ctx context.Context, h *KVHistory, target KVTarget) (wait func()) {
	var wg sync.WaitGroup
	for id := range w.Clients {
		rng := rand.New(rand.NewPCG(w.Seed, uint64(id)))
		wg.Go(func() { w.client(ctx, id, rng, h, target) })
	}
	return wg.Wait
}

// client is one client's loop; it returns after OpsPerClient operations
// or when ctx ends.
func (w KVWorkload) client(ctx context.Context, id int, rng *rand.Rand, h *KVHistory, target KVTarget) {
	// seen is the last modify index this client saw per key: what a
	// real client would compare-and-set against.
	seen := map[string]uint64{}
	for n := 0; n < w.OpsPerClient; {
		if w.MaxPause > 0 {
			select {
			case <-time.After(time.Duration(rng.Int64N(int64(w.MaxPause)))):
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		node, c := target(id, rng)
		if c == nil {
			// No node to ask now (all down or being restarted): try
			// again a little later.
			select {
			case <-time.After(retryPause):
			case <-ctx.Done():
				return
			}
			continue
		}
		n++
		key := w.Keys[rng.IntN(len(w.Keys))]
		value := fmt.Sprintf("c%d-%d", id, n) // unique: a read names the write it saw
		var in KVInput
		switch r := rng.IntN(100); {
		case r < 40:
			in = KVInput{Kind: KVGet, Key: key}
		case r < 65:
			in = KVInput{Kind: KVPut, Key: key, Value: value}
		case r < 85:
			in = KVInput{Kind: KVCAS, Key: key, Value: value, CAS: seen[key]}
			if rng.IntN(4) == 0 {
				in.CAS = 0
			}
		default:
			in = KVInput{Kind: KVDelete, Key: key}
		}
		octx, cancel := context.WithTimeout(ctx, w.OpTimeout)
		done := h.Call(id, in)
		out, err := do(octx, c, in)
		cancel()
		info := KVOpInfo{Node: node}
		if err != nil {
			info.Err = err.Error()
		}
		keep := !(in.Kind == KVGet && out.Unknown) // a failed read changed nothing
		done(out, info, keep)
		if out.Index != 0 {
			seen[key] = out.Index
		}
	}
}

// do runs one operation and turns its answer into the model's output: a
// write that failed for any reason but a failed check may have been
// applied, so its outcome is unknown.
func do(ctx context.Context, c KVClient, in KVInput) (KVOutput, error) {
	switch in.Kind {
	case KVGet:
		v, idx, err := c.Get(ctx, in.Key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			return KVOutput{}, nil
		case err != nil:
			return KVOutput{Unknown: true}, err
		}
		return KVOutput{OK: true, Value: v, Index: idx}, nil
	case KVPut, KVCAS:
		var cas *uint64
		if in.Kind == KVCAS {
			cas = &in.CAS
		}
		idx, err := c.Put(ctx, in.Key, in.Value, cas)
		switch {
		case in.Kind == KVCAS && errors.Is(err, kv.ErrCheckFailed):
			return KVOutput{}, err
		case err != nil:
			return KVOutput{Unknown: true}, err
		}
		return KVOutput{OK: true, Index: idx}, nil
	case KVDelete:
		existed, err := c.Delete(ctx, in.Key)
		if err != nil {
			return KVOutput{Unknown: true}, err
		}
		return KVOutput{OK: existed}, nil
	}
	return KVOutput{}, fmt.Errorf("unknown operation %v", in.Kind)
}
