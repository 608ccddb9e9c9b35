package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"buoy/internal/kv"
)

// FSM applies committed commands and publishes read views. It implements
// raft.BatchingFSM so a batch of entries costs one view publication.
type FSM struct {
	log  *slog.Logger
	view atomic.Pointer[State]

	// mu serialises Apply/ApplyBatch/Restore. Raft already calls them from
	// one goroutine; the lock makes that assumption explicit and cheap.
	mu sync.Mutex
}

// NewFSM returns an FSM holding the empty state.
func NewFSM(log *slog.Logger) *FSM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FSM{log: log}
	f.view.Store(emptyState())
	return f
}

// View returns the current read view. It never blocks.
func (f *FSM) View() *State { return f.view.Load() }

// Apply implements raft.FSM. It returns nil or an error.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.view.Load()
	onlyKV := true
	for _, l := range logs {
		if l.Type == raft.LogCommand && !isKV(l.Data) {
			onlyKV = false
			break
		}
	}
	var s *State
	if onlyKV {
		s = old.shallow()
	} else {
		s = old.clone()
	}
	out := make([]any, len(logs))
	for i, l := range logs {
		s.Index = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		if isKV(l.Data) {
			out[i] = s.applyKV(l.Index, l.Data)
			continue
		}
		c, err := DecodeCommand(l.Data)
		if err != nil {
			// A bad entry is skipped on every node alike; it must not stop
			// the log.
			f.log.Error("skipping log entry", "index", l.Index, "err", err)
			out[i] = err
			continue
		}
		if err := s.apply(l.Index, c); err != nil {
			out[i] = err
		}
	}
	f.publish(old, s)
	return out
}

func (f *FSM) publish(old, s *State) {
	f.view.Store(s)
	close(old.next)
}

// apply changes s in place. s is a private clone until published. An error
// leaves s as it was for this command.
func (s *State) apply(index uint64, c Command) error {
	switch c.Op {
	case OpClusterInit:
		if len(s.Cluster.CACertPEM) > 0 {
			return ErrAlreadyInit
		}
		s.Cluster = *c.Cluster
	case OpMemberJoin:
		return s.applyJoin(index, c)
	case OpMemberAddress:
		m, ok := s.Members[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrNoSuchMember, c.Name)
		}
		m.Address = c.Address
		if c.PeerPort != 0 {
			m.PeerPort = c.PeerPort
		}
		s.Members[c.Name] = m
	case OpMemberLeave:
		m, ok := s.Members[c.Name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrNoSuchMember, c.Name)
		}
		if m.Left {
			return nil // idempotent: a retried leave is not an error
		}
		m.Left, m.LeftAt, m.LeftReason = true, c.At, c.Reason
		s.Members[c.Name] = m
	case OpTokenCreate:
		if _, ok := s.Tokens[c.Token.ID]; ok {
			return ErrTokenExists
		}
		s.Tokens[c.Token.ID] = *c.Token
	case OpTokenRevoke:
		t, ok := s.Tokens[c.ID]
		if !ok {
			return fmt.Errorf("%w: %s", ErrTokenUnknown, c.ID)
		}
		t.Revoked = true
		s.Tokens[c.ID] = t
	case OpZonePut:
		return s.applyZonePut(index, c.Zone)
	case OpZoneDrop:
		return s.applyZoneDrop(c.Origin)
	case OpZoneUpdate:
		return s.applyZoneUpdate(index, c.Update)
	case OpRolePut, OpRoleDelete, OpRoleChange:
		return s.applyRole(index, c)
	}
	return nil
}

