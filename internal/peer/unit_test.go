package peer

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestJitter(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, DefaultMinBackoff, DefaultMaxBackoff} {
		lo, hi := d, d
		for range 1000 {
			j := jitter(d)
			lo, hi = min(lo, j), max(hi, j)
		}
		if lo < d*8/10 || hi > d*12/10 {
			t.Errorf("jitter(%v) ranged over [%v, %v], want within ±20%%", d, lo, hi)
		}
		if lo == hi {
			t.Errorf("jitter(%v) never varied", d)
		}
	}
}

func TestPreferred(t *testing.T) {
	tests := []struct {
		newDialer, oldDialer string
		want                 bool
	}{
		{"a", "b", true},  // the smaller name's dial wins
		{"b", "a", false}, // ... both ways
		{"a", "a", true},  // same dialer: it lost the old one, the new one wins
		{"b", "b", true},
		{"node-10", "node-9", true}, // plain byte order, not numeric
	}
	for _, tt := range tests {
		got := preferred(&link{dialer: tt.newDialer}, &link{dialer: tt.oldDialer})
		if got != tt.want {
			t.Errorf("preferred(new by %q, old by %q) = %v, want %v", tt.newDialer, tt.oldDialer, got, tt.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ca := newTestCA(t, time.Now())
	cert := ca.node(t, "a")
	noLeaf := cert
	noLeaf.Leaf = nil
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"valid", Config{Name: "a", Cert: cert, Roots: ca.pool}, true},
		{"valid without parsed leaf", Config{Name: "a", Cert: noLeaf, Roots: ca.pool}, true},
		{"no name", Config{Cert: cert, Roots: ca.pool}, false},
		{"no roots", Config{Name: "a", Cert: cert}, false},
		{"no cert", Config{Name: "a", Roots: ca.pool}, false},
		{"cert for another name", Config{Name: "b", Cert: cert, Roots: ca.pool}, false},
		{"cert without DNS name", Config{Name: "a", Cert: ca.nodeWithNames(t, "a", nil), Roots: ca.pool}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%s) = %v, want ok=%v", tt.name, err, tt.ok)
			}
			if n != nil {
				if err := n.Close(); err != nil {
					t.Errorf("Close() = %v", err)
				}
				if err := n.Close(); err != nil {
					t.Errorf("second Close() = %v", err)
				}
			}
		})
	}
}

func TestCertName(t *testing.T) {
	tests := []struct {
		cn       string
		dnsNames []string
		want     string
		ok       bool
	}{
		{"a", []string{"a"}, "a", true},
		{"a", []string{"x", "a"}, "a", true},
		{"a", []string{"b"}, "", false},
		{"", []string{""}, "", false},
		{"a", nil, "", false},
	}
	for _, tt := range tests {
		c := &x509.Certificate{DNSNames: tt.dnsNames}
		c.Subject.CommonName = tt.cn
		got, err := certName(c)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("certName(CN %q, DNS %q) = %q, %v; want %q, ok=%v", tt.cn, tt.dnsNames, got, err, tt.want, tt.ok)
		}
	}
}

// clientHello returns the first flight of a TLS client with cfg.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		tls.Client(c1, cfg).Handshake()
		c1.Close()
	}()
	buf := make([]byte, 4096)
	n, err := c2.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// FuzzInbound feeds arbitrary bytes to the accepting side of a link as a
// raw connection: it must refuse them without panicking, log why, and
// adopt nothing.
func FuzzInbound(f *testing.F) {
	ca := newTestCA(f, time.Now())
	var logs bytes.Buffer
	n, err := New(Config{
		Name: "srv", Cert: ca.node(f, "srv"), Roots: ca.pool,
		Logger:           slog.New(slog.NewTextHandler(&logs, nil)),
		HandshakeTimeout: time.Second,
	})
	if err != nil {
		f.Fatal(err)
	}
	defer n.Close()
	f.Add([]byte("GET / HTTP/1.1\r\nHost: srv\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00})
	f.Add(clientHello(f, &tls.Config{ServerName: "srv", NextProtos: []string{ALPNPeer}, InsecureSkipVerify: true}))
	f.Add(clientHello(f, &tls.Config{ServerName: "srv", MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}))
	f.Fuzz(func(t *testing.T, data []byte) {
		logs.Reset()
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			client.Write(data)
			client.Close() // then EOF: the handshake cannot complete
		}()
		go io.Copy(io.Discard, client) // absorb the server's replies
		n.handleInbound(server)
		<-done
		if !strings.Contains(logs.String(), "peer connection refused") {
			t.Errorf("no refusal logged for %q:\n%s", data, logs.String())
		}
		if links := n.Links(); len(links) != 0 {
			t.Fatalf("Links() = %v after fuzz input", links)
		}
	})
}
