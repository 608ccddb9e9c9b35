package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buoy/internal/store"
	"buoy/internal/wire"
)

// pipeConn is one end of a net.Pipe that records whether it was closed.
type pipeConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *pipeConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func newPipe() *pipeConn {
	a, b := net.Pipe()
	b.Close()
	return &pipeConn{Conn: a}
}

func TestRPCPool(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, p *rpcPool)
	}{
		{"empty", func(t *testing.T, p *rpcPool) {
			if c := p.get("a", t0); c != nil {
				t.Errorf("get(a) on an empty pool = %v, want nil", c)
			}
		}},
		{"most recent first, per peer", func(t *testing.T, p *rpcPool) {
			c1, c2, other := newPipe(), newPipe(), newPipe()
			p.put("a", c1, t0)
			p.put("a", c2, t0.Add(time.Second))
			p.put("b", other, t0)
			if got := p.get("a", t0.Add(2*time.Second)); got != c2 {
				t.Errorf("get(a) = %p, want the newest %p", got, c2)
			}
			if got := p.get("a", t0.Add(2*time.Second)); got != c1 {
				t.Errorf("second get(a) = %p, want %p", got, c1)
			}
			if got := p.get("a", t0.Add(2*time.Second)); got != nil {
				t.Errorf("third get(a) = %p, want nil", got)
			}
			if got := p.get("b", t0); got != other {
				t.Errorf("get(b) = %p, want %p", got, other)
			}
		}},
		{"stale streams closed, not returned", func(t *testing.T, p *rpcPool) {
			old, older := newPipe(), newPipe()
			p.put("a", older, t0)
			p.put("a", old, t0.Add(time.Second))
			if got := p.get("a", t0.Add(time.Second+idleRPCTimeout)); got != nil {
				t.Errorf("get(a) after the idle timeout = %p, want nil", got)
			}
			if !old.closed.Load() || !older.closed.Load() {
				t.Errorf("stale streams closed: %v, %v; want both", old.closed.Load(), older.closed.Load())
			}
		}},
		{"full pool closes the extra stream", func(t *testing.T, p *rpcPool) {
			var cs []*pipeConn
			for range maxIdleRPC + 1 {
				c := newPipe()
				cs = append(cs, c)
				p.put("a", c, t0)
			}
			if !cs[maxIdleRPC].closed.Load() {
				t.Errorf("stream %d put into a full pool is open, want closed", maxIdleRPC)
			}
			if cs[0].closed.Load() {
				t.Errorf("stream 0 closed, want kept")
			}
		}},
		{"drop closes one peer's streams", func(t *testing.T, p *rpcPool) {
			a, b := newPipe(), newPipe()
			p.put("a", a, t0)
			p.put("b", b, t0)
			p.drop("a")
			if !a.closed.Load() || b.closed.Load() {
				t.Errorf("after drop(a): a closed %v, b closed %v; want true, false", a.closed.Load(), b.closed.Load())
			}
			if got := p.get("a", t0); got != nil {
				t.Errorf("get(a) after drop = %p, want nil", got)
			}
		}},
		{"close closes all and later puts", func(t *testing.T, p *rpcPool) {
			a, late := newPipe(), newPipe()
			p.put("a", a, t0)
			p.close()
			p.put("a", late, t0)
			if !a.closed.Load() || !late.closed.Load() {
				t.Errorf("after close: idle closed %v, later put closed %v; want both", a.closed.Load(), late.closed.Load())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p rpcPool
			defer p.close()
			tt.run(t, &p)
		})
	}
}

// rpcPair is a client Node whose Dial opens an in-memory stream to a
// serving Node, counting the streams opened and keeping the serving ends so
// a test can break them.
type rpcPair struct {
	client, server *Node
	dials          atomic.Int64
	wg             sync.WaitGroup // the serving goroutines; each ends when its stream closes

	mu     sync.Mutex // guards served
	served []net.Conn
}

