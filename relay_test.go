package buoy_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"buoy"
	"buoy/internal/netsim"
)

// Two nodes behind two different symmetric NATs have no direct path; they
// reach each other, Raft included, through the public node they both
// reach, and the relay only forwards their own end-to-end TLS session.
func TestRelayBetweenTwoNATs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nw := netsim.New()
	pub := nw.AddHost("pub", netip.MustParseAddr("203.0.113.10"))
	nat1 := nw.AddNAT("nat1", netsim.Symmetric, netip.MustParseAddr("203.0.113.101"))
	nat2 := nw.AddNAT("nat2", netsim.Symmetric, netip.MustParseAddr("203.0.113.102"))
	h1 := nat1.AddHost("a", netip.MustParseAddr("192.0.2.11"))
	h2 := nat2.AddHost("c", netip.MustParseAddr("198.51.100.12"))
	dir := t.TempDir()
	start := func(name string, h *netsim.Host, join string, token string) *buoy.Node {
		l, err := h.Listen("tcp", ":7300")
		if err != nil {
			t.Fatal(err)
		}
		cfg := buoy.Config{
			Name: name, DataDir: filepath.Join(dir, name), PeerListener: l, HTTPAddr: "-",
			Dial:      func(ctx context.Context, addr string) (net.Conn, error) { return h.DialContext(ctx, "tcp", addr) },
			Heartbeat: 200 * time.Millisecond, Logger: testLogger(t),
		}
		if join == "" {
			cfg.Bootstrap = true
		} else {
			cfg.Join, cfg.Token = []string{join}, token
		}
		n, err := buoy.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { n.Close() })
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		return n
	}
	b := start("b", pub, "", "")
	tok, err := b.CreateToken(ctx, buoy.TokenRequest{TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	a := start("a", h1, "203.0.113.10:7300", tok.Token)
	c := start("c", h2, "203.0.113.10:7300", tok.Token)
	for {
		var ac buoy.Peer
		for _, p := range a.Peers() {
			if p.Name == "c" {
				ac = p
			}
		}
		if ac.Linked {
			if ac.Via != "b" {
				t.Errorf("a's link to c goes via %q, want relayed by b", ac.Via)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("a never linked to c: %+v", a.Peers())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The cluster still commits with both NATed nodes in it.
	if _, err := c.CreateToken(ctx, buoy.TokenRequest{TTL: "1m", Description: "via relay"}); err != nil {
		t.Fatal(err)
	}
}

// testLogger logs to the test output when BUOY_TEST_LOG is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BUOY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
