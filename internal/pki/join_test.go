package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"
)

func TestVerifyCAHash(t *testing.T) {
	ca := newTestCA(t, "home")
	otherCA := newTestCA(t, "home")
	server := newTestIdentity(t, ca, "pi1")
	foreign := newTestIdentity(t, otherCA, "pi1")

	// chainOf parses what a server sends in its handshake.
	chainOf := func(id *Identity) []*x509.Certificate {
		var chain []*x509.Certificate
		for _, der := range id.TLSCertificate().Certificate {
			chain = append(chain, mustParseCert(t, der))
		}
		return chain
	}
	tests := []struct {
		name         string
		chain        []*x509.Certificate
		want         string
		now          time.Time
		wantMismatch bool
		wantInErr    string // "" for success
	}{
		{"right hash", chainOf(server), ca.Hash(), t0, false, ""},
		{"hash of another CA", chainOf(server), otherCA.Hash(), t0, true, "does not match the join token"},
		{"leaf only", chainOf(server)[:1], ca.Hash(), t0, true, "does not match the join token"},
		{"right CA, leaf from another CA", []*x509.Certificate{foreign.Cert, ca.Cert}, ca.Hash(), t0, false, "does not chain to the cluster CA"},
		{"CA presented as leaf", []*x509.Certificate{ca.Cert, ca.Cert}, ca.Hash(), t0, false, "server certificate"},
		{"expired leaf", chainOf(server), ca.Hash(), t0.Add(testTTL + time.Hour), false, "does not chain"},
		{"empty chain", nil, ca.Hash(), t0, false, "no certificate"},
		{"malformed hash", chainOf(server), "sha256:abc", t0, false, "hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyCAHash(tt.chain, tt.want, tt.now)
			checkErr(t, "VerifyCAHash()", err, tt.wantInErr)
			if gotMismatch := errors.Is(err, ErrCAHashMismatch); gotMismatch != tt.wantMismatch {
				t.Errorf("errors.Is(VerifyCAHash(), ErrCAHashMismatch) = %v, want %v", gotMismatch, tt.wantMismatch)
			}
			if err == nil && !got.Equal(ca.Cert) {
				t.Errorf("VerifyCAHash() returned %q, want the cluster CA", got.Subject)
			}
		})
	}
}

// TestJoinHandshake runs the joiner's side of a join over net.Pipe: the
// joiner has no certificate and trusts nothing but the hash in its token,
// checked from VerifyConnection.
func TestJoinHandshake(t *testing.T) {
	ca := newTestCA(t, "home")
	server := newTestIdentity(t, ca, "pi1")
	otherCA := newTestCA(t, "home")

	for _, tt := range []struct {
		name         string
		hash         string
		wantMismatch bool
	}{
		{"token for this cluster", ca.Hash(), false},
		{"token for another cluster", otherCA.Hash(), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := func() time.Time { return t0 }
			srvCfg := &tls.Config{
				MinVersion:             tls.VersionTLS13,
				Certificates:           []tls.Certificate{server.TLSCertificate()},
				Time:                   clock,
				SessionTicketsDisabled: true, // see handshake in identity_test.go
			}
			var gotCA *x509.Certificate
			cliCfg := &tls.Config{
				MinVersion:         tls.VersionTLS13,
				InsecureSkipVerify: true, // replaced by VerifyCAHash below
				Time:               clock,
				VerifyConnection: func(cs tls.ConnectionState) error {
					var err error
					gotCA, err = VerifyCAHash(cs.PeerCertificates, tt.hash, t0)
					return err
				},
			}
			cc, sc := net.Pipe()
			deadline := time.Now().Add(10 * time.Second) // safety net only
			cc.SetDeadline(deadline)
			sc.SetDeadline(deadline)
			done := make(chan error, 1)
			go func() { // ends with the handshake; closes sc to unblock the client
				defer sc.Close()
				done <- tls.Server(sc, srvCfg).Handshake()
			}()
			cerr := tls.Client(cc, cliCfg).Handshake()
			cc.Close()
			serr := <-done
			if tt.wantMismatch {
				if !errors.Is(cerr, ErrCAHashMismatch) {
					t.Errorf("client handshake = %v, want ErrCAHashMismatch", cerr)
				}
				if serr == nil {
					t.Errorf("server handshake = nil, want error after the joiner's refusal")
				}
				return
			}
			if cerr != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v; want success", cerr, serr)
			}
			if gotCA == nil || !gotCA.Equal(ca.Cert) {
				t.Errorf("VerifyCAHash in handshake returned %v, want the cluster CA", gotCA)
			}
		})
	}
}
