// Package buoy runs a Buoy node: a member of a small cluster of machines on
// dynamic or NATed addresses that find each other through their peers,
// replicate state with Raft and talk only over mutually authenticated TLS
// 1.3 links. The buoy command is built on this package; programs can embed
// a node the same way:
//
//	n, err := buoy.New(buoy.Config{Name: "pi1", DataDir: "/var/lib/buoy", Bootstrap: true})
//	...
//	err = n.Start(ctx)
//	defer n.Close()
package buoy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"buoy/internal/api"
	"buoy/internal/consensus"
	"buoy/internal/peer"
	"buoy/internal/pki"
	"buoy/internal/store"
	"buoy/internal/wire"
)

// Node is one running Buoy node.
type Node struct {
	cfg Config
	log *slog.Logger

	id    *pki.Identity
	fsm   *store.FSM
	book  *addrBook
	net   *peer.Network
	raft  *consensus.Node
	peerL net.Listener
	httpL net.Listener
	http  *http.Server
	ws    *peer.WSListener
	disco *disco
	relay relayState
	dns   *dnsNode
	// dnsUDP and dnsTCP are the DNS sockets, closed by Close.
	dnsUDP []net.PacketConn
	dnsTCP net.Listener

	// roles runs failover roles; roleShared holds what the roles API
	// keeps before Start.
	roles      *roleManager
	roleShared roleShared
	// kvTextL is the key-value line protocol's listener (kvtext.go).
	kvTextL net.Listener
	// kvFwd sends this node's key-value writes to the leader
	// (kvforward.go).
	kvFwd *kvForwarder
	// kvRawOff, set by a test between New and Start, leaves the binary
	// batches unserved, as a node older than them does.
	kvRawOff bool
	// cert holds the certificate in use, which renewals replace; id keeps
	// the one loaded at start (key and CA never change) (certrenew.go).
	cert certState

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{} // closed when the node stops by itself (left or removed)

	// mu guards the following fields.
	mu       sync.Mutex
	lastSeen map[string]time.Time // when each peer's link was last up
	linked   map[string]bool
	failed   map[string]time.Time // direct addresses whose dial failed, and when
	started  bool
	closed   bool
	stopWhy  error

	closeOnce sync.Once
	closeErr  error
}

// Errors callers branch on.
var (
	// ErrNoIdentity: the data dir holds no cluster and neither Bootstrap
	// nor Join was given.
	ErrNoIdentity = errors.New("data dir holds no cluster")
	// ErrLeft: this node left or was removed; its data dir cannot be
	// reused to rejoin.
	ErrLeft = errors.New("this node has left the cluster")
	// ErrRemoved: another member removed this node from the cluster. It
	// wraps ErrLeft.
	ErrRemoved = fmt.Errorf("%w: removed by the cluster", ErrLeft)
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("node closed")
)

// New checks cfg and returns a node that is not yet running.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Node{
		cfg:      cfg,
		log:      cfg.Logger.With("node", cfg.Name),
		ws:       peer.NewWSListener(),
		done:     make(chan struct{}),
		lastSeen: map[string]time.Time{},
		linked:   map[string]bool{},
		failed:   map[string]time.Time{},
		relay:    relayState{ln: peer.NewChanListener(relayNetAddr("relay"))},
	}, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Done is closed when the node stops on its own: after Leave, or when the
// cluster removed it. Err then says why.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns why the node stopped on its own, or nil.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopWhy
}

// leftMarker is written to the data dir when the node leaves or is
// removed, so a restart does not try to act as a member.
const leftMarker = "LEFT"

// Start brings the node up: it loads or creates the node's identity
// (bootstrapping a new cluster or joining one with a token), starts the
// peer links, Raft and the HTTP API, and returns. The cluster may still be
// electing a leader when Start returns.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.started {
		n.mu.Unlock()
		return errors.New("start: node already started")
	}
	n.started = true
	n.mu.Unlock()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.start(ctx); err != nil {
		n.Close()
		return err
	}
	return nil
}

