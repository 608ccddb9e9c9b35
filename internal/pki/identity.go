package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Files an identity occupies in a node's data directory, all PEM.
const (
	KeyFile  = "node.key" // the node's PKCS#8 private key, mode 0600
	CertFile = "node.crt" // the node's certificate
	CAFile   = "ca.crt"   // the cluster CA certificate
)

// ErrNoIdentity is returned by LoadIdentity when the data directory holds
// no node key: the node has never joined or bootstrapped a cluster.
var ErrNoIdentity = errors.New("no node identity")

// ErrExpired is wrapped by Identity.Verify when the node certificate has
// expired, so the caller can tell "renew" apart from "not trusted".
var ErrExpired = errors.New("certificate expired")

// Identity is what a node keeps in its data directory and presents on peer
// links: its name, key and certificate, and the cluster CA it trusts.
type Identity struct {
	Name    string             // the node name, equal to NameOf(Cert)
	Key     ed25519.PrivateKey // the node's private key
	Cert    *x509.Certificate  // parsed form of CertDER
	CertDER []byte             // the node certificate, DER
	CA      *x509.Certificate  // parsed form of CADER
	CADER   []byte             // the cluster CA certificate, DER
}

// NewIdentity assembles an identity from a node key, the certificate the
// cluster issued for it and the CA certificate, as a joiner receives them.
// It checks that they belong together (key matches, certificate issued by
// the CA, valid name) but not the time: see Verify.
func NewIdentity(key ed25519.PrivateKey, certDER, caDER []byte) (*Identity, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("identity: parse node certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("identity: parse CA certificate: %w", err)
	}
	id := &Identity{Key: key, Cert: cert, CertDER: certDER, CA: ca, CADER: caDER}
	name, err := id.check()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id.Name = name
	return id, nil
}

// check verifies, without looking at the time, that the parts of id belong
// together, and returns the name in the certificate.
func (id *Identity) check() (string, error) {
	if id.Cert == nil || id.CA == nil {
		return "", errors.New("certificate or CA missing")
	}
	if !bytes.Equal(id.Cert.Raw, id.CertDER) || !bytes.Equal(id.CA.Raw, id.CADER) {
		return "", errors.New("parsed certificates differ from their DER")
	}
	if err := checkCA(id.CA); err != nil {
		return "", err
	}
	name, err := NameOf(id.Cert)
	if err != nil {
		return "", err
	}
	if len(id.Key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("private key has %d bytes, want %d (Ed25519)", len(id.Key), ed25519.PrivateKeySize)
	}
	if err := keyMatches(id.Key, id.Cert); err != nil {
		return "", fmt.Errorf("node key and certificate: %w", err)
	}
	if err := id.Cert.CheckSignatureFrom(id.CA); err != nil {
		return "", fmt.Errorf("node certificate was not issued by this CA: %w", err)
	}
	return name, nil
}

// TLSCertificate returns the node's certificate and key for a tls.Config.
// The chain sent is the leaf followed by the CA certificate: peers that
// already trust the CA ignore the extra certificate, and a joiner, which
// does not trust anything yet, needs it to compare its hash with the one
// in its token (see VerifyCAHash).
func (id *Identity) TLSCertificate() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{id.CertDER, id.CADER},
		PrivateKey:  id.Key,
		Leaf:        id.Cert,
	}
}

// Pool returns a certificate pool holding only the cluster CA, for both
// RootCAs and ClientCAs of a peer link's tls.Config.
func (id *Identity) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(id.CA)
	return p
}

// Verify checks that the identity is usable at now: the parts belong
// together, the certificate carries the identity's name, chains to the CA,
// may be used as both TLS server and client, and is within its validity
// period. An expired certificate gives an error wrapping ErrExpired.
func (id *Identity) Verify(now time.Time) error {
	name, err := id.check()
	if err != nil {
		return fmt.Errorf("verify identity %q: %w", id.Name, err)
	}
	if name != id.Name {
		return fmt.Errorf("verify identity %q: certificate is for %q", id.Name, name)
	}
	if now.After(id.Cert.NotAfter) {
		return fmt.Errorf("verify identity %q: %w at %v (now %v); the node needs a new certificate",
			id.Name, ErrExpired, id.Cert.NotAfter.UTC(), now.UTC())
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := id.Cert.Verify(x509.VerifyOptions{
			DNSName:     id.Name,
			Roots:       id.Pool(),
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{usage},
		})
		if err != nil {
			return fmt.Errorf("verify identity %q: %w", id.Name, err)
		}
	}
	return nil
}

// SaveIdentity writes id to dir as KeyFile (mode 0600), CertFile and CAFile,
// creating dir (mode 0700) if needed. Each file is written to a temporary
// file, synced and renamed over the old one, so a crash never leaves a
// partly written file. The key goes last, because LoadIdentity takes a
// missing key to mean "no identity". A crash between two renames can leave
// files from two generations; LoadIdentity then reports the mismatch
// rather than using them.
func SaveIdentity(dir string, id *Identity) error {
	if id == nil {
		return errors.New("save identity: nil identity")
	}
	name, err := id.check()
	if err != nil {
		return fmt.Errorf("save identity %q: %w", id.Name, err)
	}
	if name != id.Name {
		return fmt.Errorf("save identity %q: certificate is for %q", id.Name, name)
	}
	keyPEM, err := marshalKey(id.Key)
	if err != nil {
		return fmt.Errorf("save identity %q: %w", id.Name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: create data directory: %w%s", err, permHint(err, dir))
	}
	files := []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{CAFile, encodeCert(id.CADER), 0o644},
		{CertFile, encodeCert(id.CertDER), 0o644},
		{KeyFile, keyPEM, 0o600},
	}
	for _, f := range files {
		if err := writeFileAtomic(dir, f.name, f.data, f.perm); err != nil {
			return fmt.Errorf("save identity: %w%s", err, permHint(err, dir))
		}
	}
	return nil
}

// permHint tells the operator what to do about the usual cause of a write
// error in the data directory.
func permHint(err error, dir string) string {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Sprintf(" (make %s writable by this user, or choose another --data-dir)", dir)
	}
	return ""
}

// writeFileAtomic replaces dir/name with data: temporary file in the same
// directory, fsync, rename, fsync of the directory so the rename itself is
// durable before the next file is written.
func writeFileAtomic(dir, name string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()      // may already be closed; the write error is what matters
			os.Remove(tmp) // best effort: leave no temporary files behind
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// LoadIdentity reads the identity SaveIdentity wrote to dir. It returns an
// error wrapping ErrNoIdentity if there is no KeyFile, and a descriptive
// error if a file is missing, corrupt or does not belong with the others.
// It does not check expiry, so an expired node can still load its identity
// and ask for a new certificate; call Verify for that.
func LoadIdentity(dir string) (*Identity, error) {
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load identity from %s: %w (%s not found)", dir, ErrNoIdentity, KeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", filepath.Join(dir, KeyFile), err)
	}
	certDER, err := readCertFile(dir, CertFile)
	if err != nil {
		return nil, err
	}
	caDER, err := readCertFile(dir, CAFile)
	if err != nil {
		return nil, err
	}
	id, err := NewIdentity(key, certDER, caDER)
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: files do not belong together: %w", dir, err)
	}
	return id, nil
}

func readCertFile(dir, name string) ([]byte, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load identity: %s exists but %s is missing; the data directory is incomplete", KeyFile, path)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	der, _, err := parseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", path, err)
	}
	return der, nil
}
