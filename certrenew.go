package buoy

// Node certificate renewal. A node certificate is valid for certTTL (five
// years). Once less than a third of that is left (pki.RenewFraction), the
// node signs itself a new certificate for the same key and name with the
// cluster CA from the replicated state, saves it, and presents it in every
// handshake from then on; links already up keep going.
//
// Why the node signs locally instead of asking the leader: every member
// already holds the CA key in its copy of the state (OpClusterInit), so a
// renewal signed here grants nothing a member could not already sign
// itself, and it works without a leader or a quorum, which is exactly
// when a node that has been cut off for a long time needs it most. The
// key does not change, so the member's recorded key (member.join) stays
// right and peers accept the new certificate with no write to Raft.

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"buoy/internal/api"
	"buoy/internal/pki"
	"buoy/internal/store"
)

// CertInfo describes the certificate a node presents to its peers.
type CertInfo = api.CertInfo

// CertRenewal is the certificate before and after a renewal.
type CertRenewal = api.CertRenewal

// ErrCertExpired: the node's certificate has expired, so its peers refuse
// its links and it cannot renew it by itself.
var ErrCertExpired = errors.New("node certificate expired")

// certCheckEvery is how often a running node looks at its certificate's
// age (also once at start). With renewal due some 20 months before
// expiry, a daily look is plenty, and a failed renewal is retried daily.
const certCheckEvery = 24 * time.Hour

// errStateBehind: the replicated state does not (yet) hold what a renewal
// needs, the CA or this node's member record. It fills in as the node
// catches up, so the renewal waits for the next change of state.
var errStateBehind = fmt.Errorf("%w: this node's replicated state has not caught up", api.ErrNotReady)

// certState holds the certificate a running node presents and serialises
// its renewals.
type certState struct {
	// cur is the node's identity with the certificate in use. Only the
	// certificate changes across renewals: key and CA stay those of
	// Node.id.
	cur atomic.Pointer[pki.Identity]
	// mu serialises renewals (the periodic check and RenewCert).
	mu sync.Mutex

	// Test hooks, set between New and Start: every replaces
	// certCheckEvery, save replaces pki.SaveIdentity.
	every time.Duration
	save  func(dir string, id *pki.Identity) error
}

// checkCertExpiry refuses to start with an expired certificate: peers
// would refuse every link, and the node could not catch up to renew it.
func checkCertExpiry(id *pki.Identity, dir string, now time.Time) error {
	if !now.After(id.Cert.NotAfter) {
		return nil
	}
	return fmt.Errorf("%w: the certificate of node %q in %s expired on %s, so its peers refuse it; "+
		"remove the node (\"buoy remove %s\" on a member), then start it with an empty data dir and --join with a new token",
		ErrCertExpired, id.Name, dir, id.Cert.NotAfter.UTC().Format(time.RFC3339), id.Name)
}

// certLoop checks the certificate at start and then every certCheckEvery,
// renewing it when due. While a renewal waits for the replicated state
// (just after a restart), it retries at each change of state. It ends
// with the node's context.
func (n *Node) certLoop() {
	t := time.NewTicker(cmp.Or(n.cert.every, certCheckEvery))
	defer t.Stop()
	id := n.cert.cur.Load()
	n.log.Info("node certificate", "serial", serialHex(id.Cert),
		"not_after", id.Cert.NotAfter.UTC(), "renew_after", pki.RenewAt(id.Cert).UTC())
	waiting := false // a renewal is due and waits for the state
	ticked := false  // this check comes from the ticker, not a change of state
	for {
		s := n.fsm.View()
		_, _, err := n.renewCert(s, time.Now(), false)
		var changed <-chan struct{}
		switch {
		case err == nil:
			waiting = false
		case errors.Is(err, errStateBehind):
			changed = s.Next()
			// Normal for a moment after a restart; worth a warning only
			// if it lasts until the next scheduled check.
			if ticked {
				n.log.Warn("node certificate renewal is due but cannot proceed yet; retrying as the state changes", "err", err)
			} else if !waiting {
				n.log.Info("node certificate renewal is due; waiting for the replicated state", "reason", err)
			}
			waiting = true
		default:
			n.log.Warn("node certificate renewal failed; keeping the current certificate and retrying at the next check",
				"err", err, "not_after", n.cert.cur.Load().Cert.NotAfter.UTC(), "next_check", cmp.Or(n.cert.every, certCheckEvery))
		}
		select {
		case <-t.C:
			ticked = true
		case <-changed:
			ticked = false
		case <-n.ctx.Done():
			return
		}
	}
}

