// Package peer runs the links between Buoy nodes: raw transport
// connections upgraded to mutually authenticated TLS 1.3, one
// hashicorp/yamux session per pair of nodes, and streams opened by either
// side, each starting with a one-byte wire.Kind.
//
// Peers are addressed by node name, never by address: Open and Keep ask
// Config.Resolve for the current candidate addresses of a name at dial
// time, and the TLS handshake checks that the certificate behind the
// address carries that name. The package works over any net.Conn (TCP, an
// in-memory pipe, a WebSocket), and all of its goroutines end on Close, so
// it runs inside a testing/synctest bubble (through peertest.SyncTest:
// yamux keeps timers in a global pool that must not cross bubbles).
//
// On top of the one-byte kind header, the accepting side confirms each
// stream by echoing the kind byte once a listener has taken it, so Open
// returns only streams the peer accepted on a session it kept.
//
// A dial tries every candidate address of the peer at once, staggered
// (happy eyeballs): the first TLS handshake to complete wins, and only the
// winner is used. So that the accepting side never adopts a loser, the
// dialer sends one byte after the handshake saying what the connection is
// for (an ordinary link, or a probe); the accepting side starts yamux only
// once that byte has arrived.
//
// When both nodes of a pair dial each other at once, both keep the
// session dialed by the lexicographically smaller name; a direct session
// wins over a relayed one. The losing session is closed at once if it
// never carried a stream here; if it did, it is retired: no longer used
// for new streams here, and closed once its streams are done (or after a
// grace period), so streams opened during the race are not cut.
//
// With Config.SuspectAfter set, a session on which nothing has arrived for
// that long is suspect: the Network probes the peer (a dial to all its
// candidates, in the background) without closing the session. If the
// probe's handshake completes while the session is still silent, the probe
// replaces it on both ends at once, whatever the tie-break says: this is
// how a node whose address changed (its old connections go silent, they
// are not reset) links up again within about one heartbeat. A false
// suspicion costs only the probe's dial.
package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"buoy/internal/wire"
)

// ALPN protocol names. The server side offers both; a client picks one.
const (
	// ALPNPeer marks a member link: the client must present a certificate
	// from the cluster CA whose name is a current member.
	// Version 2: the dialer sends a session intent byte after the
	// handshake.
	ALPNPeer = "buoy/2"
	// ALPNJoin marks a join connection from a node that has no certificate
	// yet: no client certificate is asked for, and the connection is handed
	// to Config.Join.
	ALPNJoin = "buoy-join/1"
)

// Errors callers branch on.
var (
	// ErrClosed is returned by every operation after Close. It wraps
	// net.ErrClosed so code written for listeners recognises it.
	ErrClosed = fmt.Errorf("peer network closed: %w", net.ErrClosed)
	// ErrNoAddress means Config.Resolve gave no candidate address for a name.
	ErrNoAddress = errors.New("no address known for peer")
	// ErrNotMember means a certificate name is not (or no longer) a member
	// according to Config.IsMember.
	ErrNotMember = errors.New("not a cluster member")
	// ErrWrongPeer means the node reached at an address is not the node that
	// was dialed (its certificate carries another name).
	ErrWrongPeer = errors.New("certificate name differs from dialed name")
	// ErrStaleCert means a certificate names a member but carries another
	// key than the one recorded for it (an earlier member of that name).
	ErrStaleCert = errors.New("certificate key is not the member's")
	// ErrRefused means the peer closed a new stream without accepting it:
	// nothing listens for that kind there.
	ErrRefused = errors.New("stream refused by peer")
)

// RelayNetwork is the Network() of the remote address of a raw connection
// relayed through another node (a spliced stream). A session over such a
// connection is relayed; a direct session to the same peer wins over it.
const RelayNetwork = "relay"

// Defaults for the zero values in Config.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMinBackoff       = 250 * time.Millisecond
	DefaultMaxBackoff       = 10 * time.Second
)

