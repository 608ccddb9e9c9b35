package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Reasons a handshake is refused. They are wrapped into handshake errors
// and named in the refusal log line.
var (
	errOldTLS      = errors.New("client does not offer TLS 1.3")
	errWrongALPN   = errors.New("no acceptable ALPN protocol offered")
	errNoCert      = errors.New("member link without a verified client certificate")
	errSelf        = errors.New("peer presents this node's own name")
	errBadCertName = errors.New("certificate has no usable node name")
)

// certName returns the node name a certificate carries: its Subject CN,
// which must also be one of its DNS names (as internal/pki issues them).
func certName(c *x509.Certificate) (string, error) {
	cn := c.Subject.CommonName
	if cn == "" || !slices.Contains(c.DNSNames, cn) {
		return "", fmt.Errorf("%w: CN %q, DNS names %q", errBadCertName, cn, c.DNSNames)
	}
	return cn, nil
}

// checkMember applies Config.IsMember and Config.MemberKey to the name
// and certificate a peer presented.
func (n *Network) checkMember(name string, cert *x509.Certificate) error {
	if name == n.cfg.Name {
		return errSelf
	}
	if n.cfg.IsMember != nil && !n.cfg.IsMember(name) {
		return fmt.Errorf("%w: %q", ErrNotMember, name)
	}
	if n.cfg.MemberKey != nil {
		if want := n.cfg.MemberKey(name); want != nil {
			got, ok := cert.PublicKey.(ed25519.PublicKey)
			if !ok || !got.Equal(want) {
				return fmt.Errorf("%w: %q", ErrStaleCert, name)
			}
		}
	}
	return nil
}

// newServerTLS builds the accepting side's configuration. A client
// certificate is verified when given; VerifyConnection then decides by the
// negotiated ALPN whether one was required.
func (n *Network) newServerTLS() *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		MaxVersion:     tls.VersionTLS13,
		GetCertificate: n.serverCert,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      n.cfg.Roots,
		NextProtos:     []string{ALPNPeer, ALPNJoin},
		// Resumption would skip the certificate check on later handshakes
		// of a possibly removed member; links are long-lived, so a full
		// handshake each time costs nothing that matters.
		SessionTicketsDisabled: true,
	}
	// GetConfigForClient only screens the ClientHello so refusals for old
	// TLS versions and missing ALPN carry a precise reason; returning nil
	// keeps cfg.
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if !slices.Contains(hello.SupportedVersions, tls.VersionTLS13) {
			return nil, fmt.Errorf("%w: offered versions %x", errOldTLS, hello.SupportedVersions)
		}
		if !slices.Contains(hello.SupportedProtos, ALPNPeer) && !slices.Contains(hello.SupportedProtos, ALPNJoin) {
			return nil, fmt.Errorf("%w: offered %q", errWrongALPN, hello.SupportedProtos)
		}
		return nil, nil
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		switch cs.NegotiatedProtocol {
		case ALPNJoin:
			return nil
		case ALPNPeer:
			if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
				return errNoCert
			}
			name, err := certName(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			return n.checkMember(name, cs.PeerCertificates[0])
		default:
			return fmt.Errorf("%w: negotiated %q", errWrongALPN, cs.NegotiatedProtocol)
		}
	}
	return cfg
}

// newClientTLS builds the dialing side's configuration for the peer name:
// standard verification against Roots with ServerName = name, then a check
// that the certificate's node name is exactly name (an address may now
// belong to another member) and that it is still a member.
func (n *Network) newClientTLS(name string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		MaxVersion:           tls.VersionTLS13,
		GetClientCertificate: n.clientCert,
		RootCAs:              n.cfg.Roots,
		ServerName:           name,
		NextProtos:           []string{ALPNPeer},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != ALPNPeer {
				return fmt.Errorf("%w: negotiated %q", errWrongALPN, cs.NegotiatedProtocol)
			}
			if len(cs.PeerCertificates) == 0 {
				return errNoCert
			}
			got, err := certName(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if got != name {
				return fmt.Errorf("%w: dialed %q, reached %q", ErrWrongPeer, name, got)
			}
			return n.checkMember(got, cs.PeerCertificates[0])
		},
	}
}

// refusalReason names why a handshake failed, for the refusal log line.
func refusalReason(err error) string {
	var rhe tls.RecordHeaderError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	switch {
	case errors.As(err, &rhe):
		return "not TLS"
	case errors.Is(err, errOldTLS):
		return "TLS version below 1.3"
	case errors.Is(err, errWrongALPN):
		return "wrong ALPN"
	case errors.Is(err, errNoCert):
		return "no client certificate"
	case errors.Is(err, ErrNotMember):
		return "not a member"
	case errors.Is(err, ErrStaleCert):
		return "certificate of an earlier member"
	case errors.Is(err, errSelf):
		return "own name"
	case errors.Is(err, ErrWrongPeer), errors.As(err, &hne):
		return "certificate name mismatch"
	case errors.Is(err, errBadCertName):
		return "bad certificate name"
	case errors.As(err, &uae):
		return "certificate from another CA"
	case errors.As(err, &cie):
		return "invalid certificate"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "handshake timeout"
	case errors.Is(err, context.Canceled):
		return "shutting down"
	}
	return "handshake failed"
}
