package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy/internal/wire"
)

// expectClosed reads from conn until the server closes it; a read timeout
// means the server kept the connection open.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("server kept the connection open: %v", err)
	}
}

// TestRefusals sends bad input to a node's listener: each must be refused
// with the connection closed, a log line naming the reason, and no link.
func TestRefusals(t *testing.T) {
	c := newCluster(t)
	other := newTestCA(t, time.Now())
	goodCert := c.ca.node(t, "good")
	goneCert := c.ca.node(t, "gone")
	foreignCert := other.node(t, "good")
	c.remove("gone")

	dialTLS := func(t *testing.T, addr string, cfg *tls.Config) {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		conn := tls.Client(raw, cfg)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		// In TLS 1.3 the client may finish before the server has checked
		// its certificate; the refusal then shows on the first read.
		if err := conn.Handshake(); err == nil {
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Errorf("read after refused handshake succeeded")
			}
		}
		expectClosed(t, raw)
	}
	clientCfg := func(cert *tls.Certificate, protos ...string) *tls.Config {
		cfg := &tls.Config{
			RootCAs:    c.ca.pool,
			ServerName: "srv",
			NextProtos: protos,
			MinVersion: tls.VersionTLS13,
		}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return cfg
	}

	tests := []struct {
		name   string
		reason string
		send   func(t *testing.T, addr string)
	}{
		{"random bytes", "not TLS", func(t *testing.T, addr string) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			junk := make([]byte, 512)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range junk {
				junk[i] = byte(r.Uint32())
			}
			junk[0] = 0x42 // not a TLS record type, whatever the seed
			conn.Write(junk)
			expectClosed(t, conn)
		}},
		{"plain HTTP", "not TLS", func(t *testing.T, addr string) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: srv\r\n\r\n")
			expectClosed(t, conn)
		}},
		{"TLS 1.2 only", "TLS version below 1.3", func(t *testing.T, addr string) {
			cfg := clientCfg(&goodCert, ALPNPeer)
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			dialTLS(t, addr, cfg)
		}},
		{"certificate from another CA", "certificate from another CA", func(t *testing.T, addr string) {
			dialTLS(t, addr, clientCfg(&foreignCert, ALPNPeer))
		}},
		{"removed member", "not a member", func(t *testing.T, addr string) {
			dialTLS(t, addr, clientCfg(&goneCert, ALPNPeer))
		}},
		{"peer ALPN without certificate", "no client certificate", func(t *testing.T, addr string) {
			dialTLS(t, addr, clientCfg(nil, ALPNPeer))
		}},
		{"no ALPN", "wrong ALPN", func(t *testing.T, addr string) {
			dialTLS(t, addr, clientCfg(&goodCert))
		}},
		{"other ALPN", "wrong ALPN", func(t *testing.T, addr string) {
			dialTLS(t, addr, clientCfg(&goodCert, "h2"))
		}},
		{"join without Join handler", "joining not enabled", func(t *testing.T, addr string) {
			dialTLS(t, addr, clientCfg(nil, ALPNJoin))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := c.start("srv", nil)
			tt.send(t, srv.ln.Addr().String())
			eventually(t, "refusal log line", func() bool {
				return len(srv.logs.lines("peer connection refused", `reason="`+tt.reason+`"`)) == 1
			})
			if line := srv.logs.lines("peer connection refused")[0]; !strings.Contains(line, "remote=127.0.0.1:") {
				t.Errorf("refusal line lacks the remote address: %s", line)
			}
			if links := srv.net.Links(); len(links) != 0 {
				t.Errorf("Links() = %v after refused connection, want none", links)
			}
			srv.stop()
		})
	}
}

func TestJoinHandoff(t *testing.T) {
	c := newCluster(t)
	srv := c.start("srv", func(cfg *Config) {
		cfg.Join = func(ctx context.Context, conn *tls.Conn) {
			if cs := conn.ConnectionState(); cs.NegotiatedProtocol != ALPNJoin || len(cs.PeerCertificates) != 0 {
				t.Errorf("Join got ALPN %q with %d certs", cs.NegotiatedProtocol, len(cs.PeerCertificates))
			}
			io.WriteString(conn, "welcome\n")
			<-ctx.Done() // holds the connection until Close, as a slow join would
		}
	})
	conn, err := tls.Dial("tcp", srv.ln.Addr().String(), &tls.Config{
		RootCAs: c.ca.pool, ServerName: "srv", NextProtos: []string{ALPNJoin}, MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatalf("join dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 8)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "welcome\n" {
		t.Fatalf("join read = %q, %v; want welcome", got, err)
	}
	srv.stop() // must end the Join call
	expectClosed(t, conn)
}

// TestWrongServerName dials "b" at an address where "c" answers: the
// dialer must refuse, even though c's certificate is valid, and even if it
// also lists b among its DNS names (the name is the CN).
func TestWrongServerName(t *testing.T) {
	tests := []struct {
		name     string
		dnsNames []string
	}{
		{"certificate for c", []string{"c"}},
		{"certificate for c also valid for b", []string{"c", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t)
			a := c.start("a", nil)
			cNode := c.start("c", func(cfg *Config) {
				cfg.Cert = c.ca.nodeWithNames(t, "c", tt.dnsNames)
			})
			c.setAddr("b", cNode.ln.Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := a.net.Open(ctx, "b", wire.KindRPC)
			if !errors.Is(err, ErrWrongPeer) {
				t.Fatalf("Open(b) reaching c = %v, %v; want ErrWrongPeer", s, err)
			}
			if lines := a.logs.lines("peer refused", `reason="certificate name mismatch"`); len(lines) != 1 {
				t.Errorf("a logged %d name mismatch refusals, want 1:\n%s", len(lines), a.logs)
			}
			if len(a.net.Links()) != 0 {
				t.Errorf("a has links %v, want none", a.net.Links())
			}
			eventually(t, "c's refusal", func() bool { return len(cNode.logs.lines("peer connection refused")) == 1 })
			if len(cNode.net.Links()) != 0 {
				t.Errorf("c has links %v, want none", cNode.net.Links())
			}
		})
	}
}

// TestRemovedMemberDialed checks the dialing side also asks IsMember.
func TestRemovedMemberDialed(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	c.start("b", nil)
	roundTrip(t, a, "b", wire.KindRPC)
	c.remove("b")
	a.net.Disconnect("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := a.net.Open(ctx, "b", wire.KindRPC); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Open(removed b) = %v, %v; want ErrNotMember", s, err)
	}
}

// TestUnknownKindStream opens a stream with a bad kind byte: that stream
// is closed, the session stays and carries other streams.
func TestUnknownKindStream(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	b := c.start("b", nil)
	roundTrip(t, a, "b", wire.KindRPC)
	l := a.net.current("b")
	st, err := l.sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0xEE, 'x', 'y'})
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := st.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on unknown-kind stream = %d, %v; want EOF", n, err)
	}
	eventually(t, "log line", func() bool { return len(b.logs.lines("peer stream refused", "unknown stream kind")) == 1 })
	roundTrip(t, a, "b", wire.KindControl)
	if now := a.net.current("b"); now != l {
		t.Errorf("session replaced after a bad stream")
	}
}

