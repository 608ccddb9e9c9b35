package buoy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
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

// TestKVOutcomeUnknown makes a write's outcome unknown for real: the
// leader loses both followers while writes are in its log, steps down
// when its lease runs out, and cannot tell whether the next leader will
// commit them. The library, the HTTP API and the line protocol each say
// so, in their own way, instead of a generic failure or a silent retry.
func TestKVOutcomeUnknown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	a := startNode(t, ctx, buoy.Config{Name: "n1", DataDir: filepath.Join(dir, "n1"), PeerAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0", KVTextAddr: "127.0.0.1:0", Bootstrap: true})
	tok, err := a.CreateToken(ctx, buoy.TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	var followers []*buoy.Node
	for _, name := range []string{"n2", "n3"} {
		followers = append(followers, startNode(t, ctx, buoy.Config{Name: name, DataDir: filepath.Join(dir, name), PeerAddr: "127.0.0.1:0",
			HTTPAddr: "-", Join: []string{a.ListenAddr().String()}, Token: tok.Token}))
	}
	for {
		st, err := a.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Voters == 3 && st.Leader == "n1" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("n1 never led 3 voters: %+v", st)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := a.KV().Put(ctx, "k", []byte("committed"), buoy.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	text, err := net.Dial("tcp", a.KVTextAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer text.Close()
	text.SetDeadline(time.Now().Add(50 * time.Second))

	for _, f := range followers {
		f.Close()
	}
	// The three writes reach the log at once, well within the leader's
	// lease (half a second or more), so none is refused as "no leader".
	lib := make(chan error, 1)
	go func() {
		_, err := a.KV().Put(ctx, "k", []byte("lib"), buoy.PutOptions{})
		lib <- err
	}()
	type httpAnswer struct {
		code int
		body string
		err  error
	}
	web := make(chan httpAnswer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "PUT", "http://"+a.HTTPAddr().String()+"/v1/kv/k", strings.NewReader("http"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			web <- httpAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		web <- httpAnswer{resp.StatusCode, string(b), err}
	}()
	fmt.Fprintf(text, "set k text\n")
	line, err := bufio.NewReader(text).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ERROR outcome unknown: ") || !strings.Contains(line, "get the key") {
		t.Errorf("line protocol set after the quorum went = %q, %v; want ERROR outcome unknown: ... get the key ...", line, err)
	}
	if err := <-lib; !errors.Is(err, buoy.ErrKVOutcomeUnknown) {
		t.Errorf("KV().Put after the quorum went = %v, want %v", err, buoy.ErrKVOutcomeUnknown)
	}
	w := <-web
	var e struct{ Error, Code string }
	if w.err != nil || json.Unmarshal([]byte(w.body), &e) != nil || w.code != http.StatusServiceUnavailable || e.Code != "outcome_unknown" ||
		!strings.Contains(e.Error, "read the key") {
		t.Errorf("HTTP PUT after the quorum went = %d %q, %v; want 503 with code outcome_unknown, saying to read the key", w.code, w.body, w.err)
	}
}