// renewCert renews the node's certificate if it is due at now, or
// whatever its age if force is set, with the CA in s. It returns the
// identity before and after (the same when nothing was due). On failure
// the node keeps its current certificate.
func (n *Node) renewCert(s *store.State, now time.Time, force bool) (prev, cur *pki.Identity, err error) {
	n.cert.mu.Lock()
	defer n.cert.mu.Unlock()
	old := n.cert.cur.Load()
	if !force && now.Before(pki.RenewAt(old.Cert)) {
		return old, old, nil
	}
	ca, err := n.renewalCA(s)
	if err != nil {
		return old, old, fmt.Errorf("renew node certificate: %w", err)
	}
	id, err := ca.Renew(old, now, certTTL)
	if err != nil {
		return old, old, err
	}
	if id.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		n.log.Warn("renewed node certificate ends early, with the cluster CA", "ca_not_after", ca.Cert.NotAfter.UTC())
	}
	save := n.cert.save
	if save == nil {
		save = pki.SaveIdentity
	}
	if err := save(n.cfg.DataDir, id); err != nil {
		return old, old, fmt.Errorf("renew node certificate: %w", err)
	}
	if err := n.net.SetCert(id.TLSCertificate()); err != nil {
		return old, old, fmt.Errorf("renew node certificate: %w", err)
	}
	n.cert.cur.Store(id)
	n.log.Info("node certificate renewed", "forced", force,
		"serial", serialHex(id.Cert), "not_after", id.Cert.NotAfter.UTC(),
		"renew_after", pki.RenewAt(id.Cert).UTC(),
		"previous_serial", serialHex(old.Cert), "previous_not_after", old.Cert.NotAfter.UTC())
	return old, id, nil
}

// renewalCA returns the cluster CA from s, once s shows this node as a
// current member with its key.
func (n *Node) renewalCA(s *store.State) (*pki.CA, error) {
	if len(s.Cluster.CAKeyPEM) == 0 {
		return nil, fmt.Errorf("%w (it holds no cluster CA yet)", errStateBehind)
	}
	me, ok := s.Members[n.cfg.Name]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w (it does not list this node as a member yet)", errStateBehind)
	case me.Left:
		return nil, fmt.Errorf("%w: a departed member gets no new certificate", ErrLeft)
	case len(me.PublicKey) == ed25519.PublicKeySize && !ed25519.PublicKey(me.PublicKey).Equal(n.id.Key.Public()):
		return nil, fmt.Errorf("the cluster records another key for %q: this data dir belongs to an earlier member of that name", n.cfg.Name)
	}
	ca, err := pki.ParseCA(s.Cluster.CACertPEM, s.Cluster.CAKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA in the replicated state: %w", err)
	}
	return ca, nil
}

// Cert describes the certificate the node presents to its peers now.
func (n *Node) Cert() (CertInfo, error) {
	id := n.cert.cur.Load()
	if id == nil {
		return CertInfo{}, errors.New("node certificate: the node has not started")
	}
	return certInfo(id, time.Now()), nil
}

// RenewCert gives the node a new certificate now, whatever the age of the
// current one ("buoy cert renew"): same key and name, valid for five
// years, saved in the data dir and presented in every handshake from now
// on. It fails, keeping the current certificate, if the node's replicated
// state does not hold the cluster CA yet (an error wrapping
// api.ErrNotReady) or the data dir cannot be written.
func (n *Node) RenewCert(ctx context.Context) (CertRenewal, error) {
	if n.cert.cur.Load() == nil {
		return CertRenewal{}, errors.New("renew node certificate: the node has not started")
	}
	if err := ctx.Err(); err != nil {
		return CertRenewal{}, fmt.Errorf("renew node certificate: %w", err)
	}
	now := time.Now()
	prev, cur, err := n.renewCert(n.fsm.View(), now, true)
	if err != nil {
		return CertRenewal{}, err
	}
	return CertRenewal{Previous: certInfo(prev, now), Current: certInfo(cur, now)}, nil
}

// certInfo describes id's certificate as seen at now.
func certInfo(id *pki.Identity, now time.Time) CertInfo {
	c := id.Cert
	return CertInfo{
		Subject:        id.Name,
		Serial:         serialHex(c),
		KeyFingerprint: pki.KeyFingerprint(c),
		Issuer:         id.CA.Subject.CommonName,
		CAHash:         pki.CertHash(id.CADER),
		NotBefore:      c.NotBefore.UTC(),
		NotAfter:       c.NotAfter.UTC(),
		RenewAfter:     pki.RenewAt(c).UTC(),
		DaysLeft:       int(math.Floor(c.NotAfter.Sub(now).Hours() / 24)),
	}
}

func (b apiBackend) CertShow(ctx context.Context) (api.CertInfo, error) { return b.Cert() }

func (b apiBackend) CertRenew(ctx context.Context) (api.CertRenewal, error) {
	return b.RenewCert(ctx)
}

// serialHex is a certificate's serial as "openssl x509 -serial" prints it:
// uppercase hex, whole bytes (a leading 0 when the first digit would be
// alone), so the two can be compared as strings.
func serialHex(c *x509.Certificate) string {
	h := fmt.Sprintf("%X", c.SerialNumber)
	if len(h)%2 == 1 {
		h = "0" + h
	}
	return h
}
