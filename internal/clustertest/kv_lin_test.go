package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy"
)

// Bounds of a linearizability run: linFaults faults, each held up to 4 s
// with up to 2 s between them, while the clients run (each stopping after
// linMaxOps operations at the latest), then a quiet linSettle.
const (
	linClients   = 8
	linMaxOps    = 200
	linFaults    = 6
	linSettle    = 2 * time.Second
	linOpTimeout = 2 * time.Second // a write that takes longer is of unknown outcome
	linMaxPause  = 300 * time.Millisecond
	linDeadline  = 3 * time.Minute // virtual; a run takes some 30 s
)

// linKeys are few, so clients contend on them.
var linKeys = []string{"lin/a", "lin/b", "lin/c"}

// TestKVLinearizable: concurrent clients doing random gets, puts,
// compare-and-sets and deletes, each on a random node, while the test
// kills and restarts leaders and followers and cuts minorities off,
// produce a linearizable history (checked by porcupine, with writes of
// unknown outcome allowed to take effect at any later time or never). On
// failure the history and a visualization are saved; see CheckKVHistory.
func TestKVLinearizable(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", size), func(t *testing.T) {
			seed := linSeed(t)
			t.Logf("seed %d (replay with %s=%d)", seed, KVSeedEnv, seed)
			h := &KVHistory{}
			var c *Cluster
			Run(t, func(t *testing.T) { c = runLinearizable(t, size, seed, h) })
			// A cluster that stopped answering would leave a trivially
			// linearizable history: demand a fair number of answers.
			if total, _ := h.Counts(); total < linClients*20 {
				t.Errorf("only %d operations recorded, want at least %d", total, linClients*20)
			}
			if dir := CheckKVHistory(t, h); dir != "" && c != nil {
				saveLogs(t, c, filepath.Join(dir, "nodes.log"))
			}
		})
	}
}

func linSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv(KVSeedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a seed from a test log: %v", KVSeedEnv, s, err)
		}
		return seed
	}
	return rand.Uint64()
}

// runLinearizable records the history of one run into h and returns the
// cluster, whose logs outlive the bubble.
func runLinearizable(t *testing.T, size int, seed uint64, h *KVHistory) *Cluster {
	c := New(t, Options{})
	all := names(size)
	grow(t, c, all...)
	c.WaitMembers(convergeBound, all...)

	nodes := newKVNodes(c)
	ctx, cancel := context.WithTimeout(t.Context(), linDeadline)
	w := KVWorkload{
		Clients: linClients, Keys: linKeys, OpsPerClient: linMaxOps,
		OpTimeout: linOpTimeout, MaxPause: linMaxPause, Seed: seed,
	}
	wait := w.Start(ctx, h, nodes.pick)
	defer func() { // also when a fault helper fails the test
		cancel()
		wait()
	}()

	rng := rand.New(rand.NewPCG(seed, ^seed))
	for range linFaults {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		injectFault(t, c, nodes, rng)
	}
	time.Sleep(linSettle)
	cancel()
	wait()
	total, unknown := h.Counts()
	t.Logf("%d faults, %d operations (%d of unknown outcome, %d failed reads left out) in %v (virtual)", linFaults, total, unknown, h.Dropped(), c.Since())
	return c
}

// saveLogs writes the end of the nodes' logs (what the cluster kept of
// them) to path.
func saveLogs(t *testing.T, c *Cluster, path string) {
	t.Helper()
	c.logs.mu.Lock()
	text := strings.Join(c.logs.lines, "\n")
	c.logs.mu.Unlock()
	if err := os.WriteFile(path, []byte(text+"\n"), 0o644); err != nil {
		t.Errorf("save node logs: %v", err)
		return
	}
	t.Logf("node logs in %s", path)
}

// injectFault draws one fault, holds it for a while and undoes it: kill a
// leader or a follower and restart it, or cut the leader, a follower, or
// (with five nodes) the leader and a follower off from the rest.
func injectFault(t *testing.T, c *Cluster, nodes *kvNodes, rng *rand.Rand) {
	t.Helper()
	leader := c.WaitLeader(electBound)
	follower := c.Followers(leader)[rng.IntN(len(c.Followers(leader)))]
	hold := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
	switch r := rng.IntN(5); {
	case r <= 1:
		victim := leader
		if r == 1 {
			victim = follower
		}
		nodes.kill(victim.Name)
		t.Logf("+%v: killed %s (leader %s) for %v", c.Since(), victim.Name, leader.Name, hold)
		time.Sleep(hold)
		nodes.restart(victim.Name)
	case r == 2:
		c.Partition(leader.Name)
		t.Logf("+%v: cut off leader %s for %v", c.Since(), leader.Name, hold)
		time.Sleep(hold)
		c.Heal()
	case r == 3:
		c.Partition(follower.Name)
		t.Logf("+%v: cut off follower %s for %v", c.Since(), follower.Name, hold)
		time.Sleep(hold)
		c.Heal()
	default:
		cut := []string{leader.Name}
		if len(c.Nodes()) >= 5 {
			cut = append(cut, follower.Name)
		}
		c.Partition(cut...)
		t.Logf("+%v: cut off %v for %v", c.Since(), cut, hold)
		time.Sleep(hold)
		c.Heal()
	}
}

// kvNodes is what the clients see of the cluster: the running nodes'
// key-value stores. The test goroutine updates it around kills and
// restarts (the Cluster itself is not safe for concurrent use); a client
// in the middle of an operation on a node being killed keeps its handle
// and sees the node close under it.
type kvNodes struct {
	c *Cluster

	// mu guards the following field.
	mu  sync.Mutex
	kvs map[string]*buoy.KV
}

func newKVNodes(c *Cluster) *kvNodes {
	k := &kvNodes{c: c, kvs: map[string]*buoy.KV{}}
	for _, n := range c.Live() {
		k.kvs[n.Name] = n.Node.KV()
	}
	return k
}

// pick is a KVTarget: a random running node.
func (k *kvNodes) pick(_ int, rng *rand.Rand) (string, KVClient) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.kvs) == 0 {
		return "", nil
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range k.kvs {
			if !yield(n) {
				return
			}
		}
	})
	name := names[rng.IntN(len(names))]
	return name, libKV{k.kvs[name]}
}

func (k *kvNodes) kill(name string) {
	k.mu.Lock()
	delete(k.kvs, name)
	k.mu.Unlock()
	k.c.Kill(name)
}

func (k *kvNodes) restart(name string) {
	k.c.Restart(name)
	kv := k.c.MustGet(name).Node.KV()
	k.mu.Lock()
	k.kvs[name] = kv
	k.mu.Unlock()
}

// libKV is a KVClient on the library API, with linearizable reads.
type libKV struct{ kv *buoy.KV }

func (l libKV) Get(ctx context.Context, key string) (string, uint64, error) {
	e, _, err := l.kv.Get(ctx, key, buoy.ReadOptions{})
	return string(e.Value), e.ModifyIndex, err
}

func (l libKV) Put(ctx context.Context, key, value string, cas *uint64) (uint64, error) {
	e, err := l.kv.Put(ctx, key, []byte(value), buoy.PutOptions{CAS: cas})
	return e.ModifyIndex, err
}

func (l libKV) Delete(ctx context.Context, key string) (bool, error) {
	return l.kv.Delete(ctx, key, nil)
}
