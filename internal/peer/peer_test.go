package peer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"buoy/internal/wire"
)

func TestOpenEchoAllKinds(t *testing.T) {
	for _, size := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			c := newCluster(t)
			var nodes []*testNode
			for i := range size {
				nodes = append(nodes, c.start(fmt.Sprintf("n%d", i), nil))
			}
			for _, from := range nodes {
				for _, to := range nodes {
					if from == to {
						continue
					}
					for _, k := range allKinds {
						roundTrip(t, from, to.name, k)
					}
				}
			}
			for _, n := range nodes {
				links := n.net.Links()
				if len(links) != size-1 {
					t.Errorf("%s: Links() = %v, want %d links", n.name, links, size-1)
				}
				for _, other := range nodes {
					if other != n && !agreed(n, other) {
						t.Errorf("%s and %s do not agree on one link: %v / %v", n.name, other.name, n.net.Links(), other.net.Links())
					}
				}
			}
			for _, n := range nodes {
				for _, k := range allKinds {
					if got, want := n.accepted[k].get(), size-1; got != want {
						t.Errorf("%s accepted %d %s streams, want %d", n.name, got, k, want)
					}
				}
			}
		})
	}
}

// TestSimultaneousKeep makes every node of a mesh want all others at the
// same moment, many times over, and checks that each pair ends with one
// session that both sides agree on.
func TestSimultaneousKeep(t *testing.T) {
	const iterations = 15
	names := []string{"alpha", "bravo", "charlie"}
	for i := range iterations {
		c := newCluster(t)
		var nodes []*testNode
		for _, name := range names {
			nodes = append(nodes, c.start(name, nil))
		}
		var start sync.WaitGroup
		start.Add(1)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() {
				start.Wait()
				n.net.Keep(names)
			})
		}
		start.Done()
		wg.Wait()
		for a := range nodes {
			for b := a + 1; b < len(nodes); b++ {
				eventually(t, fmt.Sprintf("iteration %d: %s and %s agree", i, nodes[a].name, nodes[b].name), func() bool {
					return agreed(nodes[a], nodes[b])
				})
			}
		}
		for _, n := range nodes {
			if links := n.net.Links(); len(links) != len(names)-1 {
				t.Fatalf("iteration %d: %s Links() = %v, want %d", i, n.name, links, len(names)-1)
			}
		}
		// The kept session carries streams both ways.
		roundTrip(t, nodes[0], nodes[2].name, wire.KindRPC)
		roundTrip(t, nodes[2], nodes[0].name, wire.KindRaft)
		for _, n := range nodes {
			n.stop()
		}
	}
}

func TestRestartOnNewAddress(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", func(cfg *Config) {
		cfg.MinBackoff = time.Hour // only Kick can bring the link back quickly
		cfg.MaxBackoff = time.Hour
	})
	b := c.start("b", nil)
	a.net.Keep([]string{"b"})
	eventually(t, "link a-b", func() bool { return agreed(a, b) })
	roundTrip(t, a, "b", wire.KindControl)

	oldAddr := b.ln.Addr().String()
	b.stop()
	eventually(t, "a notices b gone", func() bool { _, ok := linkTo(a.net, "b"); return !ok })

	b2 := c.start("b", nil) // new port; start registered the new address
	// The kernel may hand the freed port out again: start once more.
	for range 5 {
		if b2.ln.Addr().String() != oldAddr {
			break
		}
		b2.stop()
		b2 = c.start("b", nil)
	}
	if b2.ln.Addr().String() == oldAddr {
		t.Fatalf("restarted b on the same address %s", oldAddr)
	}
	a.net.Kick("b")
	eventually(t, "link a-b back", func() bool { return agreed(a, b2) })
	roundTrip(t, a, "b", wire.KindRPC)
	roundTrip(t, b2, "a", wire.KindRPC)

	// a's callbacks: up, down, up.
	eventually(t, "callbacks", func() bool {
		var got []string
		for _, e := range c.eventLog() {
			if len(e) > 2 && e[:2] == "a:" {
				got = append(got, e)
			}
		}
		return slices.Equal(got, []string{"a: up b inbound=false", "a: down b", "a: up b inbound=false"})
	})
}

func TestOpenErrors(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	c.start("b", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name string
		peer string
		kind wire.Kind
		want error
	}{
		{"unknown kind", "b", wire.Kind(99), wire.ErrUnknownKind},
		{"no address", "nowhere", wire.KindRPC, ErrNoAddress},
		{"self", "a", wire.KindRPC, errSelf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := a.net.Open(ctx, tt.peer, tt.kind)
			if !errors.Is(err, tt.want) {
				t.Errorf("Open(%q, %v) = %v, %v; want error %v", tt.peer, tt.kind, s, err, tt.want)
			}
		})
	}
	a.stop()
	if _, err := a.net.Open(ctx, "b", wire.KindRPC); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close = %v, want ErrClosed", err)
	}
}

// TestConcurrentOpenSharesDial opens many streams at once to a peer with no
// session yet: they must all succeed over a single session.
func TestConcurrentOpenSharesDial(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	b := c.start("b", nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { roundTrip(t, a, "b", wire.KindRPC) })
	}
	wg.Wait()
	if lines := b.logs.lines("peer link up"); len(lines) != 1 {
		t.Errorf("b logged %d links coming up, want 1:\n%s", len(lines), lines)
	}
	if got := b.accepted[wire.KindRPC].get(); got != 20 {
		t.Errorf("b accepted %d streams, want 20", got)
	}
}

func TestListenerClose(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	b := c.start("b", nil)
	l := b.net.Listen(wire.KindRelay) // the echo server's
	if again := b.net.Listen(wire.KindRelay); again != l {
		t.Errorf("Listen(relay) twice gave two listeners")
	}
	if got := l.Addr().String(); got != "b" {
		t.Errorf("Listener.Addr() = %q, want %q", got, "b")
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close = %v, want ErrClosed", err)
	}

	// A relay stream now finds no listener and is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := a.net.Open(ctx, "b", wire.KindRelay); !errors.Is(err, ErrRefused) {
		t.Errorf("Open(b, relay) with no listener = %v, %v; want ErrRefused", s, err)
	}

	// Other kinds still flow, and a new listener takes relay streams again.
	roundTrip(t, a, "b", wire.KindRPC)
	l2 := b.net.Listen(wire.KindRelay)
	if l2 == l {
		t.Fatalf("Listen after Close returned the closed listener")
	}
	cnt := &counter{}
	done := make(chan struct{})
	go func() { echoServer(l2, cnt); close(done) }()
	roundTrip(t, a, "b", wire.KindRelay)
	l2.Close()
	<-done
}

func TestDisconnect(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	b := c.start("b", nil)
	roundTrip(t, a, "b", wire.KindRPC)
	a.net.Disconnect("b")
	if _, ok := linkTo(a.net, "b"); ok {
		t.Errorf("a still lists b after Disconnect")
	}
	eventually(t, "b notices", func() bool { _, ok := linkTo(b.net, "a"); return !ok })
	roundTrip(t, a, "b", wire.KindRPC) // Open dials a fresh session
	if got := len(b.logs.lines("peer link up")); got != 2 {
		t.Errorf("b logged %d links up, want 2:\n%s", got, b.logs)
	}
}
