package peer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"buoy/internal/wire"
)

// dialCall is one dial attempt to a name, shared by every caller that
// needs that peer while it runs.
type dialCall struct {
	done chan struct{} // closed when l and err are set
	l    *link
	err  error

	// The following fields are guarded by Network.mu.
	stale   bool               // Kick: the candidates changed, start over
	abandon context.CancelFunc // ends the attempt on the current address
}

// Open returns a new stream to name with the kind header already written,
// establishing the session first if there is none (trying the Resolve
// candidates in order, each within HandshakeTimeout and ctx's deadline).
// Concurrent Opens to the same name share one dial.
//
// Open returns only once the peer's listener for kind has taken the stream
// (it echoes the kind byte), waiting at most until ctx's deadline, or
// HandshakeTimeout if ctx has none. A peer with no listener for kind
// refuses the stream: ErrRefused. If the session is dropped meanwhile (it
// lost to a duplicate, or died), Open retries once on the current session.
func (n *Network) Open(ctx context.Context, name string, kind wire.Kind) (*Stream, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("open stream to %s: %w: %d", name, wire.ErrUnknownKind, byte(kind))
	}
	for attempt := 0; ; attempt++ {
		l, err := n.connect(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("open %s stream: %w", kind, err)
		}
		s, err := n.openOn(ctx, l, kind)
		if err == nil {
			return s, nil
		}
		dropped := l.sess.IsClosed() || n.current(name) != l
		if attempt > 0 || !dropped || ctx.Err() != nil {
			return nil, fmt.Errorf("open %s stream to %s: %w", kind, name, err)
		}
	}
}

// openOn opens a stream on l's session, writes the kind header and waits
// for the peer to echo it.
func (n *Network) openOn(ctx context.Context, l *link, kind wire.Kind) (*Stream, error) {
	st, err := l.sess.OpenStream()
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(n.cfg.HandshakeTimeout)
	}
	st.SetDeadline(dl)
	// A yamux read is woken by a deadline, not by Close: cancellation must
	// move the deadline to now.
	defer context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })()
	if err := wire.WriteKind(st, kind); err != nil {
		st.Close()
		return nil, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(st, ack[:]); err != nil {
		st.Close()
		if errors.Is(err, io.EOF) && !l.sess.IsClosed() {
			return nil, fmt.Errorf("%w: no %s listener", ErrRefused, kind)
		}
		return nil, fmt.Errorf("wait for stream acceptance: %w", err)
	}
	if wire.Kind(ack[0]) != kind {
		st.Close()
		return nil, fmt.Errorf("wait for stream acceptance: peer echoed kind %d, want %d", ack[0], byte(kind))
	}
	st.SetDeadline(time.Time{})
	return &Stream{Conn: st, Peer: l.name, Kind: kind}, nil
}

// watch returns the live session for name, if any, and a channel closed at
// the next change of the link table.
func (n *Network) watch(name string) (*link, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.links[name]; l != nil && !l.sess.IsClosed() {
		return l, n.changed
	}
	return nil, n.changed
}

// current returns the live session for name, if any.
func (n *Network) current(name string) *link {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.links[name]; l != nil && !l.sess.IsClosed() {
		return l
	}
	return nil
}

