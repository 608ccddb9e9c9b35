package peer

import (
	"context"
	"testing"
	"time"

	"buoy/internal/wire"
)

// A dial waiting on an address that swallows packets (the peer moved) is
// restarted by Kick with the candidates known now, instead of holding its
// callers until the handshake timeout.
func TestKickRestartsHangingDial(t *testing.T) {
	c := newCluster(t)
	// The hanging dial would outlive the Open's deadline: Open succeeds
	// only if Kick restarts it.
	a := c.start("a", func(cfg *Config) { cfg.Dial = blackholeDial; cfg.HandshakeTimeout = time.Minute })
	c.start("b", nil)
	real := c.resolve("b")
	c.setAddr("b", "blackhole")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
	c.setAddr("b", real...)
	a.net.Kick("b")
	if err := <-got; err != nil {
		t.Fatalf("a.Open(b) after Kick = %v, want a session at b's new address", err)
	}
}
