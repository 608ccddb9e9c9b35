// Package consensus wires hashicorp/raft into Buoy: a stream layer that runs
// Raft over peer links addressed by node name, the log and snapshot stores
// under the data dir, bootstrap, request forwarding to the leader over rpc
// streams, and the leader's reconciliation of Raft's configuration with the
// member list.
package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"buoy/internal/store"
)

// Timing holds Raft's timeouts. The zero value means hashicorp/raft's
// defaults (heartbeat and election timeouts of 1 s), which suit home links.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
}

// Storage is Raft's persistent state. Leave it nil in Config to use the
// data dir; tests pass in-memory stores (and keep them across a simulated
// restart).
type Storage struct {
	Logs   raft.LogStore
	Stable raft.StableStore
	Snaps  raft.SnapshotStore
	closer io.Closer
}

// Config configures a Node.
type Config struct {
	Name string
	// Dir is the data dir; Raft keeps its files under Dir/raft. Ignored
	// when Storage is set.
	Dir     string
	Storage *Storage
	FSM     *store.FSM
	// RaftListener and RPCListener deliver streams of kind raft and rpc
	// opened by peers; Dial opens them.
	RaftListener net.Listener
	RPCListener  net.Listener
	Dial         Dialer
	Logger       *slog.Logger
	Timing       Timing
	// Now is the clock used to stamp commands (the leader's time). nil:
	// time.Now.
	Now func() time.Time
}

// Node is this process's Raft participant.
type Node struct {
	cfg         Config
	log         *slog.Logger
	raft        *raft.Raft
	transport   *raft.NetworkTransport
	storage     *Storage
	handlers    map[string]Handler
	rawHandlers map[string]RawHandler
	streams     *streamLayer
	rpc         rpcPool // idle streams of forwarded calls, for reuse

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	barrierTerm atomic.Uint64 // the term whose barrier has committed

	closeOnce sync.Once
	closeErr  error
}

// OpenDiskStorage opens (creating if needed) the Raft stores under dir.
func OpenDiskStorage(dir string, log *slog.Logger) (*Storage, error) {
	rdir := filepath.Join(dir, "raft")
	walDir := filepath.Join(rdir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("raft storage: %w", err)
	}
	// raft-wal v0.4.0's WAL.Close does not close the bolt file holding its
	// metadata, which keeps that file's flock: opening the same dir again
	// in this process (a node restarted by an embedding program or a test)
	// would wait for the lock forever. So the meta store is ours to close.
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(walDir, wal.WithMetaStore(meta), wal.WithSegmentFiler(newTruncatedSegmentFiler(walDir)), wal.WithLogger(newHCLogger(log, "raft-wal")), wal.WithSegmentSize(16<<20))
	if err != nil {
		meta.Close()
		return nil, fmt.Errorf("raft storage: open log %s: %w", walDir, err)
	}
	closer := closers{w, meta} // the WAL first: it stops writing to meta
	snaps, err := raft.NewFileSnapshotStoreWithLogger(rdir, 2, newHCLogger(log, "raft-snapshots"))
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("raft storage: snapshots in %s: %w", rdir, err)
	}
	// The cache keeps recent entries in memory so replication to followers
	// does not read them back from disk (as Consul does).
	logs, err := raft.NewLogCache(512, w)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("raft storage: %w", err)
	}
	return &Storage{Logs: logs, Stable: w, Snaps: snaps, closer: closer}, nil
}

// closers closes each of its members in order and joins their errors.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// NewMemStorage returns in-memory stores, for tests.
func NewMemStorage() *Storage {
	m := raft.NewInmemStore()
	return &Storage{Logs: m, Stable: m, Snaps: raft.NewInmemSnapshotStore()}
}

// Open creates the Raft node. It does not join or bootstrap anything: a node
// with existing state resumes it; a new one waits to be added by a leader
// unless Bootstrap is called.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st := cfg.Storage
	if st == nil {
		var err error
		if st, err = OpenDiskStorage(cfg.Dir, cfg.Logger); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger,
		storage:     st,
		handlers:    map[string]Handler{},
		rawHandlers: map[string]RawHandler{},
		ctx:         ctx,
		cancel:      cancel,
	}
	n.handlers[opApply] = n.handleApply
	n.handlers[opReadIndex] = func(ctx context.Context, _ string, _ json.RawMessage) (any, error) {
		return n.readIndexLocal(ctx)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.Logger = newHCLogger(cfg.Logger, "raft")
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	if t := cfg.Timing; t.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = t.HeartbeatTimeout
		rc.ElectionTimeout = t.ElectionTimeout
		rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
		rc.CommitTimeout = t.CommitTimeout
	}
	sl := &streamLayer{name: cfg.Name, ln: cfg.RaftListener, dial: cfg.Dial, ctx: ctx}
	n.streams = sl
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  sl,
		MaxPool: 3,
		// 1 turns off pipelined replication. With raft v1.8.0's pipeline
		// (whose channels hold MaxRPCsInFlight-2 entries, none by
		// default), a follower answering Success=false ends the decoder
		// while the sender may still pick one more send, which then
		// blocks for good: replication to that follower stops (its
		// heartbeats go on, so nobody notices) and Raft's Shutdown never
		// returns. The whole-cluster linearizability test hit it on
		// every few runs. Each AppendEntries already carries up to
		// MaxAppendEntries entries.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          newHCLogger(cfg.Logger, "raft-net"),
	})
	r, err := raft.NewRaft(rc, cfg.FSM, st.Logs, st.Stable, st.Snaps, n.transport)
	if err != nil {
		cancel()
		n.transport.Close()
		if st.closer != nil {
			st.closer.Close()
		}
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.wg.Go(n.serveRPC)
	return n, nil
}

