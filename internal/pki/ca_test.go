package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
)

func TestNewCA(t *testing.T) {
	ca := newTestCA(t, "home")
	c := ca.Cert
	if got, want := c.Subject.CommonName, "Buoy CA home"; got != want {
		t.Errorf("CN = %q, want %q", got, want)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v KeyUsage=%v, want a CA with certSign", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if !c.NotBefore.Equal(t0.Add(-Backdate)) || !c.NotAfter.Equal(t0.Add(CAValidity)) {
		t.Errorf("validity %v..%v, want %v..%v", c.NotBefore, c.NotAfter, t0.Add(-Backdate), t0.Add(CAValidity))
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v, want positive and at most 128 bits", c.SerialNumber)
	}
	other := newTestCA(t, "home")
	if c.SerialNumber.Cmp(other.Cert.SerialNumber) == 0 {
		t.Errorf("two CAs share serial %v", c.SerialNumber)
	}
	if _, err := NewCA("", t0); err == nil {
		t.Errorf("NewCA(\"\") = nil error, want error")
	}
}

func TestHash(t *testing.T) {
	ca := newTestCA(t, "home")
	sum := sha256.Sum256(ca.DER)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := ca.Hash(); got != want {
		t.Errorf("Hash() = %q, want %q", got, want)
	}
	if got := CertHash(ca.DER); got != want {
		t.Errorf("CertHash() = %q, want %q", got, want)
	}
	if err := validHash(ca.Hash()); err != nil {
		t.Errorf("validHash(Hash()) = %v", err)
	}
	if other := newTestCA(t, "home"); other.Hash() == ca.Hash() {
		t.Errorf("two CAs have the same hash %q", ca.Hash())
	}
}

func TestCAPEMRoundTrip(t *testing.T) {
	ca := newTestCA(t, "home")
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		t.Fatalf("MarshalPEM() = %v", err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM block = %v, want type PRIVATE KEY", b)
	}
	got, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseCA(MarshalPEM()) = %v", err)
	}
	if !bytes.Equal(got.DER, ca.DER) || !got.Key.Equal(ca.Key) || !got.Cert.Equal(ca.Cert) {
		t.Errorf("ParseCA(MarshalPEM()) differs from the original CA")
	}
	// The parsed CA must still sign.
	newTestIdentity(t, got, "pi1")
}

// ecdsaCA makes a CA certificate with an ECDSA key, which Buoy refuses.
func ecdsaCA(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ecdsa"},
		NotBefore: t0, NotAfter: t0.Add(CAValidity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return encodeCert(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func TestParseCAErrors(t *testing.T) {
	ca := newTestCA(t, "home")
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	_, otherKeyPEM, err := newTestCA(t, "home").MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	leaf := newTestIdentity(t, ca, "pi1")
	leafKeyPEM, err := marshalKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, ecKey := ecdsaCA(t)

	tests := []struct {
		name          string
		cert, key     []byte
		wantSubstring string
	}{
		{"key of another CA", certPEM, otherKeyPEM, "does not match"},
		{"empty cert", nil, keyPEM, "no PEM"},
		{"empty key", certPEM, nil, "no PEM"},
		{"garbage cert", []byte("hello"), keyPEM, "no PEM"},
		{"cert and key swapped", keyPEM, certPEM, `is "PRIVATE KEY", want "CERTIFICATE"`},
		{"truncated cert", certPEM[:len(certPEM)/2], keyPEM, "no PEM"},
		{"corrupt base64 body", corruptPEMBody(certPEM), keyPEM, "parse certificate"},
		{"two certificates", append(append([]byte{}, certPEM...), certPEM...), keyPEM, "unexpected data"},
		{"trailing garbage after key", certPEM, append(append([]byte{}, keyPEM...), "junk"...), "unexpected data"},
		{"leaf is not a CA", encodeCert(leaf.CertDER), leafKeyPEM, "not a CA"},
		{"ECDSA CA", ecCert, ecKey, "want Ed25519"},
		{"ECDSA key for Ed25519 CA", certPEM, ecKey, "want Ed25519"},
		{"encrypted-style headers", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: ca.DER}), keyPEM, "headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCA(tt.cert, tt.key)
			if err == nil {
				t.Fatalf("ParseCA() = nil error, want error containing %q", tt.wantSubstring)
			}
			checkErr(t, "ParseCA()", err, tt.wantSubstring)
		})
	}
}

// corruptPEMBody keeps the PEM armour but flips bytes in the middle of the
// DER, so decoding PEM works and parsing the certificate does not.
func corruptPEMBody(certPEM []byte) []byte {
	b, _ := pem.Decode(certPEM)
	der := append([]byte{}, b.Bytes...)
	for i := 4; i < 12; i++ {
		der[i] ^= 0xff
	}
	return encodeCert(der)
}

func FuzzParseCA(f *testing.F) {
	ca, err := NewCA("fuzz", t0)
	if err != nil {
		f.Fatal(err)
	}
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	other, err := NewCA("fuzz", t0)
	if err != nil {
		f.Fatal(err)
	}
	_, otherKey, err := other.MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, keyPEM)
	f.Add(certPEM, otherKey)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), keyPEM)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		ca, err := ParseCA(certPEM, keyPEM)
		if err != nil {
			return
		}
		c2, k2, err := ca.MarshalPEM()
		if err != nil {
			t.Fatalf("MarshalPEM() after ParseCA succeeded = %v", err)
		}
		again, err := ParseCA(c2, k2)
		if err != nil {
			t.Fatalf("ParseCA(MarshalPEM(ParseCA(x))) = %v", err)
		}
		if !bytes.Equal(again.DER, ca.DER) || !again.Key.Equal(ca.Key) {
			t.Fatalf("PEM round trip changed the CA")
		}
	})
}