// Config holds what a Network needs. Name, Cert and Roots are required.
type Config struct {
	// Name is this node's name; Cert must carry it.
	Name string
	// Cert is this node's certificate (its chain may include the CA
	// certificate) and private key, used both as TLS client and server
	// until SetCert replaces it.
	Cert tls.Certificate
	// Roots holds the cluster CA; only certificates it signed are accepted.
	Roots *x509.CertPool
	// IsMember is asked at every handshake, in both directions, for the
	// name in the peer's certificate, so a removed member is refused at its
	// next handshake. nil accepts any certificate signed by Roots.
	IsMember func(name string) bool
	// MemberKey returns the key recorded for a member when it was admitted,
	// or nil when none is known yet. A certificate whose key differs is
	// refused (ErrStaleCert): a member removed and admitted again under the
	// same name has a new key, and its old certificate must not work.
	// nil: keys are not compared.
	MemberKey func(name string) ed25519.PublicKey
	// Resolve returns candidate "host:port" addresses for a name, best
	// first. It is called from a dialing goroutine and must not block for
	// long. nil: no peer can be dialed (inbound links only).
	Resolve func(name string) []string
	// Dial opens a raw transport connection to addr. nil: TCP through a
	// net.Dialer. Tests pass in-memory dialers.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Join, if set, takes over connections that negotiated ALPNJoin (TLS
	// handshake done, no client certificate). It runs on a goroutine owned
	// by the Network and must return once ctx is cancelled (by Close); the
	// Network closes conn when Join returns. nil: such connections are
	// closed at once.
	Join func(ctx context.Context, conn *tls.Conn)
	// OnLink reports a session coming up with name, the remote transport
	// address and whether the peer dialed us. It is called again for a name
	// whose session is replaced by a newer one (no OnUnlink in between).
	// OnUnlink reports that name has no session any more. Both are optional,
	// called in order from a single goroutine owned by the Network, and
	// must not block; they may call back into the Network, except Close
	// (which waits for that goroutine). Events still queued at Close are
	// dropped.
	OnLink   func(name string, remote net.Addr, inbound bool)
	OnUnlink func(name string)
	// OnSuspect reports that the session with name has received nothing
	// for SuspectAfter and is being probed; what arrived on it last may be
	// out of date. It is optional, and called like OnLink, in order with
	// it.
	OnSuspect func(name string)
	// Logger receives refusals, link changes and yamux's own messages. nil
	// discards them.
	Logger *slog.Logger
	// HandshakeTimeout bounds each TLS handshake, in both directions, and
	// each dial attempt. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between dial attempts of
	// kept peers; it doubles from MinBackoff after each failure and gets
	// ±20% jitter. Zero means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// SuspectAfter is how long a session may receive nothing before the
	// Network probes its peer (see the package comment). Set it somewhat
	// above the interval at which every session carries something, such
	// as heartbeats: a healthy idle session is probed in vain otherwise.
	// Zero disables probing.
	SuspectAfter time.Duration
}

// Link describes one current session.
type Link struct {
	Name    string    // peer node name, from its certificate
	Remote  net.Addr  // the peer's transport address as seen by this node
	Local   net.Addr  // this node's transport address on that connection
	Inbound bool      // the peer dialed this node
	Dialer  string    // name of the node that dialed (Name if Inbound, else our own name)
	Since   time.Time // when the session was adopted
}

// Network owns the links of one node. Create it with New, feed it
// listeners with Serve, and stop it with Close.
type Network struct {
	cfg       Config
	log       *slog.Logger
	clientTLS func(name string) *tls.Config
	serverTLS *tls.Config
	// cert is what this node presents in new handshakes (cert.go).
	cert atomic.Pointer[tls.Certificate]

	// ctx is cancelled by Close; every goroutine of the Network watches it
	// (directly or through a session that Close closes).
	ctx    context.Context
	cancel context.CancelFunc
	// wg tracks every goroutine the Network starts. Goroutines started
	// from outside a tracked goroutine go through spawn, which refuses
	// once closed, so Close's Wait never races with Add.
	wg sync.WaitGroup
	// eventReady wakes the callback dispatcher (capacity 1).
	eventReady chan struct{}

	// mu guards the following fields.
	mu        sync.Mutex
	closed    bool
	links     map[string]*link
	dials     map[string]*dialCall
	keepers   map[string]*keeper
	listeners map[wire.Kind]*Listener
	serving   map[net.Listener]struct{}
	events    []linkEvent
	// changed is closed and replaced at every change of links, waking
	// keepers that watch a session which may have been replaced.
	changed chan struct{}
	// movedFrom is a local address this node's sessions used until a
	// probe came up from another one, at movedAt (see noteMoved).
	movedFrom netip.Addr
	movedAt   time.Time
}

// New checks cfg, fills in defaults and returns a Network ready to Serve
// and Open. It starts the goroutine that delivers OnLink/OnUnlink calls.
func New(cfg Config) (*Network, error) {
	if cfg.Name == "" {
		return nil, errors.New("new peer network: empty node name")
	}
	if cfg.Roots == nil {
		return nil, errors.New("new peer network: no cluster CA (Roots)")
	}
	if len(cfg.Cert.Certificate) == 0 || cfg.Cert.PrivateKey == nil {
		return nil, errors.New("new peer network: no certificate or key")
	}
	leaf := cfg.Cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cfg.Cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("new peer network: parse own certificate: %w", err)
		}
	}
	if name, err := certName(leaf); err != nil || name != cfg.Name {
		return nil, fmt.Errorf("new peer network: own certificate is for %q (%v), want %q", leaf.Subject.CommonName, err, cfg.Name)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Network{
		cfg:        cfg,
		log:        logger.With("node", cfg.Name),
		ctx:        ctx,
		cancel:     cancel,
		eventReady: make(chan struct{}, 1),
		links:      make(map[string]*link),
		dials:      make(map[string]*dialCall),
		keepers:    make(map[string]*keeper),
		listeners:  make(map[wire.Kind]*Listener),
		serving:    make(map[net.Listener]struct{}),
		changed:    make(chan struct{}),
	}
	cfg.Cert.Leaf = leaf
	n.cert.Store(&cfg.Cert)
	n.serverTLS = n.newServerTLS()
	n.clientTLS = n.newClientTLS
	n.wg.Go(n.dispatchEvents)
	return n, nil
}

