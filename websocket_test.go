package buoy_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"buoy"
)

// A node that lives inside another program's web server (here an
// httptest server standing in for it, or for a reverse proxy) is joined and
// reached through a WebSocket at a path of that server.
func TestJoinThroughWebSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	a, err := buoy.New(buoy.Config{Name: "pi1", DataDir: filepath.Join(dir, "pi1"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-", Bootstrap: true})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(a.Handler())
	defer web.Close()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := a.CreateToken(ctx, buoy.TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	url := "ws" + strings.TrimPrefix(web.URL, "http") + "/buoy/peer"
	b, err := buoy.New(buoy.Config{Name: "pi2", DataDir: filepath.Join(dir, "pi2"), PeerAddr: "127.0.0.1:0", HTTPAddr: "-", Join: []string{url}, Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatalf("join through %s: %v", url, err)
	}
	defer b.Close()
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		ms, err := b.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
			if m.Name == "pi1" && m.Address != url {
				t.Errorf("pi1's address as seen by pi2 = %q, want the WebSocket URL %q", m.Address, url)
			}
		}
		if alive == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("members never both alive: %+v", ms)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
