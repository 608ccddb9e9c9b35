package store

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"buoy/internal/kv"
)

func kvEntry(t *testing.T, index uint64, c kv.Command) *raft.Log {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: b}
}

// Key-value entries share the log with the JSON commands: both kinds in one
// batch apply in order, a failed CAS changes nothing, and a snapshot holds
// the map next to everything else.
func TestKVInTheLog(t *testing.T) {
	f := bootstrapped(t)
	base := f.View().Index
	before := f.View()
	res := f.ApplyBatch([]*raft.Log{
		kvEntry(t, base+1, kv.Put("app/a", []byte("1"), time.Time{})),
		entry(t, base+2, Command{Op: OpTokenRevoke, At: t0, ID: "tok1"}),
		kvEntry(t, base+3, kv.Put("app/b", []byte("2"), time.Time{})),
		kvEntry(t, base+4, kv.Command{Checks: []kv.Check{kv.CAS("app/a", 999)}, Ops: kv.Put("app/a", []byte("x"), time.Time{}).Ops}),
	})
	if r, ok := res[0].(kv.Result); !ok || r.Index != base+1 {
		t.Fatalf("put result = %#v", res[0])
	}
	if err, _ := res[3].(error); !errors.Is(err, kv.ErrCheckFailed) {
		t.Fatalf("stale CAS = %v, want ErrCheckFailed", res[3])
	}
	s := f.View()
	if e, ok := s.KV.Get("app/a"); !ok || string(e.Value) != "1" || e.ModifyIndex != base+1 {
		t.Errorf("app/a = %+v, %v", e, ok)
	}
	if !s.Tokens["tok1"].Revoked {
		t.Error("JSON command in a mixed batch not applied")
	}
	if _, ok := before.KV.Get("app/a"); ok {
		t.Error("an older view saw a later put")
	}

	snap, _ := f.Snapshot()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if e, ok := g.View().KV.Get("app/b"); !ok || string(e.Value) != "2" || g.View().KV.Len() != 2 {
		t.Errorf("restored kv: app/b = %+v %v, len %d", e, ok, g.View().KV.Len())
	}
	if !g.View().IsMember("pi1") {
		t.Error("restored state lost members")
	}
}
