package kv

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// EventKind says what a change did.
type EventKind uint8

// Event kinds.
const (
	EventPut    EventKind = 1
	EventDelete EventKind = 2
	// EventExpire is a delete caused by the key's TTL.
	EventExpire EventKind = 3
)

// String returns the kind as the API spells it: put, delete or expire.
func (k EventKind) String() string {
	switch k {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventExpire:
		return "expire"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one change to one key. Every operation of a command that changes
// a key makes one, all with the command's index, in operation order.
type Event struct {
	// Index is the Raft index of the command.
	Index uint64
	Kind  EventKind
	// Entry is the key's new entry for a put. For a delete or expiry it has
	// Key, CreateIndex and ModifyIndex (the index of the deletion), no value.
	Entry Entry
}

// The change log is a persistent singly linked list, newest first: each
// version of the map points at its newest event, and appending never
// touches older nodes, so versions share it as they share the B+tree. To
// keep it bounded, an append now and then walks back past the retained
// events and cuts the link to older ones. The cut is the only write to a
// shared node; it is atomic, and a reader that finds a cut link where it
// still needed events reports ErrCompacted instead of skipping them.
type changeLog struct {
	newest *logNode
	// floor is the index of the last change before the first event this
	// log ever had: 0 for a new map, the snapshot's last change after a
	// restore.
	floor uint64
	// base and baseBytes are seq and bytes of the newest dropped event as of
	// the last cut, so an append knows without walking when to cut again.
	base, baseBytes uint64
}

type logNode struct {
	ev Event
	// seq counts events since the log began; bytes adds up their keys and
	// values (including this one).
	seq, bytes uint64
	// prevIndex is the previous event's index (or the log's floor), known
	// even after the link to it is cut.
	prevIndex uint64
	prev      atomic.Pointer[logNode]
}

func eventBytes(ev *Event) uint64 { return uint64(len(ev.Entry.Key) + len(ev.Entry.Value)) }

func (l *changeLog) appendLog(events []Event, o *Options) {
	for _, ev := range events {
		n := &logNode{ev: ev, seq: 1, bytes: eventBytes(&ev), prevIndex: l.floor}
		if p := l.newest; p != nil {
			n.seq, n.bytes, n.prevIndex = p.seq+1, p.bytes+n.bytes, p.ev.Index
			n.prev.Store(p)
		}
		l.newest = n
	}
	top := l.newest
	if top.seq-l.base <= 2*uint64(o.LogEvents) && top.bytes-l.baseBytes <= 2*uint64(o.LogBytes) {
		return
	}
	// Keep the newest LogEvents events, fewer if they hold more than
	// LogBytes, but always the newest one.
	last := top
	for kept := 1; kept < o.LogEvents; kept++ {
		p := last.prev.Load()
		if p == nil || top.bytes-(p.bytes-eventBytes(&p.ev)) > uint64(o.LogBytes) {
			break
		}
		last = p
	}
	last.prev.Store(nil)
	l.base, l.baseBytes = last.seq-1, last.bytes-eventBytes(&last.ev)
}

// Changes returns the changes after index after to keys under prefix ("" for
// all), oldest first; none if nothing changed after it. If the log no
// longer reaches back to after, it returns ErrCompacted: the watcher must
// re-read what it watches and resume from LastChange, never skip silently.
func (m *Map) Changes(after uint64, prefix string) ([]Event, error) {
	if after >= m.lastChange {
		return nil, nil
	}
	if m.newest == nil {
		// Restored from a snapshot with no change since.
		return nil, m.compacted(after, m.floor)
	}
	var out []Event
	for n := m.newest; n.ev.Index > after; {
		if strings.HasPrefix(n.ev.Entry.Key, prefix) {
			out = append(out, n.ev)
		}
		p := n.prev.Load()
		if p == nil {
			if n.prevIndex > after {
				return nil, m.compacted(after, n.prevIndex)
			}
			break
		}
		n = p
	}
	slices.Reverse(out)
	return out, nil
}

// compacted reports that the log covers only changes after index from.
func (m *Map) compacted(after, from uint64) error {
	return fmt.Errorf("changes after index %d: %w: the log covers only changes after index %d; re-read and resume from index %d", after, ErrCompacted, from, m.lastChange)
}
