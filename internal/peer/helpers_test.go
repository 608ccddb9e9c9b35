package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy/internal/wire"
)

// testCA is a throwaway cluster CA issuing Ed25519 node certificates shaped
// like internal/pki's: CN = DNS name = node name, client and server auth.
type testCA struct {
	cert *x509.Certificate
	key  ed25519.PrivateKey
	pool *x509.CertPool
	now  time.Time
}

func newTestCA(t testing.TB, now time.Time) *testCA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, now: now}
}

// node issues a certificate for name; the chain includes the CA.
func (ca *testCA) node(t testing.TB, name string) tls.Certificate {
	t.Helper()
	return ca.nodeWithNames(t, name, []string{name})
}

// nodeWithNames issues a certificate with CN name and the given DNS names.
func (ca *testCA) nodeWithNames(t testing.TB, name string, dnsNames []string) tls.Certificate {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     dnsNames,
		NotBefore:    ca.now.Add(-time.Hour),
		NotAfter:     ca.now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines containing every one of subs.
func (b *logBuffer) lines(subs ...string) []string {
	var out []string
	for line := range strings.Lines(b.String()) {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// eventually polls cond for up to 10 s on real-socket tests, where there is
// no virtual clock to wait on.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cluster is a set of test nodes sharing one CA, an address book and a
// membership list.
type cluster struct {
	t    testing.TB
	ca   *testCA
	dial func(ctx context.Context, addr string) (net.Conn, error)
	// listen makes the raw listener of a node; TCP on 127.0.0.1 by default.
	listen func() net.Listener

	mu      sync.Mutex
	addrs   map[string][]string
	removed map[string]bool
	events  []string
}

func newCluster(t testing.TB) *cluster {
	return &cluster{
		t:  t,
		ca: newTestCA(t, time.Now()),
		listen: func() net.Listener {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
		addrs:   make(map[string][]string),
		removed: make(map[string]bool),
	}
}

func (c *cluster) setAddr(name string, addrs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[name] = addrs
}

func (c *cluster) resolve(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[name]
}

func (c *cluster) isMember(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.removed[name]
}

func (c *cluster) remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removed[name] = true
}

func (c *cluster) event(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, s)
}

func (c *cluster) eventLog() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.events...)
}

// testNode is one running Network with echo servers on every kind.
type testNode struct {
	name     string
	net      *Network
	ln       net.Listener
	logs     *logBuffer
	accepted map[wire.Kind]*counter
	done     chan struct{} // closed when Serve and the echo servers returned
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

var allKinds = []wire.Kind{wire.KindControl, wire.KindRaft, wire.KindRPC, wire.KindRelay}

// start runs node name with its own listener, registers its address and
// closes it at test end. mod adjusts the Config before New.
func (c *cluster) start(name string, mod func(*Config)) *testNode {
	c.t.Helper()
	logs := &logBuffer{}
	ln := c.listen()
	cfg := Config{
		Name:     name,
		Cert:     c.ca.node(c.t, name),
		Roots:    c.ca.pool,
		IsMember: c.isMember,
		Resolve:  c.resolve,
		Dial:     c.dial,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnLink: func(peer string, _ net.Addr, inbound bool) {
			c.event(fmt.Sprintf("%s: up %s inbound=%v", name, peer, inbound))
		},
		OnUnlink: func(peer string) { c.event(fmt.Sprintf("%s: down %s", name, peer)) },
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s) = %v", name, err)
	}
	tn := &testNode{name: name, net: n, ln: ln, logs: logs, accepted: make(map[wire.Kind]*counter), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := n.Serve(ln); !errors.Is(err, ErrClosed) {
			c.t.Errorf("%s: Serve = %v, want ErrClosed", name, err)
		}
	})
	for _, k := range allKinds {
		cnt := &counter{}
		tn.accepted[k] = cnt
		l := n.Listen(k)
		wg.Go(func() { echoServer(l, cnt) })
	}
	go func() { wg.Wait(); close(tn.done) }()
	c.setAddr(name, ln.Addr().String())
	c.t.Cleanup(tn.stop)
	return tn
}

// stop closes the node and waits for its Serve and echo servers.
func (tn *testNode) stop() {
	tn.net.Close()
	<-tn.done
}

// echoServer answers each stream with "<peer> <kind>\n" and then echoes it.
func echoServer(l *Listener, cnt *counter) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := l.AcceptStream()
		if err != nil {
			return
		}
		cnt.add()
		wg.Go(func() {
			defer s.Close()
			fmt.Fprintf(s, "%s %s\n", s.Peer, s.Kind)
			io.Copy(s, s)
		})
	}
}

// roundTrip opens a stream of kind from a to b, checks the greeting and the
// echo of a message.
func roundTrip(t testing.TB, from *testNode, to string, kind wire.Kind) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.net.Open(ctx, to, kind)
	if err != nil {
		t.Fatalf("%s: Open(%s, %s) = %v", from.name, to, kind, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if s.Peer != to || s.Kind != kind {
		t.Errorf("Open(%s, %s) gave stream to %s of kind %s", to, kind, s.Peer, s.Kind)
	}
	msg := fmt.Sprintf("hello %s from %s", kind, from.name)
	if _, err := fmt.Fprintln(s, msg); err != nil {
		t.Fatalf("write to %s: %v", to, err)
	}
	want := fmt.Sprintf("%s %s\n%s\n", from.name, kind, msg)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("%s→%s %s: read = %v (got %q)", from.name, to, kind, err, got)
	}
	if string(got) != want {
		t.Errorf("%s→%s %s: read %q, want %q", from.name, to, kind, got, want)
	}
}

// linkTo returns n's link to name.
func linkTo(n *Network, name string) (Link, bool) {
	for _, l := range n.Links() {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// agreed reports whether a and b each have exactly one link to the other,
// dialed by the same node.
func agreed(a, b *testNode) bool {
	la, oka := linkTo(a.net, b.name)
	lb, okb := linkTo(b.net, a.name)
	return oka && okb && la.Dialer == lb.Dialer && la.Inbound != lb.Inbound
}

// blackholeDial dials TCP, except to the address "blackhole", where it
// hangs until ctx ends, like a dial to an address that swallows packets
// (the peer moved, or sits behind a NAT).
func blackholeDial(ctx context.Context, addr string) (net.Conn, error) {
	if addr == "blackhole" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
