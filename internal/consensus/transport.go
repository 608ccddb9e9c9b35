package consensus

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"buoy/internal/wire"
)

// Dialer opens a stream of the given kind to a node, by name. The peer layer
// provides it: it resolves the name to a current address at dial time, so
// Raft never sees an IP.
type Dialer func(ctx context.Context, name string, kind wire.Kind) (net.Conn, error)

// nameAddr is a net.Addr that is a node name.
type nameAddr string

func (a nameAddr) Network() string { return "buoy" }
func (a nameAddr) String() string  { return string(a) }

// streamLayer adapts peer links to raft.StreamLayer: Raft's ServerAddress is
// the node name, and every Raft connection is a raft-kind stream on the one
// link between the two nodes.
//
// It also keeps the streams it accepted until Raft's transport closes
// them. The transport serves each on a goroutine nobody waits for, and
// answers heartbeats there, writing the term to storage: a heartbeat that
// passed its shutdown check as Raft stopped would write to closed storage
// and panic ("failed to save current term"). Close (in Node) waits for
// those goroutines through drain before it closes storage.
type streamLayer struct {
	name string
	ln   net.Listener
	dial Dialer
	ctx  context.Context // cancelled on Close, ends pending dials

	mu       sync.Mutex // guards accepted and draining
	accepted map[*acceptedConn]struct{}
	draining bool
	served   sync.WaitGroup // one per accepted stream Raft has not closed
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		c.Close()
		return nil, net.ErrClosed
	}
	if s.accepted == nil {
		s.accepted = map[*acceptedConn]struct{}{}
	}
	ac := &acceptedConn{Conn: c, s: s}
	s.accepted[ac] = struct{}{}
	s.served.Add(1)
	return ac, nil
}

func (s *streamLayer) Close() error   { return s.ln.Close() }
func (s *streamLayer) Addr() net.Addr { return nameAddr(s.name) }

// drain closes every stream Raft accepted and waits, at most wait, until
// the transport's goroutine serving each has returned (it closes its
// stream when it does). It reports whether they all did.
func (s *streamLayer) drain(wait time.Duration) bool {
	s.mu.Lock()
	s.draining = true
	open := make([]*acceptedConn, 0, len(s.accepted))
	for c := range s.accepted {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		c.Conn.Close() // its reader fails, and the goroutine returns
	}
	done := make(chan struct{})
	go func() { // ends when the last served stream is closed
		s.served.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// acceptedConn is a stream Raft accepted; its Close tells the stream
// layer that the transport is done with it.
type acceptedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *acceptedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.accepted, c)
		c.s.mu.Unlock()
		c.s.served.Done()
	})
	return err
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	return s.dial(ctx, string(addr), wire.KindRaft)
}
