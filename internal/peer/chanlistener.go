package peer

import (
	"context"
	"net"
	"sync"
)

// ChanListener is a net.Listener for connections that arrive by other
// means than accept(2) — streams spliced through a relay — so that
// Network.Serve handshakes them like any other.
type ChanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// NewChanListener returns an empty listener reporting addr.
func NewChanListener(addr net.Addr) *ChanListener {
	return &ChanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Deliver hands c to Accept, waiting until it is taken, the listener is
// closed (c is then closed), or ctx ends.
func (l *ChanListener) Deliver(ctx context.Context, c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.closed:
		c.Close()
		return net.ErrClosed
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	}
}

// Accept waits for the next delivered connection.
func (l *ChanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Deliver.
func (l *ChanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr reports the address given to NewChanListener.
func (l *ChanListener) Addr() net.Addr { return l.addr }
