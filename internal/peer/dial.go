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
	"slices"
	"time"

	"buoy/internal/wire"
)

// dialCall is one dial attempt to a name, shared by every caller that
// needs that peer while it runs.
type dialCall struct {
	done chan struct{} // closed when l and err are set
	l    *link
	err  error
	// kick (capacity 1) tells the running race that the candidates
	// changed (Kick).
	kick chan struct{}
}

// Session intents: the byte a dialer sends right after the TLS handshake,
// before yamux starts. Only the connection that won the dial race gets
// one; the accepting side drops a connection closed before it.
const (
	// intentLink starts an ordinary session.
	intentLink byte = 1
	// intentProbe starts a session that replaces the current one, which
	// the dialer found silent (see Network.probe).
	intentProbe byte = 2
)

// dialStagger is how long a dial race waits for one candidate before it
// starts the next one as well (RFC 8305's connection attempt delay). A
// failed attempt starts the next one at once.
const dialStagger = 250 * time.Millisecond

// maxProbeTimeout bounds each attempt of a probe: a live peer answers a
// handshake within a few round trips, and a probe that waits longer is
// only holding a dead address.
const maxProbeTimeout = 3 * time.Second

// Open returns a new stream to name with the kind header already written,
// establishing the session first if there is none (racing the Resolve
// candidates, each within HandshakeTimeout and ctx's deadline; see race).
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
		call = &dialCall{done: make(chan struct{}), kick: make(chan struct{}, 1)}
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

// runDial races the candidate addresses of name (see race) and adopts the
// session that wins. It exits when a candidate succeeds, all fail, or ctx
// ends (Close or the first caller's deadline).
func (n *Network) runDial(ctx context.Context, name string, call *dialCall) {
	defer func() {
		n.mu.Lock()
		delete(n.dials, name)
		n.mu.Unlock()
		close(call.done)
	}()
	conn, err := n.race(ctx, name, raceOpts{timeout: n.cfg.HandshakeTimeout, kick: call.kick})
	if err != nil {
		call.err = fmt.Errorf("dial %s: %w", name, err)
		return
	}
	l, err := n.commit(conn, name, intentLink)
	if err != nil {
		call.err = fmt.Errorf("dial %s: %w", name, err)
		return
	}
	call.l, call.err = n.adopt(l)
}

// attempt is the outcome of one candidate of a race.
type attempt struct {
	addr string
	conn *tls.Conn
	err  error
}

// raceOpts tune a race.
type raceOpts struct {
	timeout time.Duration   // for each attempt
	kick    <-chan struct{} // new candidates: start them at once
	// directOnly drops relayed connections before their handshake.
	directOnly bool
}

// errRelayed fails an attempt of a race for a direct connection that
// reached the peer through a relay.
var errRelayed = errors.New("relayed, and a direct connection is wanted")

// race dials name at every candidate Resolve gives, best first, one more
// every dialStagger or as soon as one fails, each within o.timeout, and
// returns the first connection whose handshake completes; the others are
// cancelled, and closed if they complete too, before any intent byte is
// sent. A receive on o.kick resolves the candidates again: those not
// under way (new ones, and failed ones) replace the queue, in the order
// Resolve gives now, and the first of them starts at once, while the
// attempts under way go on.
// race returns when one attempt succeeds, all have failed with none left
// to start, or ctx ends. It must run on a tracked goroutine.
func (n *Network) race(ctx context.Context, name string, o raceOpts) (*tls.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attempt)
	lost := make(chan struct{}) // closed on return: late winners close themselves
	defer close(lost)

	var (
		queue   []string
		running = map[string]bool{}
		errs    []error
	)
	refill := func() {
		if n.cfg.Resolve == nil {
			return
		}
		queue = queue[:0]
		for _, a := range n.cfg.Resolve(name) {
			if a != "" && !running[a] && !slices.Contains(queue, a) {
				queue = append(queue, a)
			}
		}
	}
	startNext := func() {
		addr := queue[0]
		queue = queue[1:]
		running[addr] = true
		n.wg.Go(func() {
			conn, err := n.handshake(ctx, name, addr, o.timeout, o.directOnly)
			select {
			case results <- attempt{addr: addr, conn: conn, err: err}:
			case <-lost:
				if conn != nil {
					conn.Close()
				}
			}
		})
	}
	refill()
	if len(queue) == 0 {
		return nil, ErrNoAddress
	}
	stagger := time.NewTimer(dialStagger)
	defer stagger.Stop()
	startNext()
	for {
		if len(running) == 0 && len(queue) == 0 {
			return nil, errors.Join(errs...)
		}
		select {
		case r := <-results:
			delete(running, r.addr)
			if r.err == nil {
				return r.conn, nil
			}
			errs = append(errs, r.err)
			if len(queue) > 0 {
				startNext()
				stagger.Reset(dialStagger)
			}
		case <-stagger.C:
			if len(queue) > 0 {
				startNext()
				stagger.Reset(dialStagger)
			}
		case <-o.kick:
			// A dial to an address the peer has left waits for the
			// timeout, as a SYN into the void does: try what the caller
			// knows now without waiting for it.
			refill()
			if len(queue) > 0 {
				startNext()
				stagger.Reset(dialStagger)
			}
		case <-ctx.Done():
			return nil, errors.Join(append(errs, ctx.Err())...)
		}
	}
}

