package peer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// SetCert replaces the certificate (and key) this node presents in its
// handshakes from now on, as TLS server and as client, for instance after
// a renewal. Sessions already up are not touched: TLS looks at
// certificates only during the handshake, so they keep working with the
// certificate they were made with. c must carry this node's name, like
// Config.Cert.
func (n *Network) SetCert(c tls.Certificate) error {
	if len(c.Certificate) == 0 || c.PrivateKey == nil {
		return errors.New("set certificate: no certificate or key")
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("set certificate: %w", err)
		}
	}
	if name, err := certName(leaf); err != nil || name != n.cfg.Name {
		return fmt.Errorf("set certificate: it is for %q (%v), want %q", leaf.Subject.CommonName, err, n.cfg.Name)
	}
	c.Leaf = leaf
	n.cert.Store(&c)
	return nil
}

// Cert returns the certificate this node presents in new handshakes.
func (n *Network) Cert() tls.Certificate { return *n.cert.Load() }

// serverCert and clientCert hand every handshake the current certificate
// (tls.Config.GetCertificate and GetClientCertificate), so SetCert takes
// effect at the next handshake without rebuilding any configuration.
func (n *Network) serverCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return n.cert.Load(), nil
}

func (n *Network) clientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return n.cert.Load(), nil
}
