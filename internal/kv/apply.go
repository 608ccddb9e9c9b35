package kv

import (
	"bytes"
	"fmt"
)

// Result is what Apply reports for a command that applied.
type Result struct {
	// Index is the Raft index the command applied at.
	Index uint64
	// Ops holds one result per operation, in order.
	Ops []OpResult
}

// OpResult is one operation's outcome.
type OpResult struct {
	Kind OpKind
	// Entry is the new entry (put), the entry read (get, when Found) or the
	// entry removed (delete and expire, when Deleted is 1).
	Entry Entry
	// Found tells whether a get found its key.
	Found bool
	// Deleted counts the keys removed (delete, delete_prefix, expire).
	Deleted int
}

// Apply applies c at Raft index and returns the new version. Every check is
// evaluated first; if one fails, the error is a *CheckError and m is
// returned unchanged. Otherwise all operations apply, each change is
// recorded in the change log at index, and the new map is returned with
// one result per operation. Apply is deterministic: it reads no clock
// (OpExpire compares with c.At).
func (m *Map) Apply(index uint64, c *Command) (*Map, Result, error) {
	if index == 0 || index <= m.lastChange {
		return m, Result{}, fmt.Errorf("apply at index %d: %w: last change at %d", index, ErrIndexOrder, m.lastChange)
	}
	if err := c.check(MaxLimits); err != nil {
		return m, Result{}, fmt.Errorf("apply at index %d: %w", index, err)
	}
	for i := range c.Checks {
		if err := m.eval(i, &c.Checks[i]); err != nil {
			return m, Result{}, err
		}
	}
	w := *m
	res := Result{Index: index, Ops: make([]OpResult, len(c.Ops))}
	var events []Event
	for i := range c.Ops {
		res.Ops[i], events = w.do(index, c, &c.Ops[i], events)
	}
	if len(events) == 0 {
		// Gets, and deletes of absent keys, change nothing: the version stays.
		return m, res, nil
	}
	w.lastChange = index
	w.appendLog(events, w.opts)
	return &w, res, nil
}

func (m *Map) eval(i int, ck *Check) error {
	e, found := m.entries.Get(ck.Key)
	var ok bool
	switch ck.Kind {
	case CheckExists:
		ok = found
	case CheckNotExists:
		ok = !found
	case CheckModifyIndex:
		ok = found && e.ModifyIndex == ck.Index
	case CheckValue:
		ok = found && bytes.Equal(e.Value, ck.Value)
	}
	if ok {
		return nil
	}
	ce := &CheckError{Check: i, Kind: ck.Kind, Key: ck.Key, Found: found}
	if found {
		ce.ModifyIndex = e.ModifyIndex
	}
	return ce
}

// do applies one operation to w, a private copy of the map header, and
// appends the events it causes.
func (w *Map) do(index uint64, c *Command, op *Op, events []Event) (OpResult, []Event) {
	r := OpResult{Kind: op.Kind}
	switch op.Kind {
	case OpPut:
		e := &Entry{Key: op.Key, Value: op.Value, CreateIndex: index, ModifyIndex: index, Expires: op.Expires}
		if old, ok := w.entries.Get(op.Key); ok {
			e.CreateIndex = old.CreateIndex
			w.untrack(old)
		}
		w.entries = w.entries.Set(op.Key, e)
		if !e.Expires.IsZero() {
			w.ttl = w.ttl.Set(ttlKey(e), struct{}{})
		}
		r.Entry = *e
		events = append(events, Event{Index: index, Kind: EventPut, Entry: *e})
	case OpDelete:
		if old, ok := w.entries.Get(op.Key); ok {
			events = w.remove(index, old, EventDelete, events)
			r.Entry, r.Deleted = *old, 1
		}
	case OpDeletePrefix:
		var doomed []*Entry
		it := w.entries.Iterator()
		it.Seek(op.Key)
		for !it.Done() {
			k, e, _ := it.Next()
			if len(k) < len(op.Key) || k[:len(op.Key)] != op.Key {
				break
			}
			doomed = append(doomed, e)
		}
		for _, e := range doomed {
			events = w.remove(index, e, EventDelete, events)
		}
		r.Deleted = len(doomed)
	case OpGet:
		if e, ok := w.entries.Get(op.Key); ok {
			r.Entry, r.Found = *e, true
		}
	case OpExpire:
		old, ok := w.entries.Get(op.Key)
		if ok && old.ModifyIndex == op.Index && !old.Expires.IsZero() && !old.Expires.After(c.At) {
			events = w.remove(index, old, EventExpire, events)
			r.Entry, r.Deleted = *old, 1
		}
	}
	return r, events
}

func (w *Map) remove(index uint64, e *Entry, kind EventKind, events []Event) []Event {
	w.untrack(e)
	w.entries = w.entries.Delete(e.Key)
	return append(events, Event{Index: index, Kind: kind, Entry: Entry{
		Key: e.Key, CreateIndex: e.CreateIndex, ModifyIndex: index,
	}})
}

// untrack removes e from the TTL index.
func (w *Map) untrack(e *Entry) {
	if !e.Expires.IsZero() {
		w.ttl = w.ttl.Delete(ttlKey(e))
	}
}
