package buoy

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"buoy/internal/consensus"
	"buoy/internal/pki"
	"buoy/internal/store"
)

// bootstrapFile holds the new CA (certificate and key, PEM) between
// "--bootstrap" and the moment the first leader has written it into the
// replicated state. Keeping it on disk makes the bootstrap survive a crash
// at any step; it is removed once the state holds the CA.
const bootstrapFile = "bootstrap-ca.pem"

// bootstrapIdentity creates the cluster CA and this node's certificate.
func (n *Node) bootstrapIdentity() (*pki.Identity, error) {
	now := time.Now()
	ca, err := pki.NewCA(n.cfg.Cluster, now)
	if err != nil {
		return nil, err
	}
	key, err := pki.NewNodeKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, n.cfg.Name)
	if err != nil {
		return nil, err
	}
	der, err := ca.Sign(csr, n.cfg.Name, now, certTTL)
	if err != nil {
		return nil, err
	}
	id, err := pki.NewIdentity(key, der, ca.DER)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.MarshalPEM()
	if err != nil {
		return nil, err
	}
	// The CA goes to disk before the identity: a crash in between leaves a
	// data dir without identity, which bootstraps again from scratch.
	if err := writeFileAtomic(filepath.Join(n.cfg.DataDir, bootstrapFile), append(certPEM, keyPEM...), 0o600); err != nil {
		return nil, err
	}
	if err := pki.SaveIdentity(n.cfg.DataDir, id); err != nil {
		return nil, err
	}
	n.log.Info("created a new cluster", "ca", ca.Hash())
	return id, nil
}

// bootstrapRaft makes this node the single voter, unless Raft already has
// state (a restart after a crash during bootstrap).
func (n *Node) bootstrapRaft() error {
	err := n.raft.Bootstrap()
	if err != nil && !errors.Is(err, consensus.ErrCantBootstrap) {
		return err
	}
	return nil
}

// finishBootstrap, on the leader, writes the CA and the first member into
// the replicated state if the bootstrap file is still there.
func (n *Node) finishBootstrap(ctx context.Context) error {
	path := filepath.Join(n.cfg.DataDir, bootstrapFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s := n.fsm.View()
	if len(s.Cluster.CACertPEM) == 0 {
		certBlock, rest := pem.Decode(data)
		keyBlock, _ := pem.Decode(rest)
		if certBlock == nil || keyBlock == nil {
			return fmt.Errorf("%s is damaged: it should hold the CA certificate and key", path)
		}
		ca, err := pki.ParseCA(pem.EncodeToMemory(certBlock), pem.EncodeToMemory(keyBlock))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		certPEM, keyPEM, err := ca.MarshalPEM()
		if err != nil {
			return err
		}
		err = n.raft.Apply(ctx, store.Command{Op: store.OpClusterInit, Cluster: &store.Cluster{
			Name: n.cfg.Cluster, CACertPEM: certPEM, CAKeyPEM: keyPEM,
		}})
		if err != nil && !errors.Is(err, store.ErrAlreadyInit) {
			return err
		}
	}
	if !n.fsm.View().IsMember(n.cfg.Name) {
		err := n.raft.Apply(ctx, store.Command{Op: store.OpMemberJoin, Member: &store.Member{
			Name:      n.cfg.Name,
			PeerPort:  listenPort(n.peerL),
			PublicKey: n.id.Key.Public().(ed25519.PublicKey),
		}})
		if err != nil && !errors.Is(err, store.ErrNameTaken) {
			return err
		}
	}
	return os.Remove(path)
}
