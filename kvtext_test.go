package buoy_test

import (
	"bufio"
	"context"
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

// TestKVTextProtocol talks to a node's line protocol over loopback: the
// answers come from the replicated store, and the same keys are seen
// through the library.
func TestKVTextProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startNode(t, ctx, buoy.Config{Name: "n1", DataDir: filepath.Join(t.TempDir(), "n1"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-",
		Bootstrap: true, KVTextAddr: "127.0.0.1:0", KVMaxValue: 16})
	addr := n.KVTextAddr()
	if addr == nil {
		t.Fatal("KVTextAddr() = nil with the line protocol enabled")
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	for _, tt := range []struct{ send, want string }{
		{"ping", "PONG"},
		{"kv set motd hello world", "SUCCESS"},
		{"get motd", "hello world"},
		{"set big " + strings.Repeat("v", 17), "ERROR value too large: 17 bytes, the limit is 16"},
		{"kv del motd", "SUCCESS"},
		{"get motd", "ERROR not found"},
		{"set app/x 1", "SUCCESS"},
	} {
		fmt.Fprintf(c, "%s\n", tt.send)
		got, err := r.ReadString('\n')
		if err != nil || strings.TrimSuffix(got, "\n") != tt.want {
			t.Fatalf("%q: got %q, %v; want %q", tt.send, got, err, tt.want)
		}
	}
	e, _, err := n.KV().Get(ctx, "app/x", buoy.ReadOptions{})
	if err != nil || string(e.Value) != "1" {
		t.Errorf("KV().Get(app/x) after the line protocol's set = %q, %v; want 1", e.Value, err)
	}
}

func TestKVTextAddrNeedsToken(t *testing.T) {
	tests := []struct {
		addr, token string
		wantErr     bool
	}{
		{"192.0.2.1:7381", "", true},
		{"[::]:7381", "", true},
		{"nonsense", "", true},
	}
	for _, tt := range tests {
		n, err := buoy.New(buoy.Config{Name: "n1", DataDir: filepath.Join(t.TempDir(), "n1"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-",
			Bootstrap: true, KVTextAddr: tt.addr, HTTPToken: tt.token})
		if err == nil {
			err = n.Start(context.Background())
			n.Close()
		}
		if !errors.Is(err, buoy.ErrConfig) || !strings.Contains(err.Error(), "--kv-text-addr") {
			t.Errorf("start with KVTextAddr %q, token %q = %v, want an ErrConfig naming --kv-text-addr", tt.addr, tt.token, err)
		}
	}
}

// TestKVHTTPWatchEndsOnClose: a node with an open watch stream and a
// blocking query still closes promptly, ending both.
func TestKVHTTPWatchEndsOnClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := buoy.New(buoy.Config{Name: "n1", DataDir: filepath.Join(t.TempDir(), "n1"), PeerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.HTTPAddr().String()
	req, _ := http.NewRequestWithContext(ctx, "PUT", base+"/v1/kv/app/x", strings.NewReader("1"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT = %v, %v", resp, err)
	}
	resp.Body.Close()

	watch, err := http.Get(base + "/v1/kv/app/?watch")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Body.Close()
	br := bufio.NewReader(watch.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": watching") {
		t.Fatalf("watch stream starts with %q, %v", line, err)
	}
	blocked := make(chan error, 1)
	go func() { // ends when the node closes, which ends the request
		resp, err := http.Get(base + "/v1/kv/app/x?index=1000000&wait=10m")
		if err == nil {
			resp.Body.Close()
		}
		blocked <- err
	}()

	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close = %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return with a watch and a blocking query open")
	}
	if rest, err := io.ReadAll(br); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("watch stream after Close: %q, %v; want its end", rest, err)
	}
	select {
	case <-blocked:
	case <-ctx.Done():
		t.Fatal("blocking query still waiting after Close")
	}
}