func (n *Node) start(ctx context.Context) error {
	dir := n.cfg.DataDir
	if err := checkDataDir(dir); err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(dir, leftMarker)); err == nil {
		return &leftError{msg: fmt.Sprintf("cannot start from data dir %s: %s (remove the data dir and join again with a new token)", dir, bytesTrim(b))}
	}
	book, err := loadAddrBook(dir)
	if err != nil {
		return err
	}
	n.book = book

	// The peer listener comes first: its port goes into the join request.
	if n.cfg.PeerListener != nil {
		n.peerL = n.cfg.PeerListener
	} else if n.peerL, err = (&net.ListenConfig{Control: reusePort}).Listen(ctx, "tcp", n.cfg.PeerAddr); err != nil {
		return fmt.Errorf("listen for peers on %s: %w", n.cfg.PeerAddr, err)
	}

	id, err := pki.LoadIdentity(dir)
	switch {
	case err == nil:
		if id.Name != n.cfg.Name {
			return fmt.Errorf("%w: data dir %s belongs to node %q, not %q", ErrConfig, dir, id.Name, n.cfg.Name)
		}
		if err := checkCertExpiry(id, dir, time.Now()); err != nil {
			return err
		}
	case errors.Is(err, pki.ErrNoIdentity) && n.cfg.Bootstrap:
		if id, err = n.bootstrapIdentity(); err != nil {
			return err
		}
	case errors.Is(err, pki.ErrNoIdentity) && len(n.cfg.Join) > 0:
		if id, err = n.join(ctx); err != nil {
			return err
		}
	case errors.Is(err, pki.ErrNoIdentity):
		return fmt.Errorf("%w: %s: start with --bootstrap to create a cluster, or with --join HOST:PORT --token TOKEN to join one", ErrNoIdentity, dir)
	default:
		return fmt.Errorf("load identity: %w", err)
	}
	n.id = id
	n.cert.cur.Store(id)

	n.fsm = store.NewFSM(n.log.With("component", "store"))
	n.net, err = peer.New(peer.Config{
		Name:      n.cfg.Name,
		Cert:      id.TLSCertificate(),
		Roots:     id.Pool(),
		IsMember:  n.isMember,
		MemberKey: n.admittedKey,
		Resolve:   n.resolve,
		Dial:      n.dialRaw,
		Join:      n.serveJoin,
		OnLink:    n.onLink,
		OnUnlink:  n.onUnlink,
		OnSuspect: n.onSuspect,
		Logger:    n.log.With("component", "peer"),
		// Home links come back fast after an address change; do not let
		// a short-lived session inflate the wait beyond a few seconds.
		MaxBackoff:   4 * time.Second,
		SuspectAfter: linkSuspectAfter(n.cfg.Heartbeat),
	})
	if err != nil {
		return fmt.Errorf("peer links: %w", err)
	}
	if n.disco, err = newDisco(n); err != nil {
		return fmt.Errorf("address discovery: %w", err)
	}
	ctlL := n.net.Listen(wire.KindControl)
	n.wg.Go(func() { n.disco.serve(ctlL) })
	n.wg.Go(n.disco.tick)
	relayL := n.net.Listen(wire.KindRelay)
	n.wg.Go(func() { n.serveRelay(relayL) })
	raftL := n.net.Listen(wire.KindRaft)
	rpcL := n.net.Listen(wire.KindRPC)
	n.raft, err = consensus.Open(consensus.Config{
		Name:         n.cfg.Name,
		Dir:          dir,
		FSM:          n.fsm,
		RaftListener: raftL,
		RPCListener:  rpcL,
		Dial:         n.dialStream,
		Logger:       n.log.With("component", "raft"),
		Timing:       raftTiming(n.cfg.FailoverProfile),
	})
	if err != nil {
		return err
	}
	n.registerRPC()
	n.registerKVRPC()
	if n.roles, err = newRoleManager(n); err != nil {
		return err
	}
	n.registerRoleRPC()
	for _, l := range []net.Listener{n.peerL, n.ws, n.relay.ln} {
		n.wg.Go(func() {
			if err := n.net.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
				n.log.Error("peer listener stopped", "listener", l.Addr().String(), "err", err)
			}
		})
	}

	if _, err := os.Stat(filepath.Join(dir, bootstrapFile)); err == nil {
		if err := n.bootstrapRaft(); err != nil {
			return err
		}
	}
	// Links to every peer we know of, before Raft tells us the members.
	n.net.Keep(n.knownPeers(nil))

	if err := n.startDNS(); err != nil {
		return err
	}
	if err := n.startHTTP(); err != nil {
		return err
	}
	if err := n.startKVText(); err != nil {
		return err
	}
	n.wg.Go(n.watchState)
	n.wg.Go(n.leaderLoop)
	n.wg.Go(n.expireLoop)
	n.wg.Go(n.certLoop)
	n.roles.start()
	n.log.Info("node started", "peer_addr", n.peerL.Addr().String(), "ca", pki.CertHash(id.CADER))
	return nil
}

// leftError reports a data dir whose node departed; it wraps ErrLeft
// without repeating its text.
type leftError struct{ msg string }

