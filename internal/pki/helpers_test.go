package pki

import (
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests: nothing here reads the clock.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testTTL is the node certificate lifetime used by the tests.
const testTTL = 24 * time.Hour

func newTestCA(t testing.TB, cluster string) *CA {
	t.Helper()
	ca, err := NewCA(cluster, t0)
	if err != nil {
		t.Fatalf("NewCA(%q) = %v", cluster, err)
	}
	return ca
}

// newTestIdentity makes a node key, a CSR for name, has ca sign it at t0
// for testTTL, and assembles the identity.
func newTestIdentity(t testing.TB, ca *CA, name string) *Identity {
	t.Helper()
	key, err := NewNodeKey()
	if err != nil {
		t.Fatalf("NewNodeKey() = %v", err)
	}
	csr, err := NewCSR(key, name)
	if err != nil {
		t.Fatalf("NewCSR(%q) = %v", name, err)
	}
	der, err := ca.Sign(csr, name, t0, testTTL)
	if err != nil {
		t.Fatalf("Sign(%q) = %v", name, err)
	}
	id, err := NewIdentity(key, der, ca.DER)
	if err != nil {
		t.Fatalf("NewIdentity(%q) = %v", name, err)
	}
	return id
}

func mustParseCert(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

// checkErr fails unless err is nil when want is "", or err's message
// contains want.
func checkErr(t *testing.T, call string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s = %v, want no error", call, err)
	case want != "" && err == nil:
		t.Errorf("%s = nil, want error containing %q", call, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s = %v, want error containing %q", call, err, want)
	}
}

func mustSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
