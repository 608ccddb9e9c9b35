package peer

import (
	"context"
	"testing"
	"time"

	"buoy/internal/wire"
)

// An Open waiting on a dial to an address that swallows packets (the peer
// moved, or sits behind a NAT) is answered by the session the peer dials
// to us meanwhile, not held until the dial times out.
func TestOpenTakesInboundSessionWhileDialHangs(t *testing.T) {
	c := newCluster(t)
	// A short handshake timeout: if Open waited for the hanging dial, it
	// would fail with that dial's error instead of taking b's session.
	a := c.start("a", func(cfg *Config) { cfg.Dial = blackholeDial; cfg.HandshakeTimeout = 2 * time.Second })
	b := c.start("b", nil)
	c.setAddr("b", "blackhole")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		s, err := a.net.Open(ctx, "b", wire.KindRaft)
		if err == nil {
			s.Close()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond) // a's dial is under way and hanging
	s, err := b.net.Open(ctx, "a", wire.KindRPC)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := <-got; err != nil {
		t.Fatalf("a.Open(b) = %v, want the session b dialed", err)
	}
}