// connect returns the live session for name, dialing if there is none. A
// dial runs on its own tracked goroutine, shared by concurrent callers; a
// caller whose ctx ends stops waiting but the dial goes on (bounded by
// HandshakeTimeout per candidate and the first caller's deadline) and its
// session is kept if it succeeds.
func (n *Network) connect(ctx context.Context, name string) (*link, error) {
	if name == n.cfg.Name {
		return nil, fmt.Errorf("dial %s: %w", name, errSelf)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	if l := n.links[name]; l != nil && !l.sess.IsClosed() {
		n.mu.Unlock()
		return l, nil
	}
	call := n.dials[name]
	if call == nil {
		call = &dialCall{done: make(chan struct{})}
		dctx, cancel := context.WithCancel(n.ctx)
		if dl, ok := ctx.Deadline(); ok {
			cancel()
			dctx, cancel = context.WithDeadline(n.ctx, dl)
		}
		n.dials[name] = call
		n.spawnLocked(func() {
			defer cancel()
			n.runDial(dctx, name, call)
		})
	}
	n.mu.Unlock()
	for {
		// The peer may dial us while our dial still waits on an address
		// it has left: take its session rather than wait for ours.
		l, changed := n.watch(name)
		if l != nil {
			return l, nil
		}
		select {
		case <-call.done:
			if call.err != nil && n.ctx.Err() != nil {
				return nil, fmt.Errorf("dial %s: %w", name, ErrClosed)
			}
			return call.l, call.err
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s: %w", name, ctx.Err())
		}
	}
}

// runDial tries each candidate address of name in order and adopts the
// first session that comes up. It exits when a candidate succeeds, all
// fail, or ctx ends (Close or the first caller's deadline).
func (n *Network) runDial(ctx context.Context, name string, call *dialCall) {
	defer func() {
		n.mu.Lock()
		delete(n.dials, name)
		n.mu.Unlock()
		close(call.done)
	}()
	for {
		var addrs []string
		if n.cfg.Resolve != nil {
			addrs = n.cfg.Resolve(name)
		}
		if len(addrs) == 0 {
			call.err = fmt.Errorf("dial %s: %w", name, ErrNoAddress)
			return
		}
		var errs []error
		restart := false
		for _, addr := range addrs {
			actx, abandon := context.WithCancel(ctx)
			n.mu.Lock()
			call.abandon = abandon
			n.mu.Unlock()
			l, err := n.dialAddr(actx, name, addr)
			abandon()
			n.mu.Lock()
			call.abandon = nil
			restart, call.stale = call.stale, false
			n.mu.Unlock()
			if err == nil {
				call.l, call.err = n.adopt(l)
				return
			}
			errs = append(errs, err)
			if ctx.Err() != nil || restart {
				break
			}
		}
		if !restart || ctx.Err() != nil {
			call.err = fmt.Errorf("dial %s: %w", name, errors.Join(errs...))
			return
		}
		// Kicked: a dial to an address the peer has left waits for
		// HandshakeTimeout, as a SYN into the void does; start again
		// with the candidates the caller knows now.
	}
}

// dialAddr opens a raw connection to addr and runs the client handshake,
// expecting the node name at the other end.
func (n *Network) dialAddr(ctx context.Context, name, addr string) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	var (
		raw net.Conn
		err error
	)
	if n.cfg.Dial != nil {
		raw, err = n.cfg.Dial(ctx, addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	conn := tls.Client(raw, n.clientTLS(name))
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		reason := refusalReason(err)
		if reason == "handshake failed" || reason == "handshake timeout" || reason == "shutting down" {
			n.log.Debug("peer handshake failed", "peer", name, "remote", addr, "reason", reason, "err", err)
		} else {
			n.log.Warn("peer refused", "peer", name, "remote", addr, "reason", reason, "err", err)
		}
		var hne x509.HostnameError
		if errors.As(err, &hne) {
			// Standard verification caught it before VerifyConnection.
			return nil, fmt.Errorf("%s: %w: %w", addr, ErrWrongPeer, err)
		}
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	l, err := n.newLink(conn, name, false)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return l, nil
}

// keeper is the background dialer of one kept name.
type keeper struct {
	cancel context.CancelFunc
	kick   chan struct{} // capacity 1: a pending Kick
}

// Keep sets the names this node wants links to. The Network dials missing
// ones in the background, with backoff, until Keep is called without them
// or Close. Names dropped from the set keep their session (the other side
// may want it); use Disconnect to close one. This node's own name is
// ignored.
func (n *Network) Keep(names []string) {
	want := make(map[string]bool, len(names))
	for _, name := range names {
		if name != n.cfg.Name && name != "" {
			want[name] = true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for name, k := range n.keepers {
		if !want[name] {
			k.cancel()
			delete(n.keepers, name)
		}
	}
	for name := range want {
		if n.keepers[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(n.ctx)
		k := &keeper{cancel: cancel, kick: make(chan struct{}, 1)}
		n.keepers[name] = k
		n.spawnLocked(func() {
			defer cancel()
			n.keepLoop(ctx, name, k)
		})
	}
}

// Kick resets the backoff of a kept name and retries at once, for when a
// new address was learned. A dial to name in progress (kept or not) gives
// up its current address and starts over with Resolve's new candidates;
// its callers keep waiting for it.
func (n *Network) Kick(name string) {
	n.mu.Lock()
	k := n.keepers[name]
	if call := n.dials[name]; call != nil {
		call.stale = true
		if call.abandon != nil {
			call.abandon()
		}
	}
	n.mu.Unlock()
	if k == nil {
		return
	}
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// keepLoop keeps a session with name up. It exits when ctx ends (Keep
// without name, or Close).
//
// Backoff doubles from MinBackoff to MaxBackoff after each failed dial.
// It resets when a session has stayed up for at least MaxBackoff, after
// which a drop is redialed at once; a session that drops sooner counts as
// a failure, so a peer that accepts and drops at once is not hammered.
func (n *Network) keepLoop(ctx context.Context, name string, k *keeper) {
	backoff := n.cfg.MinBackoff
	var watched *link // the last live session seen, to judge how long it lived
	for {
		if l, changed := n.watch(name); l != nil {
			watched = l
			select {
			case <-l.sess.CloseChan():
			case <-changed: // maybe replaced; look again
			case <-ctx.Done():
				return
			}
			continue
		}
		if watched != nil {
			stable := time.Since(watched.since) >= n.cfg.MaxBackoff
			watched = nil
			if stable {
				backoff = n.cfg.MinBackoff
				continue // redial at once
			}
			// A short-lived session: back off before redialing.
		} else {
			_, err := n.connect(ctx, name)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			n.log.Debug("peer dial failed", "peer", name, "err", err, "retry_in", backoff)
		}
		t := time.NewTimer(jitter(backoff))
		backoff = min(2*backoff, n.cfg.MaxBackoff)
		select {
		case <-t.C:
		case <-k.kick:
			t.Stop()
			backoff = n.cfg.MinBackoff
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// jitter spreads d by ±20% so nodes that lost each other at the same
// moment do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
