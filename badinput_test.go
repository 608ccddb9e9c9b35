package buoy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recorder is a TCP proxy that keeps every byte the client sent.
type recorder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sent   []*syncBuffer // per connection, client→server, growing live
	wg     sync.WaitGroup
}

func newRecorder(t *testing.T, target string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, target: target}
	r.wg.Go(r.serve)
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *recorder) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Go(func() {
			defer c.Close()
			s, err := net.Dial("tcp", r.target)
			if err != nil {
				return
			}
			defer s.Close()
			buf := &syncBuffer{}
			r.mu.Lock()
			r.sent = append(r.sent, buf)
			r.mu.Unlock()
			done := make(chan struct{})
			go func() { // ends when either side closes
				io.Copy(c, s)
				c.Close()
				close(done)
			}()
			io.Copy(io.MultiWriter(s, buf), c)
			s.Close()
			<-done
		})
	}
}

func startNode(t *testing.T, ctx context.Context, cfg buoy.Config) *buoy.Node {
	t.Helper()
	n, err := buoy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.WaitReady(ctx); err != nil {
		t.Fatalf("%s: %v", cfg.Name, err)
	}
	return n
}

// Bytes that are not a member's TLS 1.3 session — garbage, plain HTTP, a
// TLS 1.2 client, and the raw bytes of a real captured peer session
// replayed — are each refused by a running node, which closes the
// connection, logs why, and goes on serving.
func TestPeerPortRefusesBadInputAndReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := startNode(t, ctx, buoy.Config{Name: "pi9", DataDir: filepath.Join(dir, "pi9"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-", Bootstrap: true, Logger: log})
	tok, err := a.CreateToken(ctx, buoy.TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	// pi2 joins through the recorder, which captures a full member session (handshake, Raft, RPCs).
	// pi2 cannot be dialed (its peer listener is closed, as behind a NAT),
	// so the only session is the one it dials, through the recorder.
	rec := newRecorder(t, a.ListenAddr().String())
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	b := startNode(t, ctx, buoy.Config{Name: "pi2", DataDir: filepath.Join(dir, "pi2"), PeerListener: closed, HTTPAddr: "-", Join: []string{rec.ln.Addr().String()}, Token: tok.Token})
	if _, err := b.CreateToken(ctx, buoy.TokenRequest{TTL: "1m"}); err != nil { // a forwarded write over the link
		t.Fatal(err)
	}
	var captured []byte
	for len(captured) < 4096 { // a handshake, Raft traffic and an RPC at least
		rec.mu.Lock()
		for _, s := range rec.sent {
			if b := []byte(s.String()); len(b) > len(captured) {
				captured = b
			}
		}
		rec.mu.Unlock()
		if ctx.Err() != nil {
			var sizes []int
			rec.mu.Lock()
			for _, s := range rec.sent {
				sizes = append(sizes, len(s.String()))
			}
			rec.mu.Unlock()
			ms, _ := b.Members(context.Background())
			t.Fatalf("recorder captured no member session (client→server bytes per connection: %v); pi2 sees %+v", sizes, ms)
		}
		time.Sleep(20 * time.Millisecond)
	}

	tls12 := func(c net.Conn) {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		tc.Handshake()
	}
	tests := []struct {
		name string
		send func(net.Conn)
	}{
		{"random bytes", func(c net.Conn) { c.Write(bytes.Repeat([]byte{0x16, 0x03, 0x99, 0xff}, 64)) }},
		{"plain HTTP", func(c net.Conn) { io.WriteString(c, "GET / HTTP/1.1\r\nHost: pi9\r\n\r\n") }},
		{"TLS 1.2 client", tls12},
		{"replayed session", func(c net.Conn) { c.Write(captured) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := strings.Count(logs.String(), "peer connection refused")
			c, err := net.Dial("tcp", a.ListenAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(15 * time.Second))
			tt.send(c)
			// The node must close the connection without serving anything
			// a member would get.
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("node kept the connection open for 15 s after %s", tt.name)
			}
			for strings.Count(logs.String(), "peer connection refused") == before {
				if ctx.Err() != nil {
					t.Fatalf("no refusal logged for %s", tt.name)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	// Still serving: a write commits, and the real session was not disturbed.
	if _, err := b.CreateToken(ctx, buoy.TokenRequest{TTL: "1m"}); err != nil {
		t.Fatalf("after bad input: %v", err)
	}
	if t.Failed() {
		t.Log(logs.String())
	}
}