func newRPCPair(t *testing.T) *rpcPair {
	ctx, cancel := context.WithCancel(context.Background())
	p := &rpcPair{}
	p.server = &Node{log: slog.New(slog.DiscardHandler), handlers: map[string]Handler{}, rawHandlers: map[string]RawHandler{}, ctx: ctx, cancel: cancel}
	p.server.HandleRaw("reverse", func(_ context.Context, _ string, body []byte) ([]byte, error) {
		out := slices.Clone(body)
		slices.Reverse(out)
		return out, nil
	})
	p.server.HandleRaw("fail-raw", func(context.Context, string, []byte) ([]byte, error) {
		return nil, store.ErrNotLeader
	})
	p.server.HandleRaw("huge-raw", func(context.Context, string, []byte) ([]byte, error) {
		return make([]byte, wire.MaxFrame+1), nil
	})
	p.server.Handle("huge", func(context.Context, string, json.RawMessage) (any, error) {
		return make([]byte, wire.MaxFrame), nil // base64: a third larger
	})
	p.server.Handle("echo", func(_ context.Context, _ string, body json.RawMessage) (any, error) {
		var s string
		err := json.Unmarshal(body, &s)
		return s, err
	})
	p.server.Handle("fail", func(context.Context, string, json.RawMessage) (any, error) {
		return nil, store.ErrNotLeader
	})
	p.client = &Node{cfg: Config{Dial: func(_ context.Context, name string, kind wire.Kind) (net.Conn, error) {
		if name != "server" || kind != wire.KindRPC {
			return nil, errors.New("unexpected dial")
		}
		p.dials.Add(1)
		a, b := net.Pipe()
		p.mu.Lock()
		p.served = append(p.served, b)
		p.mu.Unlock()
		p.wg.Go(func() { p.server.serveRPCConn(b) })
		return a, nil
	}}}
	t.Cleanup(func() {
		p.client.rpc.close()
		cancel()
		p.breakAll()
		p.wg.Wait()
	})
	return p
}

// breakAll closes the serving end of every stream opened so far, as a
// dropped link would.
func (p *rpcPair) breakAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.served {
		c.Close()
	}
}

func TestCallReusesStreams(t *testing.T) {
	p := newRPCPair(t)
	call := func(msg string) {
		t.Helper()
		var got string
		if err := p.client.Call(t.Context(), "server", "echo", msg, &got); err != nil || got != msg {
			t.Fatalf("Call(echo %q) = %q, %v; want %q, nil", msg, got, err, msg)
		}
	}

	for _, msg := range []string{"a", "b", "c"} {
		call(msg)
	}
	if n := p.dials.Load(); n != 1 {
		t.Errorf("3 sequential calls opened %d streams, want 1", n)
	}

	// A remote error keeps its sentinel and does not spoil the stream.
	if err := p.client.Call(t.Context(), "server", "fail", nil, nil); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("Call(fail) = %v, want ErrNotLeader", err)
	}
	call("d")
	if n := p.dials.Load(); n != 1 {
		t.Errorf("after a remote error: %d streams opened, want 1", n)
	}

	// The link breaks: the pooled stream fails and the call goes through
	// on a new one.
	p.breakAll()
	call("e")
	if n := p.dials.Load(); n != 2 {
		t.Errorf("after a broken stream: %d streams opened, want 2", n)
	}

	// Concurrent calls each need a stream; afterwards they are all reused.
	const par = 8
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			var got string
			if err := p.client.Call(t.Context(), "server", "echo", "x", &got); err != nil || got != "x" {
				t.Errorf("concurrent Call = %q, %v; want \"x\", nil", got, err)
			}
		})
	}
	wg.Wait()
	before := p.dials.Load()
	if before > 2+par {
		t.Errorf("%d concurrent calls opened %d streams in all, want at most %d", par, before, 2+par)
	}
	call("f")
	if n := p.dials.Load(); n != before {
		t.Errorf("a call after the concurrent ones opened a stream (%d, was %d), want it reused", n, before)
	}
}

func TestCallCancelled(t *testing.T) {
	p := newRPCPair(t)
	block := make(chan struct{})
	p.server.Handle("block", func(ctx context.Context, _ string, _ json.RawMessage) (any, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil, nil
	})
	defer close(block)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := p.client.Call(ctx, "server", "block", nil, nil)
	// The stream's deadline is the context's: either may fire first.
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Call past its deadline = %v, want ErrUnreachable", err)
	}
	// The interrupted stream is not pooled: the next call opens another.
	var got string
	if err := p.client.Call(t.Context(), "server", "echo", "ok", &got); err != nil || got != "ok" {
		t.Fatalf("Call after a cancelled one = %q, %v; want \"ok\", nil", got, err)
	}
	if n := p.dials.Load(); n != 2 {
		t.Errorf("streams opened = %d, want 2 (the cancelled call's is not reused)", n)
	}
}