// recordingProxy forwards one connection at a time to target and records
// what the client sent.
type recordingProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	sent   bytes.Buffer
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	p.wg.Go(p.run)
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.Write(b)
}

func (p *recordingProxy) recorded() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.sent.Bytes())
}

func (p *recordingProxy) run() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.wg.Go(func() {
			io.Copy(io.MultiWriter(server, p), client)
			server.Close()
		})
		p.wg.Go(func() {
			io.Copy(client, server)
			client.Close()
		})
	}
}

// TestReplay records what a node sent over a whole session through a
// proxy, then replays it raw to the server: TLS 1.3's fresh randoms and
// keys make the handshake fail, and nothing reaches a listener.
func TestReplay(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	b := c.start("b", nil)
	proxy := newRecordingProxy(t, b.ln.Addr().String())
	c.setAddr("b", proxy.ln.Addr().String())
	for _, k := range allKinds {
		roundTrip(t, a, "b", k)
	}
	a.stop()
	eventually(t, "b drops the session", func() bool { return len(b.net.Links()) == 0 })
	record := proxy.recorded()
	if len(record) < 500 {
		t.Fatalf("recorded only %d bytes", len(record))
	}
	before := make(map[wire.Kind]int)
	for _, k := range allKinds {
		before[k] = b.accepted[k].get()
		if before[k] != 1 {
			t.Errorf("b accepted %d %s streams in the recorded session, want 1", before[k], k)
		}
	}

	conn, err := net.Dial("tcp", b.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	replayer := conn.LocalAddr().String()
	// Write on its own goroutine: the server may close before reading all.
	var wg sync.WaitGroup
	wg.Go(func() { conn.Write(record) })
	expectClosed(t, conn)
	wg.Wait()
	eventually(t, "refusal of the replay", func() bool {
		return len(b.logs.lines("peer connection refused", "remote="+replayer)) == 1
	})
	t.Logf("refusal: %s", b.logs.lines("peer connection refused", "remote="+replayer)[0])
	if len(b.net.Links()) != 0 {
		t.Errorf("b has links %v after the replay, want none", b.net.Links())
	}
	for _, k := range allKinds {
		if got := b.accepted[k].get(); got != before[k] {
			t.Errorf("b accepted %d %s streams after the replay, want %d", got, k, before[k])
		}
	}
}

// TestStaleCertRefused: a certificate that names a member but carries
// another key than the one the member was admitted with (a member removed
// and admitted again under its old name) is refused on both sides of a
// handshake; the admitted key is accepted.
func TestStaleCertRefused(t *testing.T) {
	c := newCluster(t)
	bCert := c.ca.node(t, "b")
	bKey := bCert.PrivateKey.(ed25519.PrivateKey).Public().(ed25519.PublicKey)
	otherKey, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	admitted := map[string]ed25519.PublicKey{"b": otherKey} // b re-admitted with a new key
	memberKey := func(name string) ed25519.PublicKey {
		mu.Lock()
		defer mu.Unlock()
		return admitted[name]
	}
	a := c.start("a", func(cfg *Config) { cfg.MemberKey = memberKey })
	b := c.start("b", func(cfg *Config) { cfg.Cert = bCert })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// a dials b, which shows its old certificate.
	if s, err := a.net.Open(ctx, "b", wire.KindRPC); !errors.Is(err, ErrStaleCert) {
		t.Fatalf("Open(b with an old certificate) = %v, %v; want ErrStaleCert", s, err)
	}
	// b dials a: a refuses b's certificate as the accepting side.
	if s, err := b.net.Open(ctx, "a", wire.KindRPC); err == nil {
		s.Close()
		t.Fatal("b with an old certificate opened a stream to a")
	}
	eventually(t, "a's refusal of b's old certificate", func() bool {
		return len(a.logs.lines("peer connection refused", `reason="certificate of an earlier member"`)) >= 1
	})
	if len(a.net.Links()) != 0 {
		t.Errorf("a has links %v, want none", a.net.Links())
	}

	// With the key b was admitted with, the same certificate works.
	mu.Lock()
	admitted["b"] = bKey
	mu.Unlock()
	eventually(t, "a link once the key matches", func() bool {
		s, err := a.net.Open(ctx, "b", wire.KindRPC)
		if err != nil {
			return false
		}
		s.Close()
		return true
	})
}
