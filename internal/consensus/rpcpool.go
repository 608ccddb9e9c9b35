package consensus

import (
	"net"
	"sync"
	"time"
)

// Reuse of rpc streams. Opening a stream costs a round trip (the peer
// echoes the stream kind) and several frames; a write forwarded from a
// follower paid that on every call, which made a forwarded write cost
// about twice the CPU of one sent to the leader. serveRPCConn answers any
// number of requests on one stream, so Call keeps the streams it has
// finished with and takes one from here before dialing.
const (
	// maxIdleRPC bounds the idle streams kept per peer: enough for the
	// concurrent forwarded calls of a busy follower, few enough to cost
	// nothing when idle.
	maxIdleRPC = 64
	// idleRPCTimeout is how long an idle stream may be reused. It is well
	// under rpcTimeout, after which the serving side closes a quiet
	// stream, so a stream taken from the pool has not been given up on.
	idleRPCTimeout = rpcTimeout / 3
)

// rpcPool holds idle rpc streams per peer name. It starts no goroutine: a
// stream that went stale is closed when it is next found, or on close.
type rpcPool struct {
	mu     sync.Mutex // guards the fields below
	idle   map[string][]idleStream
	closed bool
}

type idleStream struct {
	conn  net.Conn
	since time.Time
}

// get returns the most recently used idle stream to peer that is younger
// than idleRPCTimeout at now, closing the stale ones it passes, or nil.
func (p *rpcPool) get(peer string, now time.Time) net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.idle[peer]
	for len(s) > 0 {
		last := s[len(s)-1]
		s[len(s)-1] = idleStream{}
		s = s[:len(s)-1]
		if now.Sub(last.since) < idleRPCTimeout {
			p.idle[peer] = s
			return last.conn
		}
		// The rest are older still.
		last.conn.Close()
		for _, st := range s {
			st.conn.Close()
		}
		s = nil
	}
	delete(p.idle, peer)
	return nil
}

// put keeps conn, done with at now, for a later call to peer; it closes
// conn if the pool is full or closed.
func (p *rpcPool) put(peer string, conn net.Conn, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[peer]) >= maxIdleRPC {
		conn.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]idleStream{}
	}
	p.idle[peer] = append(p.idle[peer], idleStream{conn: conn, since: now})
}

// drop closes every idle stream to peer: one of them failed, which most
// likely means the link under all of them did.
func (p *rpcPool) drop(peer string) {
	p.mu.Lock()
	s := p.idle[peer]
	delete(p.idle, peer)
	p.mu.Unlock()
	for _, st := range s {
		st.conn.Close()
	}
}

// close closes every idle stream; later puts close theirs at once.
func (p *rpcPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, s := range idle {
		for _, st := range s {
			st.conn.Close()
		}
	}
}
