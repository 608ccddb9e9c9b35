package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSignRoundTrip(t *testing.T) {
	ca := newTestCA(t, "home")
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, "pi-2")
	if err != nil {
		t.Fatalf("NewCSR() = %v", err)
	}
	der, err := ca.Sign(csr, "pi-2", t0, testTTL)
	if err != nil {
		t.Fatalf("Sign() = %v", err)
	}
	c := mustParseCert(t, der)
	if name, err := NameOf(c); name != "pi-2" || err != nil {
		t.Errorf("NameOf(signed) = %q, %v, want %q, nil", name, err, "pi-2")
	}
	if err := c.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("signed certificate does not verify under the CA: %v", err)
	}
	if !c.PublicKey.(ed25519.PublicKey).Equal(key.Public()) {
		t.Errorf("certificate key differs from the CSR's key")
	}
	if c.IsCA {
		t.Errorf("node certificate has IsCA set")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature only", c.KeyUsage)
	}
	wantEKU := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if !slices.Equal(c.ExtKeyUsage, wantEKU) {
		t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, wantEKU)
	}
	if !c.NotBefore.Equal(t0.Add(-Backdate)) || !c.NotAfter.Equal(t0.Add(testTTL)) {
		t.Errorf("validity %v..%v, want %v..%v", c.NotBefore, c.NotAfter, t0.Add(-Backdate), t0.Add(testTTL))
	}
	again, err := ca.Sign(csr, "pi-2", t0, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	if mustParseCert(t, again).SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Errorf("two certificates share serial %v", c.SerialNumber)
	}
}

