package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"buoy/internal/wire"
)

// reissue signs a new certificate for old's key and name, as a renewal
// does: same key, new serial, later expiry.
func (ca *testCA) reissue(t testing.TB, old tls.Certificate) tls.Certificate {
	t.Helper()
	key := old.PrivateKey.(ed25519.PrivateKey)
	tmpl := *old.Leaf
	tmpl.SerialNumber = new(big.Int).Add(old.Leaf.SerialNumber, big.NewInt(1))
	tmpl.NotAfter = old.Leaf.NotAfter.Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}
}

// TestSetCert: after SetCert, new handshakes present the new certificate
// in both directions (accepting a join connection, dialing a peer), and
// the session that was up before keeps carrying streams.
func TestSetCert(t *testing.T) {
	c := newCluster(t)
	aCert := c.ca.node(t, "a")
	a := c.start("a", func(cfg *Config) { cfg.Cert = aCert })
	c.start("b", nil)
	roundTrip(t, a, "b", wire.KindRPC)
	before := a.net.Links()

	renewed := c.ca.reissue(t, aCert)
	if err := a.net.SetCert(renewed); err != nil {
		t.Fatalf("SetCert(renewed) = %v", err)
	}
	if got := a.net.Cert().Leaf.SerialNumber; got.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Errorf("Cert() serial = %v, want %v", got, renewed.Leaf.SerialNumber)
	}

	// The existing session goes on.
	roundTrip(t, a, "b", wire.KindRaft)
	if after := a.net.Links(); len(after) != 1 || len(before) != 1 || !after[0].Since.Equal(before[0].Since) {
		t.Errorf("links after SetCert = %+v, want the same session as before (%+v)", after, before)
	}

	// a as TLS server: a join connection sees the new certificate.
	conn, err := tls.Dial("tcp", a.ln.Addr().String(), &tls.Config{
		RootCAs: c.ca.pool, ServerName: "a", NextProtos: []string{ALPNJoin}, MinVersion: tls.VersionTLS13,
	})
	if err != nil {
		t.Fatalf("join dial to a: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if served.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 {
		t.Errorf("a served serial %v, want the renewed %v", served.SerialNumber, renewed.Leaf.SerialNumber)
	}

	// a as TLS client: a peer "x" that only records the client
	// certificate sees the new one.
	got := make(chan *x509.Certificate, 1)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{c.ca.node(t, "x")},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{ALPNPeer},
		MinVersion:   tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			select {
			case got <- cs.PeerCertificates[0]:
			default:
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	c.setAddr("x", ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := a.net.Open(ctx, "x", wire.KindRPC); err == nil {
		s.Close() // x speaks no yamux; only its handshake matters
	}
	select {
	case cert := <-got:
		if cert.SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 {
			t.Errorf("a presented client serial %v, want the renewed %v", cert.SerialNumber, renewed.Leaf.SerialNumber)
		}
	case <-ctx.Done():
		t.Fatal("a never completed a handshake with x")
	}
}

func TestSetCertRefuses(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", nil)
	other := c.ca.node(t, "b")
	tests := []struct {
		name string
		cert tls.Certificate
	}{
		{"empty", tls.Certificate{}},
		{"no key", tls.Certificate{Certificate: other.Certificate}},
		{"another name", other},
		{"garbage", tls.Certificate{Certificate: [][]byte{[]byte("junk")}, PrivateKey: other.PrivateKey}},
	}
	want := a.net.Cert().Leaf.SerialNumber
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.net.SetCert(tt.cert); err == nil {
				t.Errorf("SetCert(%s) = nil, want an error", tt.name)
			}
			if got := a.net.Cert().Leaf.SerialNumber; got.Cmp(want) != 0 {
				t.Errorf("after a refused SetCert, Cert() serial = %v, want %v", got, want)
			}
		})
	}
}
