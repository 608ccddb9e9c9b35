package buoy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// startTrio starts a 3-node cluster on loopback and returns it leader
// first.
func startTrio(t *testing.T, ctx context.Context) []*Node {
	t.Helper()
	return startTrioWith(t, ctx, nil)
}

// startTrioWith is startTrio with hook run on each node between New and
// Start.
func startTrioWith(t *testing.T, ctx context.Context, hook func(*Node)) []*Node {
	t.Helper()
	dir := t.TempDir()
	start := func(cfg Config) *Node {
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if hook != nil {
			hook(n)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := start(Config{Name: "n1", DataDir: filepath.Join(dir, "n1"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-", Bootstrap: true})
	tok, err := a.CreateToken(ctx, TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*Node{a}
	for _, name := range []string{"n2", "n3"} {
		nodes = append(nodes, start(Config{Name: name, DataDir: filepath.Join(dir, name), PeerAddr: "127.0.0.1:0", HTTPAddr: "-",
			Join: []string{a.ListenAddr().String()}, Token: tok.Token}))
	}
	return nodes
}

// TestKVForwardBatches: many concurrent writes on a follower travel to
// the leader in batches, and each still gets its own answer: a put its
// entry, a compare-and-set that lost the race a failed check (so the
// counter ends exactly at the number of successful ones), at one log
// index each.
func TestKVForwardBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := startTrio(t, ctx)
	var follower *Node
	for _, n := range nodes {
		if !n.raft.IsLeader() {
			follower = n
			break
		}
	}
	kv := follower.KV()
	const writers, each = 32, 20
	if _, err := kv.Put(ctx, "counter", []byte("0"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		indexes = map[uint64]string{}
		won     int
		errs    []error
		wg      sync.WaitGroup
	)
	record := func(idx uint64, what string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := indexes[idx]; ok {
			errs = append(errs, fmt.Errorf("%s and %s both at index %d", prev, what, idx))
		}
		indexes[idx] = what
	}
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d/%d", w, i)
				e, err := kv.Put(ctx, key, []byte(key), PutOptions{})
				if err != nil || e.Key != key || string(e.Value) != key {
					mu.Lock()
					errs = append(errs, fmt.Errorf("Put(%s) = %+v, %v", key, e, err))
					mu.Unlock()
					return
				}
				record(e.ModifyIndex, key)
				// Everyone races for the counter with a compare-and-set.
				cur, _, err := kv.Get(ctx, "counter", ReadOptions{})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("Get(counter) = %v", err))
					mu.Unlock()
					return
				}
				var v int
				fmt.Sscan(string(cur.Value), &v)
				e, err = kv.Put(ctx, "counter", fmt.Appendf(nil, "%d", v+1), PutOptions{CAS: &cur.ModifyIndex})
				switch {
				case errors.Is(err, ErrKVCheckFailed):
				case err != nil:
					mu.Lock()
					errs = append(errs, fmt.Errorf("CAS(counter) = %v", err))
					mu.Unlock()
					return
				default:
					record(e.ModifyIndex, fmt.Sprintf("counter=%d", v+1))
					mu.Lock()
					won++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	got, _, err := nodes[0].KV().Get(ctx, "counter", ReadOptions{})
	if err != nil || string(got.Value) != fmt.Sprint(won) {
		t.Errorf("counter = %q, %v after %d successful compare-and-sets", got.Value, err, won)
	}
	if follower.kvFwd.batches.Load() == 0 {
		t.Errorf("%d concurrent writers on a follower: no batch of more than one write was sent", writers)
	}
	t.Logf("%d writes, %d successful CAS; %d batches carried %d writes", writers*each, won, follower.kvFwd.batches.Load(), follower.kvFwd.batched.Load())
}

// TestKVWriteWithoutLeaderNotSent: a write on a node that knows no leader
// waits for one, and when its deadline passes first it says it was never
// sent, not that its outcome is unknown.
func TestKVWriteWithoutLeaderNotSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := startTrio(t, ctx)
	last := nodes[2]
	for _, n := range nodes[:2] {
		n.Close()
	}
	for last.raft.Leader() != "" {
		select {
		case <-ctx.Done():
			t.Fatalf("%s still follows %q with the other two closed", last.Name(), last.raft.Leader())
		case <-time.After(20 * time.Millisecond):
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	_, err := last.KV().Put(wctx, "k", []byte("v"), PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrKVOutcomeUnknown) {
		t.Errorf("Put without a leader = %v, want a deadline error that is not %v", err, ErrKVOutcomeUnknown)
	}
}

func TestKVForwardAnswer(t *testing.T) {
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	cancelled := fmt.Errorf("kv: %w (last error: %w)", context.Canceled, ErrNoQuorum)
	tests := []struct {
		name        string
		ctx         context.Context
		err         error
		wantIs      []error
		wantIsNot   []error
		wantSameErr bool
	}{
		{"live caller keeps the batch's error", context.Background(), cancelled, nil, nil, true},
		{"definite error kept", expired, ErrKVCheckFailed, nil, nil, true},
		{"batch cancelled before sending", expired, cancelled, []error{context.DeadlineExceeded}, []error{ErrKVOutcomeUnknown, context.Canceled}, false},
		{"batch cancelled in flight", expired, fmt.Errorf("rpc: %w: %w", ErrKVOutcomeUnknown, context.Canceled),
			[]error{context.DeadlineExceeded, ErrKVOutcomeUnknown}, []error{context.Canceled}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := answer(tt.ctx, &kvCall{err: tt.err})
			if tt.wantSameErr && err != tt.err {
				t.Errorf("answer(%v) = %v, want it unchanged", tt.err, err)
			}
			for _, w := range tt.wantIs {
				if !errors.Is(err, w) {
					t.Errorf("answer(%v) = %v, want it to wrap %v", tt.err, err, w)
				}
			}
			for _, w := range tt.wantIsNot {
				if errors.Is(err, w) {
					t.Errorf("answer(%v) = %v, want it not to wrap %v", tt.err, err, w)
				}
			}
		})
	}
}

// TestKVForwardToOldLeader: a leader that predates binary batches refuses
// them before acting ("unknown raw rpc"); the follower then sends each
// write on the plain path, and every write commits once with its own
// answer.
func TestKVForwardToOldLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := startTrioWith(t, ctx, func(n *Node) { n.kvRawOff = true })
	var follower *Node
	for _, n := range nodes {
		if !n.raft.IsLeader() {
			follower = n
			break
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 16 {
		wg.Go(func() {
			for i := range 4 {
				key := fmt.Sprintf("old/%d/%d", w, i)
				e, err := follower.KV().Put(ctx, key, []byte(key), PutOptions{})
				if err != nil || string(e.Value) != key || e.ModifyIndex == 0 {
					errs <- fmt.Errorf("Put(%s) = %+v, %v", key, e, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if follower.kvFwd.fallbacks.Load() == 0 {
		t.Error("no batch fell back to the plain path, though the leader serves no binary batches")
	}
	list, _, err := nodes[0].KV().List(ctx, "old/", ReadOptions{})
	if err != nil || len(list) != 64 {
		t.Errorf("List(old/) = %d keys, %v; want 64", len(list), err)
	}
}
