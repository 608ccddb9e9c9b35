// Command raftstore measures one hashicorp/raft log store under a real
// three-node cluster on loopback TCP: write throughput and apply latency at
// several client counts, the cost of reopening a 50,000-entry log, the size
// it takes on disk, and the Go heap it holds. The store is picked at build
// time (store_wal.go by default, store_bolt.go with -tags bolt), so the same
// program compares raft v1.8.0 + raft-wal with raft v1.7.3 + raft-boltdb/v2.
//
// Every measured value is printed as "RESULT <store> <metric> <value>" for
// run.sh to aggregate; everything else goes to stderr.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "raftstore:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	parent := flag.String("dir", "", "parent of the temporary data directory (default: $TMPDIR); must be a real disk, not tmpfs, or fsync costs nothing")
	scale := flag.Float64("scale", 1, "multiply every step's entry count (0.1 for a quick check)")
	restartN := flag.Int("restart", 50000, "entries written before the restart measurement")
	size := flag.Int("size", 256, "bytes per entry")
	flag.Parse()

	root, err := os.MkdirTemp(*parent, "raftstore-"+storeName+"-")
	if err != nil {
		return fmt.Errorf("make data dir: %w", err)
	}
	// Removed on every return path, including Ctrl-C, so no data is left behind.
	defer os.RemoveAll(root)

	data := make([]byte, *size)
	_, _ = rand.Read(data) // random payload: neither store compresses, but be fair anyway

	if err := runCluster(ctx, root, *scale, data); err != nil {
		return err
	}
	return runRestart(ctx, filepath.Join(root, "restart"), *restartN, data)
}

// emit prints one measurement in the form run.sh parses.
func emit(metric string, value float64) {
	fmt.Printf("RESULT %s %s %.3f\n", storeName, metric, value)
}

// steps are the load levels: concurrent clients and entries applied.
var steps = []struct{ clients, entries int }{{1, 2000}, {16, 5000}, {64, 10000}, {256, 20000}}

// countFSM is the trivial state machine: it only counts applied bytes, so
// the benchmark measures Raft and the log store, not the application.
// Snapshots are never taken (see raftConfig), so they carry nothing.
type countFSM struct{ bytes atomic.Uint64 }

func (f *countFSM) Apply(l *raft.Log) any { f.bytes.Add(uint64(len(l.Data))); return nil }

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errSnapshotsOff }

func (f *countFSM) Restore(rc io.ReadCloser) error { _ = rc.Close(); return errSnapshotsOff }

// errSnapshotsOff would only surface if raftConfig stopped keeping
// snapshots out of reach.
var errSnapshotsOff = errors.New("snapshots are disabled in this benchmark")

// raftConfig is the one tuning used for both stores. Snapshots are pushed
// out of reach so that every run measures the log store alone.
func raftConfig(id string, timeout time.Duration) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = timeout
	c.ElectionTimeout = timeout
	c.LeaderLeaseTimeout = timeout / 2
	c.MaxAppendEntries = 256
	c.BatchApplyCh = true
	c.SnapshotThreshold = 1 << 40
	c.SnapshotInterval = 24 * time.Hour
	c.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft-" + id, Level: hclog.Error, Output: os.Stderr})
	return c
}

// node is one Raft server with the resources Close must release.
type node struct {
	raft   *raft.Raft
	trans  raft.Transport
	store  logStore
	fsm    *countFSM
	opened time.Duration // time openStore took
}

func startNode(dir, id string, timeout time.Duration, trans raft.Transport) (*node, error) {
	t0 := time.Now()
	st, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	opened := time.Since(t0)
	// Both variants sit behind the same 512-entry cache, as Consul runs them.
	cache, err := raft.NewLogCache(512, st)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("log cache: %w", err)
	}
	n := &node{trans: trans, store: st, fsm: &countFSM{}, opened: opened}
	n.raft, err = raft.NewRaft(raftConfig(id, timeout), n.fsm, cache, st, raft.NewDiscardSnapshotStore(), trans)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("start raft %s: %w", id, err)
	}
	return n, nil
}

// Close stops Raft (which ends all its goroutines), then the transport and store.
func (n *node) Close() error {
	err := n.raft.Shutdown().Error()
	if c, ok := n.trans.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return errors.Join(err, n.store.Close())
}