// TestRawCall: a Raw body travels as bytes and its answer comes back the
// same way, on the pooled streams; a refused raw call keeps its sentinel
// but not its stream.
func TestRawCall(t *testing.T) {
	p := newRPCPair(t)
	body := []byte{0, 1, 0xff, '{', '"'}
	for range 3 {
		var got Raw
		if err := p.client.Call(t.Context(), "server", "reverse", Raw(body), &got); err != nil || string(got) != "\"{\xff\x01\x00" {
			t.Fatalf("Call(reverse %q) = %q, %v", body, got, err)
		}
	}
	if n := p.dials.Load(); n != 1 {
		t.Errorf("3 raw calls opened %d streams, want 1", n)
	}
	var got Raw
	if err := p.client.Call(t.Context(), "server", "fail-raw", Raw(body), &got); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("Call(fail-raw) = %v, want ErrNotLeader", err)
	}
	// A raw call to a JSON op is refused too.
	if err := p.client.Call(t.Context(), "server", "echo", Raw(body), &got); !errors.Is(err, store.ErrInvalidInput) {
		t.Errorf("raw Call(echo) = %v, want ErrInvalidInput", err)
	}
	// The first refused raw call did not put its stream back in the pool:
	// the second opened one.
	if n := p.dials.Load(); n != 2 {
		t.Errorf("after two refused raw calls: %d streams opened, want 2", n)
	}
	// Nor did the second: a JSON call to a raw op opens a stream. It is
	// refused, and its stream is reused.
	if err := p.client.Call(t.Context(), "server", "reverse", "x", nil); !errors.Is(err, store.ErrInvalidInput) {
		t.Errorf("JSON Call(reverse) = %v, want ErrInvalidInput", err)
	}
	var s string
	if err := p.client.Call(t.Context(), "server", "echo", "ok", &s); err != nil || s != "ok" {
		t.Fatalf("Call(echo) after refused calls = %q, %v", s, err)
	}
	if n := p.dials.Load(); n != 3 {
		t.Errorf("after a refused JSON call: %d streams opened, want 3 (its stream reused)", n)
	}
}

// TestRawCallToOldPeer: a peer that predates raw bodies reads the header,
// answers "unknown rpc", then chokes on the raw frame and closes the
// stream. The caller gets ErrInvalidInput (never sent: safe to send
// otherwise), not ErrOutcomeUnknown, and its next call works.
func TestRawCallToOldPeer(t *testing.T) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Loopback TCP rather than net.Pipe: a stream buffers what its peer
	// has not read yet, as yamux does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client := &Node{cfg: Config{Dial: func(ctx context.Context, _ string, _ wire.Kind) (net.Conn, error) {
		a, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		b, err := ln.Accept()
		if err != nil {
			a.Close()
			return nil, err
		}
		wg.Go(func() { // the old serving loop: JSON frames only
			defer b.Close()
			for {
				var req wire.Request
				if err := wire.ReadFrame(b, &req, 0); err != nil {
					return
				}
				resp := wire.Response{Error: fmt.Sprintf("unknown rpc %q", req.Op), Code: store.Code(store.ErrInvalidInput)}
				if req.Op == "echo" {
					resp = wire.Response{Body: req.Body}
				}
				if err := wire.WriteFrame(b, resp); err != nil {
					return
				}
			}
		})
		return a, nil
	}}}
	defer client.rpc.close()
	var got Raw
	err = client.Call(t.Context(), "old", "reverse", Raw("\x00binary"), &got)
	if !errors.Is(err, store.ErrInvalidInput) || errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("raw Call to an old peer = %v, want ErrInvalidInput without ErrOutcomeUnknown", err)
	}
	var s string
	if err := client.Call(t.Context(), "old", "echo", "still", &s); err != nil || s != "still" {
		t.Errorf("Call after the refused raw call = %q, %v; want \"still\"", s, err)
	}
}

// TestCallHugeAnswer: a handler that acted but whose answer is too large
// to send reports an unknown outcome (the caller must not take it for a
// refusal and send the write again), on both kinds of call.
func TestCallHugeAnswer(t *testing.T) {
	p := newRPCPair(t)
	var got Raw
	if err := p.client.Call(t.Context(), "server", "huge-raw", Raw("x"), &got); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("raw Call with a %d-byte answer = %v, want ErrOutcomeUnknown", wire.MaxFrame+1, err)
	}
	var b []byte
	if err := p.client.Call(t.Context(), "server", "huge", nil, &b); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Errorf("Call with a %d-byte answer = %v, want ErrOutcomeUnknown", wire.MaxFrame, err)
	}
	var s string
	if err := p.client.Call(t.Context(), "server", "echo", "after", &s); err != nil || s != "after" {
		t.Errorf("Call after the huge answers = %q, %v; want \"after\"", s, err)
	}
}
