// Package pki holds the cluster's trust: the cluster CA, node keys and
// certificates, certificate requests, the identity files a node keeps in its
// data directory, and join tokens.
//
// Everything is Ed25519 (CA and nodes): keys are small, signing is
// deterministic, and Go's TLS 1.3 accepts Ed25519 certificates. The package
// is pure crypto and encoding on top of the standard library. It never reads
// the clock: every function that needs the time takes a now argument, so
// tests and the virtual-time cluster tests control validity windows.
package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Validity of the CA and the clock-skew allowance applied to every
// certificate this package issues.
const (
	// CAValidity is how long a new cluster CA stays valid. There is no CA
	// rotation yet, so it is long.
	CAValidity = 20 * 365 * 24 * time.Hour
	// Backdate is subtracted from NotBefore so that a node whose clock is a
	// little behind the signer's still accepts a fresh certificate.
	Backdate = time.Hour
)

// PEM block types written and accepted by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY" // PKCS#8
)

// hashPrefix starts every certificate hash (see CertHash).
const hashPrefix = "sha256:"

// CA is the cluster certificate authority: a self-signed Ed25519
// certificate and its key. The key is replicated in the Raft state, so any
// leader can sign a joiner's certificate.
type CA struct {
	Cert *x509.Certificate  // parsed form of DER
	DER  []byte             // the CA certificate, DER; what CertHash hashes
	Key  ed25519.PrivateKey // the CA's signing key
}

// NewCA makes a new self-signed cluster CA named "Buoy CA <cluster>", valid
// from now-Backdate to now+CAValidity. It may only sign leaf certificates
// (path length zero).
func NewCA(cluster string, now time.Time) (*CA, error) {
	if cluster == "" {
		return nil, errors.New("new CA: cluster name is empty")
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Buoy CA " + cluster},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // no intermediates: the CA signs nodes only
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("new CA: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA: parse own certificate: %w", err)
	}
	return &CA{Cert: cert, DER: der, Key: key}, nil
}

// randomSerial returns a positive 128-bit random certificate serial number,
// as RFC 5280 and the CA/Browser baseline ask (unpredictable, at most 20
// octets).
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("random serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// Hash returns the CA certificate's hash as carried in join tokens; see
// CertHash.
func (ca *CA) Hash() string { return CertHash(ca.DER) }

// CertHash returns "sha256:" followed by the lowercase hex SHA-256 of a DER
// certificate. A joiner compares it with the hash in its token before it
// sends anything, the way kubeadm's discovery-token-ca-cert-hash works
// (kubeadm hashes the public key; hashing the whole certificate is as
// strong and simpler to reproduce with openssl).
func CertHash(der []byte) string {
	sum := sha256.Sum256(der)
	return hashPrefix + hex.EncodeToString(sum[:])
}

// validHash reports whether h has the form CertHash returns.
func validHash(h string) error {
	rest, ok := strings.CutPrefix(h, hashPrefix)
	if !ok {
		return fmt.Errorf("CA hash does not start with %q", hashPrefix)
	}
	if len(rest) != 2*sha256.Size {
		return fmt.Errorf("CA hash has %d hex digits, want %d", len(rest), 2*sha256.Size)
	}
	if !isLowerHex(rest) {
		return errors.New("CA hash is not lowercase hex")
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// MarshalPEM encodes the CA certificate as a PEM "CERTIFICATE" block and
// its key as a PKCS#8 "PRIVATE KEY" block.
func (ca *CA) MarshalPEM() (certPEM, keyPEM []byte, err error) {
	keyPEM, err = marshalKey(ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal CA: %w", err)
	}
	return encodeCert(ca.DER), keyPEM, nil
}

// ParseCA decodes what MarshalPEM wrote. It checks that the certificate is
// a CA that may sign certificates, that it is self-signed, and that the key
// belongs to it.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	der, cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if err := checkCA(cert); err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	if err := keyMatches(key, cert); err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	return &CA{Cert: cert, DER: der, Key: key}, nil
}

// checkCA reports why cert cannot serve as the cluster CA, if it cannot.
func checkCA(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("certificate is not a CA (basic constraints)")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("CA certificate lacks the certSign key usage")
	}
	if _, ok := cert.PublicKey.(ed25519.PublicKey); !ok {
		return fmt.Errorf("CA key is %T, want Ed25519", cert.PublicKey)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("CA certificate is not self-signed: %w", err)
	}
	return nil
}

// keyMatches reports an error unless key is the private half of cert's
// public key.
func keyMatches(key ed25519.PrivateKey, cert *x509.Certificate) error {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("certificate key is %T, want Ed25519", cert.PublicKey)
	}
	if !pub.Equal(key.Public()) {
		return errors.New("private key does not match the certificate")
	}
	return nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func marshalKey(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("private key has %d bytes, want %d (Ed25519)", len(key), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// decodeOnePEM returns the single PEM block of the wanted type in data.
// Anything else in the input (a second block, trailing garbage) is an
// error, so a file that was concatenated or cut short is noticed.
func decodeOnePEM(data []byte, wantType string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM %q block found", wantType)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, wantType)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("PEM %q block has headers (encrypted?), want none", wantType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the PEM %q block", wantType)
	}
	return block.Bytes, nil
}

func parseCertPEM(data []byte) ([]byte, *x509.Certificate, error) {
	der, err := decodeOnePEM(data, pemCertificate)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	return der, cert, nil
}

func parseKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	der, err := decodeOnePEM(data, pemPrivateKey)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want Ed25519", k)
	}
	return key, nil
}
