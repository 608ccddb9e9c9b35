// Package store is Buoy's replicated state machine: the typed commands that
// go through the Raft log, the FSM that applies them, its snapshots, and the
// immutable read views it publishes after every apply. Readers (DNS, the
// API, the peer layer's membership check) load the current view with one
// atomic pointer read and never take a lock.
package store

import (
	"buoy/internal/failover"
	"buoy/internal/kv"
	"maps"
	"slices"
	"strings"
	"time"
)

// State is one immutable view of the replicated state. Nothing reachable
// from a published State is ever modified; an apply builds a new State that
// shares unchanged parts with the old one.
type State struct {
	// Index is the Raft index of the last command applied to this view.
	Index uint64
	// Cluster holds the cluster-wide secrets and settings, set once at
	// bootstrap.
	Cluster Cluster
	// Members by name, including tombstones of members that left or were
	// removed (Left is set).
	Members map[string]Member
	// Tokens by ID.
	Tokens map[string]Token
	// Zones by origin (lowercase, fully qualified). A State shares the
	// ZoneState of every zone an apply did not change with the previous
	// State (see ZonesChanged).
	Zones map[string]*ZoneState
	// KV is the key-value store; never nil.
	KV *kv.Map
	// Roles holds the failover roles by name, Assignments their committed
	// assignments (also of roles since deleted, whose epochs must go on
	// growing if they are defined again).
	Roles       map[string]Role
	Assignments map[string]failover.Assignment
	// RolesIndex changes whenever Roles or Assignments do (the index of the
	// last role command applied, or of a restored snapshot), so that a
	// reader can skip views that only changed elsewhere.
	RolesIndex uint64

	// next is closed when a newer view replaces this one.
	next chan struct{}
}

// Cluster is the state every member needs to act as leader: the CA that
// signs joining nodes. The CA key is replicated only among members, over
// mutually authenticated links, and stored in their data dirs; the API never
// shows it.
type Cluster struct {
	Name      string `json:"name"`
	CACertPEM []byte `json:"ca_cert_pem"`
	CAKeyPEM  []byte `json:"ca_key_pem"`
}

// Member is one node of the cluster as recorded in the log. Whether it is a
// voter is Raft's configuration, not this record.
type Member struct {
	Name string `json:"name"`
	// Address is the host:port other nodes dial, as learned from peers'
	// observations (never from the node's own interfaces). Empty if unknown.
	Address string `json:"address,omitempty"`
	// PeerPort is the port the member accepts peer links on (0: it only
	// dials out).
	PeerPort int `json:"peer_port,omitempty"`
	// PublicKey is the member's Ed25519 node key, from the certificate the
	// leader signed at its join. Address records the member signs are
	// checked against it, so no member can speak for another.
	PublicKey []byte `json:"public_key,omitempty"`
	// Joined is the leader's clock when the member was admitted.
	Joined time.Time `json:"joined"`
	// JoinIndex orders members by admission (the Raft index of the join).
	JoinIndex uint64 `json:"join_index"`
	// Left is set when the member left or was removed; its certificate is
	// refused from then on. Reason says which.
	Left       bool      `json:"left,omitempty"`
	LeftAt     time.Time `json:"left_at,omitzero"`
	LeftReason string    `json:"left_reason,omitempty"`
}

// Token is a join token as stored: only the hash of its secret.
type Token struct {
	ID          string    `json:"id"`
	SecretHash  string    `json:"secret_hash"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	MaxUses     int       `json:"max_uses,omitempty"` // 0: unlimited until it expires
	Uses        int       `json:"uses"`
	Revoked     bool      `json:"revoked,omitempty"`
	Description string    `json:"description,omitempty"`
}

// Usable reports whether t admits a join at time now, and if not, why.
func (t Token) Usable(now time.Time) error {
	switch {
	case t.Revoked:
		return ErrTokenRevoked
	case !now.Before(t.Expires):
		return ErrTokenExpired
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return ErrTokenUsedUp
	}
	return nil
}

// IsMember reports whether name is a current (not departed) member. The peer
// layer asks this at every handshake.
func (s *State) IsMember(name string) bool {
	m, ok := s.Members[name]
	return ok && !m.Left
}

// Current lists the current members ordered by admission.
func (s *State) Current() []Member {
	out := make([]Member, 0, len(s.Members))
	for _, m := range s.Members {
		if !m.Left {
			out = append(out, m)
		}
	}
	sortMembers(out)
	return out
}

// All lists members including tombstones, ordered by admission.
func (s *State) All() []Member {
	out := make([]Member, 0, len(s.Members))
	for _, m := range s.Members {
		out = append(out, m)
	}
	sortMembers(out)
	return out
}

// TokenList lists tokens ordered by creation time.
func (s *State) TokenList() []Token {
	out := make([]Token, 0, len(s.Tokens))
	for _, t := range s.Tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Token) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Next returns a channel closed when a newer view is published.
func (s *State) Next() <-chan struct{} { return s.next }

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		if a.JoinIndex != b.JoinIndex {
			if a.JoinIndex < b.JoinIndex {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// clone returns a shallow copy of s with fresh top-level maps, ready to be
// modified by one apply and then published.
func (s *State) clone() *State {
	n := &State{
		Index:   s.Index,
		Cluster: s.Cluster,
		Members: make(map[string]Member, len(s.Members)+1),
		Tokens:  make(map[string]Token, len(s.Tokens)+1),
		Zones:   maps.Clone(s.Zones),
		KV:      s.KV,
		next:    make(chan struct{}),

		Roles:       maps.Clone(s.Roles),
		Assignments: maps.Clone(s.Assignments),
		RolesIndex:  s.RolesIndex,
	}
	for k, v := range s.Members {
		n.Members[k] = v
	}
	for k, v := range s.Tokens {
		n.Tokens[k] = v
	}
	return n
}

func emptyState() *State {
	return &State{
		Members: map[string]Member{},
		Tokens:  map[string]Token{},
		Zones:   map[string]*ZoneState{},
		KV:      kv.New(kv.Options{}),
		next:    make(chan struct{}),

		Roles:       map[string]Role{},
		Assignments: map[string]failover.Assignment{},
	}
}

// shallow returns a copy of s sharing every map, for a batch that changes
// only the key-value store (the common case under load: no map copying).
func (s *State) shallow() *State {
	n := *s
	n.next = make(chan struct{})
	return &n
}
