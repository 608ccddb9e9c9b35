package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrCAHashMismatch is returned by VerifyCAHash when no certificate the
// server presented has the CA hash from the join token: the joiner reached
// a server that is not part of the cluster the token was made for.
var ErrCAHashMismatch = errors.New("server's CA does not match the join token")

// VerifyCAHash is the joiner's check of a server before it sends its
// token: chain is what the server presented in the TLS handshake (leaf
// first, then the CA, as Identity.TLSCertificate sends it) and want is the
// CA hash from the token. It finds the CA certificate whose CertHash is
// want, verifies at now that the leaf chains to it alone and may serve
// TLS, and returns the CA certificate.
//
// Call it from tls.Config.VerifyConnection with cs.PeerCertificates, with
// InsecureSkipVerify set: the joiner has no root to trust yet. TLS still
// checks that the server holds the leaf's key.
func VerifyCAHash(chain []*x509.Certificate, want string, now time.Time) (*x509.Certificate, error) {
	if err := validHash(want); err != nil {
		return nil, fmt.Errorf("verify CA hash: %w", err)
	}
	if len(chain) == 0 {
		return nil, errors.New("verify CA hash: server presented no certificate")
	}
	leaf := chain[0]
	var ca *x509.Certificate
	// The leaf is not a candidate: a server must present a node
	// certificate issued by the CA, not the CA certificate itself.
	for _, c := range chain[1:] {
		if CertHash(c.Raw) == want {
			ca = c
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("verify CA hash: %w (want %s); check the token and the --join address", ErrCAHashMismatch, want)
	}
	if err := checkCA(ca); err != nil {
		return nil, fmt.Errorf("verify CA hash: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("verify CA hash: server certificate does not chain to the cluster CA: %w", err)
	}
	if _, err := NameOf(leaf); err != nil {
		return nil, fmt.Errorf("verify CA hash: server certificate: %w", err)
	}
	return ca, nil
}