// handshake opens a raw connection to addr and runs the client handshake,
// expecting the node name at the other end, all within timeout. With
// directOnly, a relayed raw connection is closed before the handshake. The
// connection is not committed to any use yet (see commit).
func (n *Network) handshake(ctx context.Context, name, addr string, timeout time.Duration, directOnly bool) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
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
	if directOnly && raw.RemoteAddr() != nil && raw.RemoteAddr().Network() == RelayNetwork {
		raw.Close()
		return nil, fmt.Errorf("%s: %w", addr, errRelayed)
	}
	conn := tls.Client(newLiveConn(raw), n.clientTLS(name))
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
	return conn, nil
}

// commit sends intent on a handshaken connection and starts its session.
// The connection is closed if that fails.
func (n *Network) commit(conn *tls.Conn, name string, intent byte) (*link, error) {
	_ = conn.SetWriteDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	if _, err := conn.Write([]byte{intent}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start session with %s: %w", name, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	l, err := n.newLink(conn, name, false)
	if err != nil {
		conn.Close()
		return nil, err
	}
	l.probe = intent == intentProbe
	return l, nil
}

// dialAddr dials name at addr alone and starts an ordinary session, not
// adopted yet.
func (n *Network) dialAddr(ctx context.Context, name, addr string) (*link, error) {
	conn, err := n.handshake(ctx, name, addr, n.cfg.HandshakeTimeout, false)
	if err != nil {
		return nil, err
	}
	return n.commit(conn, name, intentLink)
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

// Kick is for when a new address of name was learned. It resets the
// backoff of a kept name and retries at once. A dial to name in progress
// (kept or not) starts Resolve's new candidates at once, next to the
// attempts under way; its callers keep waiting for it. A session with name
// that is suspect (silent for SuspectAfter) is probed at the new
// candidates at once; a healthy one is left alone.
func (n *Network) Kick(name string) {
	n.mu.Lock()
	var kicks []chan struct{}
	if k := n.keepers[name]; k != nil {
		kicks = append(kicks, k.kick)
	}
	if call := n.dials[name]; call != nil {
		kicks = append(kicks, call.kick)
	}
	if l := n.links[name]; l != nil {
		kicks = append(kicks, l.kick)
	}
	n.mu.Unlock()
	for _, c := range kicks {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// keepLoop keeps a session with name up. It exits when ctx ends (Keep
// without name, or Close).
//
// Backoff doubles from MinBackoff to MaxBackoff after each failed dial.
// It resets when a session has stayed up for at least stableSession (or
// MaxBackoff if that is shorter), after which a drop is redialed at once;
// a session that drops sooner counts as a failure, so a peer that accepts
// and drops at once is not hammered. A session that is replaced (by a
// probe, or a newer dial) is followed, not counted.
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
			stable := time.Since(watched.since) >= min(stableSession, n.cfg.MaxBackoff)
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

// stableSession is how long a session must have lasted for its end to be
// redialed at once. A peer that drops us on purpose does so within a
// round trip or two of the handshake; a session that carried the link for
// a second was a working one, and the peer (or our address) just moved,
// as addresses on home links do several times in a row when a router
// reboots.
const stableSession = time.Second

// jitter spreads d by ±20% so nodes that lost each other at the same
// moment do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
