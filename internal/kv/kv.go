// Package kv is the data of Buoy's replicated key-value store: an
// immutable, persistent ordered map from keys to entries, the commands that
// change it (a transaction of checks and operations, applied at a Raft
// index), their binary codec, streaming snapshots, and a bounded log of
// recent changes that watchers read.
//
// Nothing here reads a clock, starts a goroutine or touches a socket, so
// every node that applies the same log computes the same map. Apply returns
// a new *Map sharing all unchanged structure with the old one (a B+tree from
// github.com/benbjohnson/immutable): the store publishes each version and
// readers use it without locks while the next one is built.
package kv

import (
	"encoding/binary"
	"iter"
	"strings"
	"time"

	"github.com/benbjohnson/immutable"
)

// Entry is one key's record. Value is shared between versions of the map:
// callers must not modify it.
type Entry struct {
	Key   string
	Value []byte
	// CreateIndex is the Raft index that created the key; ModifyIndex the one
	// that last wrote it.
	CreateIndex uint64
	ModifyIndex uint64
	// Expires is when the leader will delete the key; zero means never.
	Expires time.Time
}

// Options shape a map's change log (see Changes). The zero value means the
// defaults.
type Options struct {
	// LogEvents is the number of recent changes kept for watchers (at least
	// this many, at most twice, fewer when LogBytes runs out first).
	// Default 4096.
	LogEvents int
	// LogBytes bounds the keys and values held by those changes. Default
	// 64 MiB.
	LogBytes int
}

func (o Options) withDefaults() Options {
	if o.LogEvents <= 0 {
		o.LogEvents = 4096
	}
	if o.LogBytes <= 0 {
		o.LogBytes = 64 << 20
	}
	return o
}

// Map is one immutable version of the key-value data. The zero value is not
// usable; start from New or ReadSnapshot. All methods are safe for
// concurrent use, as no published Map is ever modified.
type Map struct {
	opts    *Options
	entries *immutable.SortedMap[string, *Entry]
	// ttl orders keys with an expiry by (expiry, key); see ttlKey.
	ttl *immutable.SortedMap[string, struct{}]
	// lastChange is the index of the newest change (or the restored
	// snapshot's).
	lastChange uint64
	changeLog
}

// New returns an empty map.
func New(opts Options) *Map {
	o := opts.withDefaults()
	return &Map{
		opts:    &o,
		entries: immutable.NewSortedMap[string, *Entry](stringComparer{}),
		ttl:     immutable.NewSortedMap[string, struct{}](stringComparer{}),
	}
}

// stringComparer orders keys bytewise, as strings compare in Go; passing it
// avoids the library's type switch on the first insert.
type stringComparer struct{}

// Compare implements immutable.Comparer.
func (stringComparer) Compare(a, b string) int { return strings.Compare(a, b) }

// Len returns the number of keys.
func (m *Map) Len() int { return m.entries.Len() }

// LastChange returns the Raft index of the newest change to the map: the
// index a blocking query or watcher resumes from.
func (m *Map) LastChange() uint64 { return m.lastChange }

// Get returns key's entry.
func (m *Map) Get(key string) (Entry, bool) {
	e, ok := m.entries.Get(key)
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// Scan yields the entries whose key starts with prefix, in key order ("" is
// every entry).
func (m *Map) Scan(prefix string) iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		it := m.entries.Iterator()
		it.Seek(prefix)
		for !it.Done() {
			k, e, _ := it.Next()
			if !strings.HasPrefix(k, prefix) || !yield(*e) {
				return
			}
		}
	}
}

// List returns the entries whose key starts with prefix, in key order.
func (m *Map) List(prefix string) []Entry {
	var out []Entry
	for e := range m.Scan(prefix) {
		out = append(out, e)
	}
	return out
}

// Expiry names a key whose TTL passed, with the modify index the expiry
// command must match.
type Expiry struct {
	Key         string
	ModifyIndex uint64
	Expires     time.Time
}

// Expired lists up to max keys (all if max <= 0) whose expiry is at or
// before now, earliest first. The map never deletes them itself: the leader
// commits an Expire command for them, so every node deletes at the same
// index.
func (m *Map) Expired(now time.Time, max int) []Expiry {
	var out []Expiry
	it := m.ttl.Iterator()
	for !it.Done() && (max <= 0 || len(out) < max) {
		k, _, _ := it.Next()
		exp := fromNanos(int64(be64(k)))
		if exp.After(now) {
			break
		}
		e, _ := m.entries.Get(k[8:])
		out = append(out, Expiry{Key: e.Key, ModifyIndex: e.ModifyIndex, Expires: e.Expires})
	}
	return out
}

// NextExpiry returns the earliest expiry of any key, so the leader knows
// when to look again; ok is false when no key has a TTL.
func (m *Map) NextExpiry() (t time.Time, ok bool) {
	it := m.ttl.Iterator()
	if it.Done() {
		return time.Time{}, false
	}
	k, _, _ := it.Next()
	return fromNanos(int64(be64(k))), true
}

// ttlKey orders the TTL index by expiry then key. Expiries are positive
// nanoseconds (Command.check), so big-endian bytes sort as the times do.
func ttlKey(e *Entry) string {
	var b [8]byte
	n, _ := unixNanos(e.Expires)
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return string(b[:]) + e.Key
}

// be64 reads the big-endian expiry at the start of a TTL index key without
// converting it to a byte slice.
func be64(s string) uint64 {
	var n uint64
	for i := range 8 {
		n = n<<8 | uint64(s[i])
	}
	return n
}
