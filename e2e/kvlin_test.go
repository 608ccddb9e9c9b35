package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"buoy/internal/api"
	"buoy/internal/clustertest"
	"buoy/internal/kv"
)

// Bounds of the linearizability run over real processes.
const (
	kvlinClients   = 4
	kvlinMaxOps    = 150 // per client
	kvlinKills     = 3   // leaders killed with kill -9, then restarted
	kvlinOpTimeout = 5 * time.Second
	kvlinMaxPause  = 100 * time.Millisecond
	kvlinDeadline  = 5 * time.Minute
)

// TestKVLinearizable: clients doing random gets, puts, compare-and-sets
// and deletes over the HTTP API, each on a random running agent of three,
// while the test kills the leader with kill -9 and restarts it, several
// times, record a linearizable history (see clustertest.CheckKVHistory,
// which on failure saves it with a visualization; the agents' logs go
// next to it). The whole-cluster version with partitions is
// clustertest.TestKVLinearizable.
func TestKVLinearizable(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv(clustertest.KVSeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a seed from a test log: %v", clustertest.KVSeedEnv, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay the operations with %s=%d)", seed, clustertest.KVSeedEnv, seed)
	c, nodes := threeNodes(t)
	up := newHTTPNodes(nodes)

	h := &clustertest.KVHistory{}
	ctx, cancel := context.WithTimeout(context.Background(), kvlinDeadline)
	w := clustertest.KVWorkload{
		Clients: kvlinClients, Keys: []string{"lin/a", "lin/b", "lin/c"}, OpsPerClient: kvlinMaxOps,
		OpTimeout: kvlinOpTimeout, MaxPause: kvlinMaxPause, Seed: seed,
	}
	wait := w.Start(ctx, h, up.pick)
	defer func() { // also when the test fails half way
		cancel()
		wait()
	}()

	rng := rand.New(rand.NewPCG(seed, ^seed))
	for i := range kvlinKills {
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		leader := c.waitHealthy(3, nodes...)
		up.set(leader, false)
		leader.kill()
		down := time.Duration(500+rng.IntN(2000)) * time.Millisecond
		t.Logf("kill %d: kill -9 leader %s, down for %v", i+1, leader.name, down)
		time.Sleep(down)
		leader.restart()
		up.set(leader, true)
	}
	c.waitHealthy(3, nodes...)
	time.Sleep(time.Second) // the clients go on against the healed cluster
	cancel()
	wait()

	total, unknown := h.Counts()
	t.Logf("%d operations (%d of unknown outcome, %d failed reads left out)", total, unknown, h.Dropped())
	if total < kvlinClients*20 {
		t.Errorf("only %d operations recorded, want at least %d", total, kvlinClients*20)
	}
	if dir := clustertest.CheckKVHistory(t, h); dir != "" {
		for _, n := range c.nodes {
			if b, err := os.ReadFile(n.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(dir, n.key+".log"), b, 0o644)
			}
		}
		t.Logf("agent logs copied to %s", dir)
	}
}

// httpNodes is what the clients see of the agents: which ones are running.
// The test goroutine updates it around kills and restarts; the node
// structs themselves are the test goroutine's alone.
type httpNodes struct {
	client *http.Client

	// mu guards the following field.
	mu   sync.Mutex
	addr map[string]string // running agents' HTTP addresses by name
}

func newHTTPNodes(nodes []*node) *httpNodes {
	u := &httpNodes{client: &http.Client{}, addr: map[string]string{}}
	for _, n := range nodes {
		u.set(n, true)
	}
	return u
}

func (u *httpNodes) set(n *node, running bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if running {
		u.addr[n.name] = n.httpAddr
	} else {
		delete(u.addr, n.name)
	}
}

// pick is a clustertest.KVTarget: a random running agent.
func (u *httpNodes) pick(_ int, rng *rand.Rand) (string, clustertest.KVClient) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.addr) == 0 {
		return "", nil
	}
	var names []string
	for name := range u.addr {
		names = append(names, name)
	}
	slices.Sort(names)
	name := names[rng.IntN(len(names))]
	return name, httpKV{client: u.client, base: "http://" + u.addr[name]}
}

// httpKV is a clustertest.KVClient on the HTTP API (/v1/kv), with
// linearizable reads.
type httpKV struct {
	client *http.Client
	base   string
}

// do sends one request and decodes a 200 answer's JSON into v. A 404 is
// kv.ErrNotFound, a 409 kv.ErrCheckFailed; any other answer an error.
func (h httpKV) do(ctx context.Context, method, key, query string, body []byte, v any) error {
	u := h.base + (&url.URL{Path: "/v1/kv/" + key}).EscapedPath()
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, key, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, key, b, err)
		}
		return nil
	case http.StatusNotFound:
		return fmt.Errorf("%s %s: %w: %s", method, key, kv.ErrNotFound, b)
	case http.StatusConflict:
		return fmt.Errorf("%s %s: %w: %s", method, key, kv.ErrCheckFailed, b)
	}
	return fmt.Errorf("%s %s: %s: %s", method, key, resp.Status, bytes.TrimSpace(b))
}

func (h httpKV) Get(ctx context.Context, key string) (string, uint64, error) {
	var r api.KVRead
	if err := h.do(ctx, http.MethodGet, key, "", nil, &r); err != nil {
		return "", 0, err
	}
	if r.Stale {
		return "", 0, fmt.Errorf("GET %s: answer marked stale, without ?stale", key)
	}
	v, err := r.Bytes()
	return string(v), r.ModifyIndex, err
}

func (h httpKV) Put(ctx context.Context, key, value string, cas *uint64) (uint64, error) {
	query := ""
	if cas != nil {
		query = "cas=" + strconv.FormatUint(*cas, 10)
	}
	var e api.KVEntry
	if err := h.do(ctx, http.MethodPut, key, query, []byte(value), &e); err != nil {
		return 0, err
	}
	return e.ModifyIndex, nil
}

func (h httpKV) Delete(ctx context.Context, key string) (bool, error) {
	var d api.KVDeleted
	if err := h.do(ctx, http.MethodDelete, key, "", nil, &d); err != nil {
		return false, err
	}
	return d.Deleted > 0, nil
}