// HasState reports whether storage holds an existing Raft state (this node
// was part of a cluster before).
func HasState(st *Storage) (bool, error) {
	return raft.HasExistingState(st.Logs, st.Stable, st.Snaps)
}

// Bootstrap makes this node the single voter of a new cluster.
func (n *Node) Bootstrap() error {
	cfg := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(n.cfg.Name),
		Address:  raft.ServerAddress(n.cfg.Name),
	}}}
	if err := n.raft.BootstrapCluster(cfg).Error(); err != nil {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// Leader returns the current leader's name, or "" if none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Raft exposes the underlying raft.Raft for stats and observers.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Stats is a summary of this node's Raft state.
type Stats struct {
	State        string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
}

// Stats returns a summary of this node's Raft state.
func (n *Node) Stats() Stats {
	return Stats{
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastIndex:    n.raft.LastIndex(),
	}
}

// Servers returns Raft's latest configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}

const opApply = "apply"

// Apply commits c through Raft and returns the FSM's answer. On a follower
// the command is forwarded to the leader; across a leader change it retries
// until ctx ends. The leader stamps c.At with its own clock.
func (n *Node) Apply(ctx context.Context, c store.Command) error {
	return n.OnLeader(ctx, opApply, c, nil, func(ctx context.Context) (any, error) {
		return nil, n.applyLocal(ctx, c)
	})
}

func (n *Node) handleApply(ctx context.Context, from string, body json.RawMessage) (any, error) {
	var c store.Command
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("%w: apply from %s: %v", store.ErrInvalidInput, from, err)
	}
	return nil, n.applyLocal(ctx, c)
}

func (n *Node) applyLocal(ctx context.Context, c store.Command) error {
	if !n.IsLeader() {
		return store.ErrNotLeader
	}
	c.At = n.cfg.Now().UTC()
	b, err := c.Encode()
	if err != nil {
		return err
	}
	// Refuse a malformed command here rather than commit it for every
	// node to refuse.
	if _, err := store.DecodeCommand(b); err != nil {
		return err
	}
	out, err := n.ApplyRaw(ctx, b)
	if err != nil {
		return fmt.Errorf("raft apply %s: %w", c.Op, err)
	}
	if err, ok := out.(error); ok && err != nil {
		return err
	}
	return nil
}

// Now is the clock commands are stamped with.
func (n *Node) Now() time.Time { return n.cfg.Now().UTC() }

// ApplyRaw commits an already encoded entry on the leader and returns the
// FSM's answer (a value or an error). It does not forward: callers use
// OnLeader.
func (n *Node) ApplyRaw(ctx context.Context, b []byte) (any, error) {
	return n.ApplyRawAsync(ctx, b)()
}

// ApplyRawAsync is ApplyRaw in two steps: it hands b to Raft and returns
// a function that waits for the outcome. A caller with many entries hands
// them all over before waiting, so that Raft logs them in one batch
// without a goroutine each.
func (n *Node) ApplyRawAsync(ctx context.Context, b []byte) func() (any, error) {
	if !n.IsLeader() {
		return func() (any, error) { return nil, store.ErrNotLeader }
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft.Apply(b, timeout)
	return func() (any, error) {
		if err := f.Error(); err != nil {
			// ErrNotLeader: the entry never reached the log, another leader
			// may take it. ErrLeadershipLost: it is in the log and may still
			// be committed by the next leader; sending it again could apply
			// it twice.
			if errors.Is(err, raft.ErrNotLeader) {
				return nil, fmt.Errorf("%w: %v", store.ErrNotLeader, err)
			}
			if errors.Is(err, raft.ErrLeadershipLost) {
				return nil, fmt.Errorf("%w: %v", store.ErrOutcomeUnknown, err)
			}
			return nil, err
		}
		return f.Response(), nil
	}
}

const opReadIndex = "readindex"

// ReadIndex returns an index such that a state applied through it reflects
// every write committed before the call: the leader's commit index,
// confirmed by a round of heartbeats to a quorum (the read-index
// protocol). A follower asks the leader. It fails when no quorum answers,
// which is what makes a read linearizable or refused.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	// A read whose answer was lost is safe to ask again: OnLeader retries.
	var idx uint64
	err := n.OnLeader(ctx, opReadIndex, struct{}{}, &idx, func(ctx context.Context) (any, error) {
		return n.readIndexLocal(ctx)
	})
	return idx, err
}