func (e *leftError) Error() string { return e.msg }
func (e *leftError) Unwrap() error { return ErrLeft }

func bytesTrim(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

// checkDataDir creates dir if needed and proves it is writable, so that a
// read-only or full disk is reported at start, not at the first write.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, []byte("ok"), 0o600); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	return os.Remove(probe)
}

// dialStream opens a stream of kind to a peer, for Raft and RPCs.
func (n *Node) dialStream(ctx context.Context, name string, kind wire.Kind) (net.Conn, error) {
	s, err := n.net.Open(ctx, name, kind)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// isMember is the peer layer's handshake check. A departed member is
// refused. A name this node has not heard of yet is accepted: every
// certificate the CA signs is issued together with its member.join entry,
// and a node whose Raft state is behind (just joined, just restarted) must
// still let the leader in to catch up.
func (n *Node) isMember(name string) bool {
	m, ok := n.fsm.View().Members[name]
	return !ok || !m.Left
}

// admittedKey is the peer layer's key check: the key of the certificate a
// member was admitted with (nil for members recorded before keys were).
// A member removed and joined again under its old name has a new key, and
// the old certificate stops working.
func (n *Node) admittedKey(name string) ed25519.PublicKey {
	m, ok := n.fsm.View().Members[name]
	if !ok || m.Left || len(m.PublicKey) != ed25519.PublicKeySize {
		return nil
	}
	return ed25519.PublicKey(m.PublicKey)
}

// resolve gives the peer layer a name's candidate addresses: what worked
// or was observed last, then the member record's address.
func (n *Node) resolve(name string) []string {
	var direct []string
	add := func(a string) {
		if a != "" && !slices.Contains(direct, a) {
			direct = append(direct, a)
		}
	}
	if n.disco != nil {
		for _, a := range n.disco.candidates(name) {
			add(a)
		}
	}
	for _, a := range n.book.get(name) {
		add(a)
	}
	if m, ok := n.fsm.View().Members[name]; ok {
		add(m.Address)
	}
	// Addresses that failed lately go last, after the relays: two nodes
	// behind their own NATs then reach each other through a relay at once
	// instead of waiting out dead direct dials every time.
	now := time.Now()
	var ok, failed []string
	n.mu.Lock()
	for _, a := range direct {
		if t, bad := n.failed[a]; bad && now.Sub(t) < failHold {
			failed = append(failed, a)
		} else {
			ok = append(ok, a)
		}
	}
	n.mu.Unlock()
	out := ok
	for _, a := range n.relayCandidates(name) {
		if !slices.Contains(out, a) && !slices.Contains(failed, a) {
			out = append(out, a)
		}
	}
	return append(out, failed...)
}

// failHold is how long a failed direct address ranks below relays.
const failHold = 30 * time.Second

func (n *Node) onLink(name string, remote net.Addr, inbound bool) {
	n.mu.Lock()
	n.linked[name] = true
	n.lastSeen[name] = time.Now()
	n.mu.Unlock()
	n.disco.linkUp(name, remote, inbound)
	// A new link is a new relay for every peer we cannot reach: retry them
	// now rather than when their backoff ends.
	for _, m := range n.fsm.View().Current() {
		if m.Name != name && m.Name != n.cfg.Name && !n.alive(m.Name) {
			n.net.Kick(m.Name)
		}
	}
	if !inbound {
		n.book.learn(name, remote.String())
		return
	}
	if m, ok := n.fsm.View().Members[name]; ok {
		n.book.add(name, withPort(remote, m.PeerPort))
	}
}

func (n *Node) onSuspect(name string) { n.disco.suspect(name) }

func (n *Node) onUnlink(name string) {
	n.mu.Lock()
	n.linked[name] = false
	n.lastSeen[name] = time.Now()
	n.mu.Unlock()
	n.disco.linkDown(name)
}

func (n *Node) alive(name string) bool {
	if name == n.cfg.Name {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linked[name]
}

// knownPeers lists every peer name from the state and the address book.
func (n *Node) knownPeers(s *store.State) []string {
	var names []string
	if s != nil {
		for _, m := range s.Current() {
			names = append(names, m.Name)
		}
	}
	n.book.mu.Lock()
	for name := range n.book.known {
		if s == nil || !slices.Contains(names, name) && s.Members[name].Name == "" {
			names = append(names, name)
		}
	}
	n.book.mu.Unlock()
	return slices.DeleteFunc(names, func(s string) bool { return s == n.cfg.Name })
}

// watchState follows the replicated state: it keeps links to the current
// members, drops departed ones, learns member addresses, and stops the node
// if it was removed.
func (n *Node) watchState() {
	// departed holds when this node first saw each member gone; only this
	// goroutine uses it.
	departed := map[string]time.Time{}
	for {
		s := n.fsm.View()
		now := time.Now()
		var recheck time.Duration // > 0: a departed member's link is still in its grace time
		for _, m := range s.All() {
			if m.Left {
				n.book.forget(m.Name)
				if _, ok := departed[m.Name]; !ok {
					departed[m.Name] = now
				}
				if wait := departed[m.Name].Add(departGrace).Sub(now); wait > 0 {
					if recheck == 0 || wait < recheck {
						recheck = wait
					}
					continue
				}
				n.net.Disconnect(m.Name)
				continue
			}
			delete(departed, m.Name)
			if m.Name != n.cfg.Name {
				n.book.add(m.Name, m.Address)
			}
		}
		n.net.Keep(n.knownPeers(s))
		if err := n.book.save(); err != nil {
			n.log.Warn("saving peer addresses", "err", err)
		}
		if me, ok := s.Members[n.cfg.Name]; ok && me.Left {
			why := ErrLeft
			if me.LeftReason == "removed" {
				why = ErrRemoved
			}
			n.stopSelf(fmt.Errorf("%w at %s", why, me.LeftAt.Format(time.RFC3339)))
			return
		}
		var graceOver <-chan time.Time
		if recheck > 0 {
			graceOver = time.After(recheck)
		}
		select {
		case <-s.Next():
		case <-graceOver:
		case <-n.ctx.Done():
			return
		}
	}
}

// departGrace is how long a departed member's open link is kept before it
// is cut. Its new handshakes are refused at once (isMember), but the link
// it already has must carry the answer to its leave request and the commit
// of its own departure; cut at once, the member never learns it is out and
// never stops (a leave then hangs until the caller gives up).
const departGrace = 5 * time.Second

// stopSelf marks the data dir as departed and signals Done. The owner of
// the node (the agent, an embedding program) calls Close.
func (n *Node) stopSelf(why error) {
	n.mu.Lock()
	first := n.stopWhy == nil
	if first {
		n.stopWhy = why
	}
	n.mu.Unlock()
	if !first {
		return
	}
	if err := os.WriteFile(filepath.Join(n.cfg.DataDir, leftMarker), []byte(why.Error()+"\n"), 0o600); err != nil {
		n.log.Error("writing left marker", "err", err)
	}
	n.log.Warn("node stopping", "reason", why)
	close(n.done)
}

// leaderLoop runs the leader's duties: finishing a bootstrap, and keeping
// Raft's configuration in line with the member list.
func (n *Node) leaderLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n.raft.IsLeader() {
			n.leaderDuties()
		}
		select {
		case <-t.C:
		case <-n.fsm.View().Next():
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) leaderDuties() {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	if err := n.finishBootstrap(ctx); err != nil {
		n.log.Warn("finishing bootstrap", "err", err)
		return
	}
	s := n.fsm.View()
	if len(s.Cluster.CACertPEM) == 0 {
		return
	}
	names, alive := n.raftMembers(s, time.Now())
	if err := n.raft.Reconcile(names, n.cfg.MaxVoters, alive); err != nil {
		n.log.Warn("reconciling raft configuration", "err", err)
	}
}

// raftRemoveGrace is how long a removed member stays in Raft's
// configuration after its removal commits (a member that leaves learns it
// from the answer to its request). Removed from the
// configuration at once, it may never receive the commit index that
// covers its own departure (the leader stops replicating to it), never
// learn it is out, and keep dialing members that refuse it. Within the
// grace the leader's heartbeats carry that index to it; its link is kept
// for departGrace, which is longer.
const raftRemoveGrace = 2 * time.Second

// raftMembers are the names Raft's configuration should hold: current
// members, plus members removed less than raftRemoveGrace ago (never
// promoted: alive is false for them).
func (n *Node) raftMembers(s *store.State, now time.Time) ([]string, func(string) bool) {
	var names []string
	leaving := map[string]bool{}
	for _, m := range s.All() {
		switch {
		case !m.Left:
			names = append(names, m.Name)
		case m.LeftReason == "removed" && now.Sub(m.LeftAt) < raftRemoveGrace && m.Name != n.cfg.Name:
			names = append(names, m.Name)
			leaving[m.Name] = true
		}
	}
	return names, func(name string) bool { return !leaving[name] && n.alive(name) }
}

// Close stops the node and waits for everything it started.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		if n.cancel != nil {
			n.cancel()
		}
		n.ws.Close()
		n.relay.ln.Close()
		for _, c := range n.dnsUDP {
			c.Close()
		}
		if n.dnsTCP != nil {
			n.dnsTCP.Close()
		}
		var errs []error
		if n.http != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, n.http.Shutdown(sctx))
			cancel()
		}
		if n.roles != nil {
			errs = append(errs, n.roles.close())
		}
		// Peer links go before Raft: closing them ends every stream, so
		// nothing Raft or an rpc handler still waits on over the network
		// can hold the shutdown up. Left open meanwhile, the links also
		// kept taking probes from peers that saw this node go quiet.
		if n.net != nil {
			errs = append(errs, n.net.Close())
		} else if n.peerL != nil {
			n.peerL.Close()
		}
		if n.raft != nil {
			errs = append(errs, n.raft.Close())
		}
		n.wg.Wait()
		if n.book != nil {
			errs = append(errs, n.book.save())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// startHTTP serves the API unless disabled.
func (n *Node) startHTTP() error {
	if n.cfg.HTTPAddr == "-" && n.cfg.HTTPListener == nil {
		return nil
	}
	l := n.cfg.HTTPListener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", n.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen for the HTTP API on %s: %w", n.cfg.HTTPAddr, err)
		}
	}
	n.httpL = l
	mux := http.NewServeMux()
	mux.Handle(PeerPath, n.ws) // authenticated by the TLS inside, not the API token
	mux.Handle("/", api.NewWithOptions(apiBackend{n}, api.Options{Token: n.cfg.HTTPToken, Debug: n.cfg.EnableDebug}, n.log.With("component", "api")))
	n.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
	}
	n.wg.Go(func() {
		if err := n.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("HTTP API stopped", "err", err)
		}
	})
	return nil
}

