package consensus

import (
	"context"
	"net"
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
type streamLayer struct {
	name string
	ln   net.Listener
	dial Dialer
	ctx  context.Context // cancelled on Close, ends pending dials
}

func (s *streamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *streamLayer) Close() error              { return s.ln.Close() }
func (s *streamLayer) Addr() net.Addr            { return nameAddr(s.name) }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	return s.dial(ctx, string(addr), wire.KindRaft)
}
