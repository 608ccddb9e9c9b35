package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// RenewFraction sets when a node certificate is due for renewal: once less
// than 1/RenewFraction of its lifetime (NotBefore to NotAfter) remains. With
// a third, a five-year certificate renews about 20 months before it
// expires: a node that is down or cut off for a long while still has over
// a year and a half to come back and renew, and a certificate is replaced
// about every 40 months, rarely enough that renewal is never routine noise.
const RenewFraction = 3

// ErrCAMismatch is wrapped by Renew's error when the CA offered to renew an
// identity is not the CA that identity trusts: signing with it would give
// the node a certificate its peers refuse.
var ErrCAMismatch = errors.New("CA is not the identity's CA")

// RenewAt returns the moment from which cert is due for renewal: when less
// than 1/RenewFraction of its lifetime remains.
func RenewAt(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Add(-life / RenewFraction)
}

// KeyFingerprint returns "sha256:" followed by the lowercase hex SHA-256 of
// cert's SubjectPublicKeyInfo (DER): the same value for every certificate
// issued for one key, so it tells a renewed certificate (same fingerprint)
// from a new identity (another one). openssl computes it with
// "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum".
func KeyFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hashPrefix + hex.EncodeToString(sum[:])
}

// Renew issues a new certificate for id's key and name, signed by ca, and
// returns the identity that carries it; id itself is not changed. The new
// certificate is valid from now-Backdate for ttl, cut short so that it ends
// with the CA if the CA expires sooner. Keeping the key keeps every check
// peers make on it (the member's recorded key) passing, so nothing but
// the validity period changes for them.
//
// ca must be the CA id trusts (same certificate), or the error wraps
// ErrCAMismatch.
func (ca *CA) Renew(id *Identity, now time.Time, ttl time.Duration) (*Identity, error) {
	if id == nil {
		return nil, errors.New("renew certificate: nil identity")
	}
	if !bytes.Equal(ca.DER, id.CADER) {
		return nil, fmt.Errorf("renew certificate for %q: %w (CA %s, identity trusts %s)",
			id.Name, ErrCAMismatch, ca.Hash(), CertHash(id.CADER))
	}
	name, err := id.check()
	if err != nil {
		return nil, fmt.Errorf("renew certificate for %q: %w", id.Name, err)
	}
	if name != id.Name {
		return nil, fmt.Errorf("renew certificate for %q: certificate is for %q", id.Name, name)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("renew certificate for %q: ttl %v is not positive", id.Name, ttl)
	}
	if left := ca.Cert.NotAfter.Sub(now); left < ttl {
		ttl = left // Sign refuses a certificate that outlives its CA
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("renew certificate for %q: the cluster CA expired at %v", id.Name, ca.Cert.NotAfter.UTC())
	}
	csr, err := NewCSR(id.Key, id.Name)
	if err != nil {
		return nil, fmt.Errorf("renew certificate for %q: %w", id.Name, err)
	}
	der, err := ca.Sign(csr, id.Name, now, ttl)
	if err != nil {
		return nil, fmt.Errorf("renew certificate: %w", err)
	}
	renewed, err := NewIdentity(id.Key, der, ca.DER)
	if err != nil {
		return nil, fmt.Errorf("renew certificate for %q: %w", id.Name, err)
	}
	return renewed, nil
}