func runCluster(ctx context.Context, root string, scale float64, data []byte) (err error) {
	var nodes []*node
	defer func() {
		for _, n := range nodes {
			err = errors.Join(err, n.Close())
		}
	}()
	var servers []raft.Server
	for i := range 3 {
		id := fmt.Sprintf("n%d", i)
		dir := filepath.Join(root, id)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("make %s: %w", dir, err)
		}
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
		if err != nil {
			return fmt.Errorf("listen %s: %w", id, err)
		}
		n, err := startNode(dir, id, time.Second, trans) // raft's default timeouts
		if err != nil {
			_ = trans.Close()
			return err
		}
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: trans.LocalAddr()})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	leaders := 0
	for _, s := range steps {
		s.entries = max(s.clients, int(float64(s.entries)*scale))
		// A starved shared host can cost the leader its lease; the step is
		// then rerun on the new leader, and the changes are reported.
		var rate float64
		var p50, p99 time.Duration
		for attempt := 0; ; attempt++ {
			leader, err := waitLeader(ctx, nodes)
			if err != nil {
				return err
			}
			rate, p50, p99, err = load(ctx, leader, s.clients, s.entries, data)
			if err == nil {
				break
			}
			if attempt == 2 || !(errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrNotLeader)) {
				return fmt.Errorf("load %d clients: %w", s.clients, err)
			}
			leaders++
			fmt.Fprintf(os.Stderr, "%s c=%d: %v; rerunning\n", storeName, s.clients, err)
		}
		fmt.Fprintf(os.Stderr, "%s c=%d n=%d: %.0f writes/s p50=%v p99=%v\n", storeName, s.clients, s.entries, rate, p50, p99)
		emit(fmt.Sprintf("c%d_writes_per_s", s.clients), rate)
		emit(fmt.Sprintf("c%d_p50_ms", s.clients), ms(p50))
		emit(fmt.Sprintf("c%d_p99_ms", s.clients), ms(p99))
	}
	// Heap is read with the cluster still open: that is what a running node holds.
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	emit("heap_inuse_MiB", float64(m.HeapInuse)/(1<<20))
	emit("peak_rss_MiB", peakRSSMiB())
	emit("leader_changes", float64(leaders))
	return nil
}

// waitLeader polls: raft offers no leader-elected event across several nodes.
func waitLeader(ctx context.Context, nodes []*node) (*raft.Raft, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				return n.raft, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// load applies total entries from the given number of concurrent clients,
// each waiting for its apply to commit before the next, and returns the
// rate and the apply latency percentiles. All clients exit before it returns.
func load(ctx context.Context, r *raft.Raft, clients, total int, data []byte) (float64, time.Duration, time.Duration, error) {
	lat := make([]time.Duration, total)
	var next atomic.Int64
	var mu sync.Mutex
	var errs error
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				t0 := time.Now()
				if err := r.Apply(data, 30*time.Second).Error(); err != nil {
					mu.Lock()
					errs = errors.Join(errs, err)
					mu.Unlock()
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if errs != nil {
		return 0, 0, 0, errs
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	slices.Sort(lat)
	return float64(total) / elapsed.Seconds(), lat[total/2], lat[total*99/100], nil
}

// runRestart fills a single-node log with n entries, closes it, and times
// reopening it: store open, NewRaft (which reads every entry after the last
// snapshot looking for configuration changes), the first read of the last
// entry, and the FSM replay once the node has re-elected itself.
func runRestart(ctx context.Context, dir string, n int, data []byte) (err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	const id, addr = "r0", raft.ServerAddress("r0")
	_, trans := raft.NewInmemTransport(addr)
	nd, err := startNode(dir, id, 100*time.Millisecond, trans)
	if err != nil {
		return err
	}
	cfg := raft.Configuration{Servers: []raft.Server{{ID: id, Address: addr}}}
	err = nd.raft.BootstrapCluster(cfg).Error()
	if err == nil {
		_, err = waitLeader(ctx, []*node{nd})
	}
	if err == nil {
		_, _, _, err = load(ctx, nd.raft, 256, n, data)
	}
	if err = errors.Join(err, nd.Close()); err != nil {
		return fmt.Errorf("fill %d entries: %w", n, err)
	}
	apparent, alloc, err := diskUsage(dir)
	if err != nil {
		return err
	}
	emit("disk_apparent_MiB", apparent/(1<<20))
	emit("disk_allocated_MiB", alloc/(1<<20))

	start := time.Now()
	_, trans = raft.NewInmemTransport(addr)
	nd, err = startNode(dir, id, 100*time.Millisecond, trans)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, nd.Close()) }()
	last, err := nd.store.LastIndex()
	if err != nil {
		return fmt.Errorf("last index: %w", err)
	}
	var l raft.Log
	if err := nd.store.GetLog(last, &l); err != nil {
		return fmt.Errorf("read log %d: %w", last, err)
	}
	emit("restart_open_store_ms", ms(nd.opened))
	emit("restart_to_first_log_ms", ms(time.Since(start)))

	select {
	case <-nd.raft.LeaderCh():
	case <-ctx.Done():
		return ctx.Err()
	}
	t0 := time.Now() // replay excludes the randomized election wait
	if err := nd.raft.Barrier(time.Minute).Error(); err != nil {
		return fmt.Errorf("replay barrier: %w", err)
	}
	emit("replay_fsm_ms", ms(time.Since(t0)))
	if got, want := nd.fsm.bytes.Load(), uint64(n*len(data)); got != want {
		return fmt.Errorf("replayed %d bytes, want %d", got, want)
	}
	return err
}

// diskUsage returns the apparent size and the allocated blocks under dir,
// which differ for sparse or preallocated files.
func diskUsage(dir string) (apparent, alloc float64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		apparent += float64(fi.Size())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += float64(st.Blocks) * 512
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measure %s: %w", dir, err)
	}
	return apparent, alloc, nil
}

// peakRSSMiB is the process's peak resident set, which unlike the Go heap
// includes bbolt's mmap of its file.
func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