// PeerPath is where the HTTP API server also accepts peer links carried in
// a WebSocket (for a reverse proxy in front of it).
const PeerPath = "/v1/peer"

// Handler serves peer links carried in a WebSocket, for mounting in an
// embedding program's web server at a path of its choice. Peers reach the
// node with --join wss://host/path. It works before Start (connections wait
// for the node to start) and stops with Close.
func (n *Node) Handler() http.Handler { return n.ws }

// dialRaw opens a raw transport connection to a peer address: a WebSocket
// for ws:// and wss:// URLs, otherwise Config.Dial or TCP.
func (n *Node) dialRaw(ctx context.Context, addr string) (net.Conn, error) {
	if via, target, ok := parseRelayAddr(addr); ok {
		return n.dialRelay(ctx, via, target)
	}
	if peer.IsWebSocketURL(addr) {
		return peer.DialWebSocket(ctx, addr)
	}
	var c net.Conn
	var err error
	if n.cfg.Dial != nil {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		c, err = n.cfg.Dial(cctx, addr)
		cancel()
	} else {
		c, err = n.dialTCP(ctx, addr)
	}
	n.mu.Lock()
	if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EADDRINUSE) {
		// The 4-tuple is taken: a session just came up the other way on
		// the same ports. Not evidence against the address.
	} else if err != nil && ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
		n.failed[addr] = time.Now()
	} else if err == nil {
		delete(n.failed, addr)
	}
	n.mu.Unlock()
	return c, err
}

// connectTimeout bounds a TCP connect: a peer's address that drops our
// SYNs (a NAT with no mapping) must not hold up the next candidate.
const connectTimeout = 3 * time.Second

// dialTCP connects from the port we listen on when it can (see reusePort),
// otherwise from an ephemeral port.
func (n *Node) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: connectTimeout}
	if port := listenPort(n.peerL); port > 0 && n.cfg.PeerListener == nil {
		fixed := d
		fixed.LocalAddr = &net.TCPAddr{Port: port}
		fixed.Control = reusePort
		c, err := fixed.DialContext(ctx, "tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return c, err
		}
		// That 4-tuple is taken (the peer dialed us from its port too, or
		// an old connection lingers in TIME_WAIT): use any port.
	}
	return d.DialContext(ctx, "tcp", addr)
}

// ListenAddr returns the local address the node accepts peer links on.
func (n *Node) ListenAddr() net.Addr {
	if n.peerL == nil {
		return nil
	}
	return n.peerL.Addr()
}

// HTTPAddr returns the address of the HTTP API, or nil if it is disabled.
func (n *Node) HTTPAddr() net.Addr {
	if n.httpL == nil {
		return nil
	}
	return n.httpL.Addr()
}
