package netsim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// Test addresses come from the documentation ranges (RFC 5737, RFC 3849):
// they exist only inside the simulated network.
var (
	ipA  = netip.MustParseAddr("192.0.2.1")
	ipA2 = netip.MustParseAddr("192.0.2.2")
	ipB  = netip.MustParseAddr("198.51.100.1")
	ipB2 = netip.MustParseAddr("198.51.100.2")
	ipC  = netip.MustParseAddr("203.0.113.1")
	ip6A = netip.MustParseAddr("2001:db8::a")
	ip6B = netip.MustParseAddr("2001:db8::b")
)

// twoHosts returns a network with hosts a (192.0.2.1, 2001:db8::a) and
// b (198.51.100.1, 2001:db8::b), and a listener on b's port 7300.
func twoHosts(t *testing.T) (n *Network, a, b *Host, ln net.Listener) {
	t.Helper()
	n = New()
	a = n.AddHost("a", ipA, ip6A)
	b = n.AddHost("b", ipB, ip6B)
	ln, err := b.Listen("tcp", ":7300")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return n, a, b, ln
}

// connect dials address from h and accepts the connection on ln.
func connect(t *testing.T, h *Host, ln net.Listener, address string) (client, server net.Conn) {
	t.Helper()
	client, err := h.DialContext(context.Background(), "tcp", address)
	if err != nil {
		t.Fatalf("DialContext(%q): %v", address, err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// dialTimeout dials with a context that ends after d.
func dialTimeout(h *Host, address string, d time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return h.DialContext(ctx, "tcp", address)
}

// mustRoundTrip sends msg from w to r and checks it arrives intact.
func mustRoundTrip(t *testing.T, w, r net.Conn, msg string) {
	t.Helper()
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatalf("Write(%q): %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("ReadFull: %v", err)
	}
	if !bytes.Equal(got, []byte(msg)) {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

// isTimeout reports whether err is a deadline error as package net makes
// them: os.ErrDeadlineExceeded and a net.Error with Timeout true.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

// started runs f in a goroutine and returns a channel closed when f returns.
func started(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

func finished(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}