func (s *State) applyJoin(index uint64, c Command) error {
	if len(s.Cluster.CACertPEM) == 0 {
		return ErrNotInit
	}
	if s.IsMember(c.Member.Name) {
		return fmt.Errorf("%w: %s", ErrNameTaken, c.Member.Name)
	}
	if c.TokenID == "" {
		if len(s.Current()) > 0 {
			return ErrFirstMember
		}
	} else {
		t, ok := s.Tokens[c.TokenID]
		if !ok {
			return fmt.Errorf("%w: %s", ErrTokenUnknown, c.TokenID)
		}
		if err := t.Usable(c.At); err != nil {
			return err
		}
		t.Uses++
		s.Tokens[c.TokenID] = t
	}
	m := *c.Member
	m.Joined, m.JoinIndex = c.At, index
	m.Left, m.LeftAt, m.LeftReason = false, time.Time{}, ""
	s.Members[m.Name] = m
	return nil
}

// isKV tells key-value entries (binary, see kv.CommandMagic) from the JSON
// commands, by their first byte.
func isKV(b []byte) bool { return len(b) > 0 && b[0] == kv.CommandMagic }

// applyKV applies one key-value entry. It returns the kv.Result, or an
// error (a failed check, a bad entry) that leaves the map unchanged.
func (s *State) applyKV(index uint64, data []byte) any {
	c, err := kv.DecodeCommand(data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	m, res, err := s.KV.Apply(index, &c)
	if err != nil {
		return err
	}
	s.KV = m
	return res
}

// snapshotVersion is the format of snapshots written by this code. Version
// 2 added zones, version 3 the key-value stream after the JSON document,
// version 4 failover roles and their assignments; older versions are
// still read.
const snapshotVersion = 4

type snapshotFile struct {
	Version int               `json:"version"`
	Index   uint64            `json:"index"`
	Cluster Cluster           `json:"cluster"`
	Members map[string]Member `json:"members"`
	Tokens  map[string]Token  `json:"tokens"`

	Zones []zoneSnapshot `json:"zones,omitempty"`

	Roles       []Role          `json:"roles,omitempty"`
	Assignments []assignmentDoc `json:"assignments,omitempty"`
}

// Snapshot implements raft.FSM. Views are immutable, so the snapshot is the
// current pointer and persisting it needs no lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{s: f.view.Load()}, nil
}

// Restore implements raft.FSM: it replaces the state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var sf snapshotFile
	dec := json.NewDecoder(rc)
	if err := dec.Decode(&sf); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if sf.Version < 1 || sf.Version > snapshotVersion {
		return fmt.Errorf("restore snapshot: version %d, this build reads 1 to %d", sf.Version, snapshotVersion)
	}
	kvm := kv.New(kv.Options{})
	if sf.Version >= 3 {
		// The key-value stream follows the JSON document.
		r := bufio.NewReader(io.MultiReader(dec.Buffered(), rc))
		if _, err := r.ReadByte(); err != nil { // the newline Encode wrote
			return fmt.Errorf("restore snapshot: key-value stream: %w", err)
		}
		m, err := kv.ReadSnapshot(r, kv.Options{})
		if err != nil {
			return fmt.Errorf("restore snapshot: key-value stream: %w", err)
		}
		kvm = m
	}
	s := emptyState()
	s.Index, s.Cluster, s.KV = sf.Index, sf.Cluster, kvm
	for k, v := range sf.Members {
		s.Members[k] = v
	}
	for k, v := range sf.Tokens {
		s.Tokens[k] = v
	}
	for _, zs := range sf.Zones {
		z, err := zs.restore()
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		s.Zones[z.Origin] = z
	}
	if err := restoreRoles(s, sf.Roles, sf.Assignments); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(f.view.Load(), s)
	return nil
}

type snapshot struct{ s *State }

func (p *snapshot) Persist(sink raft.SnapshotSink) error {
	sf := snapshotFile{
		Version: snapshotVersion,
		Index:   p.s.Index,
		Cluster: p.s.Cluster,
		Members: p.s.Members,
		Tokens:  p.s.Tokens,
		Zones:   snapshotZones(p.s),

		Roles:       p.s.RoleList(),
		Assignments: snapshotAssignments(p.s),
	}
	w := bufio.NewWriterSize(sink, 1<<20)
	err := json.NewEncoder(w).Encode(sf)
	if err == nil {
		err = p.s.KV.WriteSnapshot(w)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (p *snapshot) Release() {}