func (n *Node) readIndexLocal(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, store.ErrNotLeader
	}
	// A new leader's commit index is only trustworthy once an entry of its
	// own term has committed: one barrier per term makes sure.
	term := n.raft.CurrentTerm()
	if n.barrierTerm.Load() != term {
		timeout := 10 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		if err := n.raft.Barrier(timeout).Error(); err != nil {
			return 0, fmt.Errorf("%w: %v", store.ErrNoQuorum, err)
		}
		n.barrierTerm.Store(term)
	}
	idx := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w: %v", store.ErrNotLeader, err)
		}
		return 0, fmt.Errorf("%w: %v", store.ErrNoQuorum, err)
	}
	return n.lastFSMEntry(idx), nil
}

// lastFSMEntry returns the index of the last entry at or below idx that
// the state machine sees (commands and configurations; Raft keeps no-ops
// and barriers from it). Readers wait until their state machine has
// applied that index — Raft's own applied index is no proof, it moves
// when entries are queued for the state machine, not when they are
// applied.
func (n *Node) lastFSMEntry(idx uint64) uint64 {
	for i := idx; i > 0 && idx-i < 64; i-- {
		var l raft.Log
		if err := n.storage.Logs.GetLog(i, &l); err != nil {
			return i // compacted into a snapshot the state machine holds
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return idx
}

// OnLeader runs local on this node if it is the leader, otherwise calls op
// with req on the leader. Calls that fail because leadership moved are
// retried, with a short pause, until ctx ends, also one that may already
// have taken effect (store.ErrOutcomeUnknown): op is applied at least
// once, possibly twice. That suits reads, and writes whose repetition is
// harmless or refused; a write whose caller must know whether it applied
// uses OnLeaderAtMostOnce.
func (n *Node) OnLeader(ctx context.Context, op string, req, resp any, local func(context.Context) (any, error)) error {
	return n.onLeader(ctx, op, req, resp, local, true)
}

// OnLeaderAtMostOnce is OnLeader for a write that must not be applied
// twice (a compare-and-set would report a failed check caused by its own
// first application): a call that may have taken effect is not retried
// but fails with store.ErrOutcomeUnknown, for the caller to read and
// decide.
func (n *Node) OnLeaderAtMostOnce(ctx context.Context, op string, req, resp any, local func(context.Context) (any, error)) error {
	return n.onLeader(ctx, op, req, resp, local, false)
}

func (n *Node) onLeader(ctx context.Context, op string, req, resp any, local func(context.Context) (any, error), again bool) error {
	var last error
	for {
		var err error
		if n.IsLeader() {
			var out any
			out, err = local(ctx)
			if err == nil && resp != nil && out != nil {
				err = copyJSON(out, resp)
			}
		} else if leader := n.Leader(); leader != "" {
			err = n.callLeader(ctx, leader, op, req, resp)
		} else {
			err = store.ErrNoLeader
		}
		if err == nil || !retryable(err, again) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", op, ctx.Err(), last)
		case <-n.ctx.Done():
			return fmt.Errorf("%s: node shutting down: %w", op, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retryable errors are those a new leader will not give; of calls that
// may have taken effect, only if again.
func retryable(err error, again bool) bool {
	if errors.Is(err, store.ErrOutcomeUnknown) {
		return again
	}
	if errors.Is(err, store.ErrNotLeader) || errors.Is(err, store.ErrNoLeader) {
		return true
	}
	// A transport error reaching the leader: it may have just died.
	return errors.Is(err, ErrUnreachable)
}

func copyJSON(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

// Close stops Raft and everything this node started, and closes storage.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.rpc.close()
		err := n.raft.Shutdown().Error()
		err = errors.Join(err, n.transport.Close())
		if !n.streams.drain(drainWait) {
			n.log.Warn("raft transport still serving a stream after shutdown; closing storage anyway", "waited", drainWait)
		}
		n.cfg.RPCListener.Close()
		n.wg.Wait()
		if n.storage.closer != nil {
			err = errors.Join(err, n.storage.closer.Close())
		}
		n.closeErr = err
	})
	return n.closeErr
}

// drainWait bounds how long Close waits for Raft's transport to let go of
// the streams it serves (a heartbeat being answered) before it closes the
// storage they may write to.
const drainWait = 10 * time.Second

// ErrCantBootstrap is returned by Bootstrap when Raft already has state.
var ErrCantBootstrap = raft.ErrCantBootstrap
