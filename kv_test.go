package buoy_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"buoy"
)

// threeNodes starts a 3-node cluster on loopback and returns it leader first.
func threeNodes(t *testing.T, ctx context.Context) []*buoy.Node {
	t.Helper()
	dir := t.TempDir()
	a := startNode(t, ctx, buoy.Config{Name: "n1", DataDir: filepath.Join(dir, "n1"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-", Bootstrap: true})
	tok, err := a.CreateToken(ctx, buoy.TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*buoy.Node{a}
	for _, name := range []string{"n2", "n3"} {
		nodes = append(nodes, startNode(t, ctx, buoy.Config{Name: name, DataDir: filepath.Join(dir, name), PeerAddr: "127.0.0.1:0", HTTPAddr: "-",
			Join: []string{a.ListenAddr().String()}, Token: tok.Token}))
	}
	return nodes
}

func TestKVAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := threeNodes(t, ctx)
	w, r := nodes[2].KV(), nodes[1].KV()

	// A watch from before the write sees it.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	watch := r.Watch(wctx, "app/", 0)

	e, err := w.Put(ctx, "app/greeting", []byte("hello"), buoy.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := r.Get(ctx, "app/greeting", buoy.ReadOptions{})
	if err != nil || string(got.Value) != "hello" || got.ModifyIndex != e.ModifyIndex {
		t.Fatalf("linearizable Get on another node = %+v, %v; want the committed put %+v", got, err, e)
	}
	stale := uint64(1)
	if _, err := w.Put(ctx, "app/greeting", []byte("x"), buoy.PutOptions{CAS: &stale}); !errors.Is(err, buoy.ErrKVCheckFailed) {
		t.Errorf("CAS with a stale index = %v, want ErrKVCheckFailed", err)
	}
	zero := uint64(0)
	if _, err := w.Put(ctx, "app/greeting", []byte("x"), buoy.PutOptions{CAS: &zero}); !errors.Is(err, buoy.ErrKVCheckFailed) {
		t.Errorf("create-only CAS on an existing key = %v, want ErrKVCheckFailed", err)
	}
	if _, err := w.Put(ctx, "app/greeting", []byte("hi"), buoy.PutOptions{CAS: &e.ModifyIndex}); err != nil {
		t.Errorf("CAS with the current index = %v", err)
	}
	select {
	case ev := <-watch:
		if ev.Err != nil || len(ev.Events) == 0 || ev.Events[0].Entry.Key != "app/greeting" {
			t.Errorf("watch = %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("watch saw nothing")
	}

	// A TTL key disappears on every node, through the log.
	if _, err := w.Put(ctx, "app/tmp", []byte("1"), buoy.PutOptions{TTL: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		for {
			_, _, err := n.KV().Get(ctx, "app/tmp", buoy.ReadOptions{Stale: true})
			if errors.Is(err, buoy.ErrKVNotFound) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: app/tmp never expired: %v", n.Name(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Oversized and invalid input is refused before it reaches the log.
	for _, tc := range []struct {
		key string
		val []byte
	}{{string(make([]byte, 600)), nil}, {"ok", make([]byte, 600<<10)}, {"bad\xff", nil}, {"", nil}} {
		if _, err := w.Put(ctx, tc.key, tc.val, buoy.PutOptions{}); err == nil {
			t.Errorf("Put(key of %d bytes, value of %d bytes) accepted", len(tc.key), len(tc.val))
		}
	}
	list, _, err := r.List(ctx, "app/", buoy.ReadOptions{Stale: true})
	if err != nil || len(list) != 1 {
		t.Errorf("List = %v, %v", fmt.Sprint(list), err)
	}
}

// A write that returned is seen by a linearizable read on any other node,
// at once: the reader waits for its state machine, not for Raft's applied
// index, which moves before the state machine has run.
func TestKVReadAfterWriteOnAnotherNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	nodes := threeNodes(t, ctx)
	for i := range 200 {
		w, r := nodes[i%3].KV(), nodes[(i+1)%3].KV()
		key := fmt.Sprintf("rw/%d", i)
		if _, err := w.Put(ctx, key, []byte("v"), buoy.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Get(ctx, key, buoy.ReadOptions{}); err != nil {
			t.Fatalf("write %d on %s, then read on %s: %v", i, nodes[i%3].Name(), nodes[(i+1)%3].Name(), err)
		}
	}
}