// csrWith builds a CSR from an arbitrary template, for requests NewCSR
// would refuse to make.
func csrWith(t *testing.T, tmpl *x509.CertificateRequest, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

func TestSignErrors(t *testing.T) {
	ca := newTestCA(t, "home")
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	good, err := NewCSR(key, "pi1")
	if err != nil {
		t.Fatal(err)
	}

	// Flip the last byte: that is inside the signature.
	tampered := append([]byte{}, good...)
	tampered[len(tampered)-1] ^= 0x01

	// Swap in another public key: the request is well formed but signed
	// by a key other than the one it asks a certificate for.
	otherKey, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if bytes.Count(good, pub) != 1 {
		t.Fatalf("public key found %d times in the CSR, want 1", bytes.Count(good, pub))
	}
	otherSigner := bytes.Replace(good, pub, otherKey.Public().(ed25519.PublicKey), 1)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		csr       []byte
		signName  string
		now       time.Time
		ttl       time.Duration
		wantBad   bool // want ErrBadCSR
		wantInErr string
	}{
		{"tampered signature", tampered, "pi1", t0, testTTL, true, "signature does not verify"},
		{"signed by another key", otherSigner, "pi1", t0, testTTL, true, "signature does not verify"},
		{"CSR for another name", good, "pi2", t0, testTTL, true, `common name "pi1" does not match the requested name "pi2"`},
		{"CN differs from DNS name", csrWith(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pi1"}, DNSNames: []string{"pi9"}}, key), "pi1", t0, testTTL, true, "DNS names"},
		{"no DNS name", csrWith(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pi1"}}, key), "pi1", t0, testTTL, true, "DNS names"},
		{"two DNS names", csrWith(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pi1"}, DNSNames: []string{"pi1", "pi2"}}, key), "pi1", t0, testTTL, true, "DNS names"},
		{"IP SAN", csrWith(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pi1"}, DNSNames: []string{"pi1"}, IPAddresses: []net.IP{net.IPv4(192, 0, 2, 1)}}, key), "pi1", t0, testTTL, true, "IP, email or URI"},
		{"ECDSA key", csrWith(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "pi1"}, DNSNames: []string{"pi1"}}, ecKey), "pi1", t0, testTTL, true, "want Ed25519"},
		{"garbage", []byte("not a csr"), "pi1", t0, testTTL, true, "invalid certificate request"},
		{"empty", nil, "pi1", t0, testTTL, true, "invalid certificate request"},
		{"invalid requested name", csrWith(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "Pi1"}, DNSNames: []string{"Pi1"}}, key), "Pi1", t0, testTTL, false, "uppercase"},
		{"zero ttl", good, "pi1", t0, 0, false, "not positive"},
		{"ttl beyond the CA", good, "pi1", t0, CAValidity + time.Hour, false, "outlive the CA"},
		{"CA not yet valid", good, "pi1", t0.Add(-2 * Backdate), testTTL, false, "CA is not valid"},
		{"CA expired", good, "pi1", t0.Add(CAValidity + time.Hour), testTTL, false, "CA is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := ca.Sign(tt.csr, tt.signName, tt.now, tt.ttl)
			if err == nil {
				t.Fatalf("Sign(%q) = %d bytes, nil; want error containing %q", tt.signName, len(der), tt.wantInErr)
			}
			checkErr(t, "Sign()", err, tt.wantInErr)
			if got := errors.Is(err, ErrBadCSR); got != tt.wantBad {
				t.Errorf("errors.Is(%v, ErrBadCSR) = %v, want %v", err, got, tt.wantBad)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name      string
		wantInErr string // "" for valid
	}{
		{"pi1", ""},
		{"a", ""},
		{"0", ""},
		{"web-01", ""},
		{"a-b-c", ""},
		{strings.Repeat("a", 63), ""},
		{"", "empty"},
		{strings.Repeat("a", 64), "64 characters, at most 63"},
		{"Pi1", "uppercase"},
		{"pi1.home", "single DNS label"},
		{"pi1.", "single DNS label"},
		{"-pi", "starts with '-'"},
		{"pi-", "ends with '-'"},
		{"-", "starts with '-'"},
		{"pi_1", "allowed are a-z, 0-9 and '-'"},
		{"pi 1", "allowed are"},
		{"pï", "allowed are"},
		{"pi\x00", "allowed are"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.name)
			checkErr(t, "ValidName("+tt.name+")", err, tt.wantInErr)
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Errorf("ValidName(%q) = %v, want it to wrap ErrInvalidName", tt.name, err)
			}
		})
	}
	// NewCSR refuses what ValidName refuses, before making anything.
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCSR(key, "Bad.Name"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NewCSR(%q) = %v, want ErrInvalidName", "Bad.Name", err)
	}
}

func TestNameOf(t *testing.T) {
	ca := newTestCA(t, "home")
	key, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	// mk issues a certificate straight from a template, bypassing Sign, to
	// get certificates Sign would never issue.
	mk := func(cn string, dns []string, ips []net.IP) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: mustSerial(t), Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
			NotBefore: t0, NotAfter: t0.Add(testTTL),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		return mustParseCert(t, der)
	}
	tests := []struct {
		name      string
		cert      *x509.Certificate
		want      string
		wantInErr string
	}{
		{"good", mk("pi1", []string{"pi1"}, nil), "pi1", ""},
		{"nil", nil, "", "no certificate"},
		{"no SAN", mk("pi1", nil, nil), "", "want exactly 1"},
		{"two SANs", mk("pi1", []string{"pi1", "pi2"}, nil), "", "want exactly 1"},
		{"CN differs", mk("pi1", []string{"pi2"}, nil), "", "differs"},
		{"extra IP SAN", mk("pi1", []string{"pi1"}, []net.IP{net.IPv4(192, 0, 2, 1)}), "", "IP, email or URI"},
		{"invalid name", mk("pi_1", []string{"pi_1"}, nil), "", "allowed are"},
		{"CA certificate", ca.Cert, "", "want exactly 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NameOf(tt.cert)
			checkErr(t, "NameOf()", err, tt.wantInErr)
			if got != tt.want {
				t.Errorf("NameOf() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzSign(f *testing.F) {
	ca, err := NewCA("fuzz", t0)
	if err != nil {
		f.Fatal(err)
	}
	key, err := NewNodeKey()
	if err != nil {
		f.Fatal(err)
	}
	good, err := NewCSR(key, "pi1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "pi1")
	f.Add(good, "pi2")
	f.Add(good[:len(good)/2], "pi1")
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, "pi1")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, csr []byte, name string) {
		der, err := ca.Sign(csr, name, t0, testTTL)
		if err != nil {
			return
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("Sign returned an unparsable certificate: %v", err)
		}
		if got, err := NameOf(c); err != nil || got != name {
			t.Fatalf("NameOf(Sign(csr, %q)) = %q, %v", name, got, err)
		}
		if err := c.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatalf("Sign returned a certificate the CA did not sign: %v", err)
		}
	})
}
