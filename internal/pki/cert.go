package pki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidName is wrapped by every error ValidName returns.
var ErrInvalidName = errors.New("invalid node name")

// ErrBadCSR is wrapped by the errors Sign returns when the request itself
// is at fault (unparsable, bad signature, wrong names), as opposed to a
// problem on the signing side. A join handler answers these to the joiner.
var ErrBadCSR = errors.New("invalid certificate request")

// MaxNameLen is the longest node name: one DNS label (RFC 1035 §2.3.4).
const MaxNameLen = 63

// NewNodeKey generates a node's Ed25519 key pair.
func NewNodeKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	return key, nil
}

// NewCSR makes a DER certificate request for name signed with key: the
// subject CN and the only DNS name are both name. The name is checked with
// ValidName first, so a joiner learns about a bad --name before it dials.
func NewCSR(key ed25519.PrivateKey, name string) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("new CSR: %w", err)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new CSR: private key has %d bytes, want %d (Ed25519)", len(key), ed25519.PrivateKeySize)
	}
	tmpl := &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: name},
		DNSNames: []string{name},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("new CSR: %w", err)
	}
	return der, nil
}

// Sign issues a node certificate for name from a DER certificate request.
// It checks the request's signature, that its key is Ed25519, that its
// subject CN and its only subject alternative name (a DNS name) are both
// name, and that name is valid. Everything else in the request (other
// subject fields, requested extensions) is ignored: the certificate is
// built from a fixed template, so a joiner cannot ask to become a CA.
//
// The certificate is valid from now-Backdate to now+ttl, for both TLS
// server and client authentication (peer links are mutual), and must end
// before the CA does.
func (ca *CA) Sign(csrDER []byte, name string, now time.Time, ttl time.Duration) ([]byte, error) {
	der, err := ca.sign(csrDER, name, now, ttl)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", name, err)
	}
	return der, nil
}

func (ca *CA) sign(csrDER []byte, name string, now time.Time, ttl time.Duration) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("ttl %v is not positive", ttl)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify (tampered, or signed by another key): %w", ErrBadCSR, err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, want Ed25519", ErrBadCSR, csr.PublicKey)
	}
	if cn := csr.Subject.CommonName; cn != name {
		return nil, fmt.Errorf("%w: common name %q does not match the requested name %q", ErrBadCSR, cn, name)
	}
	if len(csr.DNSNames) != 1 || csr.DNSNames[0] != name {
		return nil, fmt.Errorf("%w: DNS names %q, want exactly [%q]", ErrBadCSR, csr.DNSNames, name)
	}
	if len(csr.IPAddresses) != 0 || len(csr.EmailAddresses) != 0 || len(csr.URIs) != 0 {
		return nil, fmt.Errorf("%w: request has IP, email or URI names; only the DNS name %q is allowed", ErrBadCSR, name)
	}

	if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("CA is not valid at %v (valid %v to %v)",
			now.UTC(), ca.Cert.NotBefore.UTC(), ca.Cert.NotAfter.UTC())
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("ttl %v would outlive the CA (expires %v)", ttl, ca.Cert.NotAfter.UTC())
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return der, nil
}

// ValidName reports whether name can be a node name: a single lowercase DNS
// label of 1 to 63 characters from [a-z0-9-] that neither starts nor ends
// with '-'. The name is the node's Raft ID, its certificate name and its
// label under nodes.<zone>, so it must be valid in all three. The error
// says which rule was broken and wraps ErrInvalidName.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: name is empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: name has %d characters, at most %d allowed (one DNS label)", ErrInvalidName, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c >= 'A' && c <= 'Z':
			return fmt.Errorf("%w: %q has uppercase %q at position %d; use lowercase", ErrInvalidName, name, c, i)
		case c == '.':
			return fmt.Errorf("%w: %q contains '.' at position %d; a node name is a single DNS label", ErrInvalidName, name, i)
		default:
			return fmt.Errorf("%w: %q contains %q at position %d; allowed are a-z, 0-9 and '-'", ErrInvalidName, name, c, i)
		}
	}
	if name[0] == '-' {
		return fmt.Errorf("%w: %q starts with '-'", ErrInvalidName, name)
	}
	if name[len(name)-1] == '-' {
		return fmt.Errorf("%w: %q ends with '-'", ErrInvalidName, name)
	}
	return nil
}

// NameOf returns the node name a certificate was issued to: its subject CN,
// which must equal its one and only subject alternative name (a DNS name)
// and be a valid node name. Peers call it on the certificate presented in
// a handshake to learn who is on the other end.
func NameOf(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("certificate name: no certificate")
	}
	cn := cert.Subject.CommonName
	if len(cert.DNSNames) != 1 {
		return "", fmt.Errorf("certificate name: %d DNS names %q, want exactly 1", len(cert.DNSNames), cert.DNSNames)
	}
	if cert.DNSNames[0] != cn {
		return "", fmt.Errorf("certificate name: common name %q differs from DNS name %q", cn, cert.DNSNames[0])
	}
	if len(cert.IPAddresses) != 0 || len(cert.EmailAddresses) != 0 || len(cert.URIs) != 0 {
		return "", fmt.Errorf("certificate name: %q also has IP, email or URI names", cn)
	}
	if err := ValidName(cn); err != nil {
		return "", fmt.Errorf("certificate name: %w", err)
	}
	return cn, nil
}