// spawn starts f on a tracked goroutine unless the Network is closed. It is
// for callers that are not themselves tracked goroutines (Serve, Open,
// Keep); tracked goroutines may call n.wg.Go directly.
func (n *Network) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.spawnLocked(f)
}

func (n *Network) spawnLocked(f func()) bool {
	if n.closed {
		return false
	}
	n.wg.Go(f)
	return true
}

// Serve accepts raw connections from l until Close, handshaking each on its
// own tracked goroutine within HandshakeTimeout. It may be called for
// several listeners at once. It returns ErrClosed after Close, and closes l
// in any case when it returns.
func (n *Network) Serve(l net.Listener) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	n.serving[l] = struct{}{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.serving, l)
		n.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration // after temporary accept errors, as net/http does
	for {
		conn, err := l.Accept()
		if err != nil {
			if n.ctx.Err() != nil {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				n.log.Warn("peer accept error, retrying", "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-n.ctx.Done():
					t.Stop()
					return ErrClosed
				}
				continue
			}
			return fmt.Errorf("serve peer links on %s: %w", l.Addr(), err)
		}
		delay = 0
		if !n.spawn(func() { n.handleInbound(conn) }) {
			conn.Close()
			return ErrClosed
		}
	}
}

// Links lists the current sessions, sorted by name.
func (n *Network) Links() []Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Link, 0, len(n.links))
	for _, l := range n.links {
		out = append(out, l.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Disconnect closes the session with name, if any, and reports OnUnlink.
// It does not stop a Keep on name nor refuse the peer's next dial: call
// Keep without the name first, and make IsMember refuse it if it was
// removed.
func (n *Network) Disconnect(name string) {
	n.mu.Lock()
	l := n.links[name]
	if l != nil {
		delete(n.links, name)
		n.queueEventLocked(linkEvent{name: name})
	}
	n.mu.Unlock()
	if l != nil {
		n.log.Info("peer link disconnected", "peer", name)
		l.sess.Close()
	}
}

// Close stops accepting, closes every session, listener and background
// dial, and waits for every goroutine the Network started. Streams already
// handed out fail once their session is closed.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.wg.Wait()
		return nil
	}
	n.closed = true
	serving := make([]net.Listener, 0, len(n.serving))
	for l := range n.serving {
		serving = append(serving, l)
	}
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	clear(n.links)
	listeners := make([]*Listener, 0, len(n.listeners))
	for _, l := range n.listeners {
		listeners = append(listeners, l)
	}
	n.events = nil
	n.mu.Unlock()

	n.cancel()
	for _, l := range serving {
		l.Close()
	}
	for _, l := range listeners {
		l.Close()
	}
	// Closing a session may wait for a TLS close_notify write; do them in
	// parallel so one stuck peer does not serialise the rest.
	for _, l := range links {
		n.wg.Go(func() { l.sess.Close() })
	}
	n.wg.Wait()
	return nil
}

// linkEvent is a queued OnLink (up), OnUnlink or OnSuspect (suspect)
// call.
type linkEvent struct {
	up      bool
	suspect bool
	name    string
	remote  net.Addr
	inbound bool
}

// queueEventLocked records a change of the link table (or a suspicion):
// it wakes watchers of the table and appends ev for the dispatcher. n.mu
// must be held, so events are delivered in the order the table changed.
func (n *Network) queueEventLocked(ev linkEvent) {
	if !ev.suspect {
		close(n.changed)
		n.changed = make(chan struct{})
	}
	switch {
	case n.closed,
		ev.suspect && n.cfg.OnSuspect == nil,
		!ev.suspect && ev.up && n.cfg.OnLink == nil,
		!ev.suspect && !ev.up && n.cfg.OnUnlink == nil:
		return
	}
	n.events = append(n.events, ev)
	select {
	case n.eventReady <- struct{}{}:
	default:
	}
}

// dispatchEvents calls OnLink, OnUnlink and OnSuspect in order. It exits
// on Close.
func (n *Network) dispatchEvents() {
	for {
		select {
		case <-n.eventReady:
		case <-n.ctx.Done():
			return
		}
		n.mu.Lock()
		evs := n.events
		n.events = nil
		n.mu.Unlock()
		for _, ev := range evs {
			if n.ctx.Err() != nil {
				return
			}
			switch {
			case ev.suspect:
				n.cfg.OnSuspect(ev.name)
			case ev.up:
				n.cfg.OnLink(ev.name, ev.remote, ev.inbound)
			default:
				n.cfg.OnUnlink(ev.name)
			}
		}
	}
}
