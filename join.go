package buoy

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"buoy/internal/peer"
	"buoy/internal/pki"
	"buoy/internal/store"
	"buoy/internal/wire"
)

// ErrJoin wraps every failure of the join flow.
var ErrJoin = errors.New("join failed")

// joinTimeout bounds one join attempt against one address.
const joinTimeout = 30 * time.Second

// join enters an existing cluster with a token: for each --join address it
// checks that the node there presents a certificate chain whose CA matches
// the token's hash before sending anything, then sends a CSR with the
// token, and stores the certificate it gets back.
func (n *Node) join(ctx context.Context) (*pki.Identity, error) {
	tok, err := pki.ParseToken(n.cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("%w: --token: %w", ErrJoin, err)
	}
	key, err := pki.NewNodeKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, n.cfg.Name)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, addr := range n.cfg.Join {
		resp, err := n.joinVia(ctx, addr, tok, wire.JoinRequest{
			Token:    n.cfg.Token,
			Name:     n.cfg.Name,
			CSR:      csr,
			PeerPort: listenPort(n.peerL),
			Dialed:   addr,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("via %s: %w", addr, err))
			if errors.Is(err, errDefinitive) {
				break // the cluster said no; another member would say the same
			}
			continue
		}
		id, err := pki.NewIdentity(key, resp.Cert, resp.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate from %s: %w", ErrJoin, addr, err)
		}
		if pki.CertHash(resp.CA) != tok.CAHash {
			return nil, fmt.Errorf("%w: %s sent a CA that does not match the token", ErrJoin, addr)
		}
		for _, m := range resp.Members {
			if m.Name != n.cfg.Name {
				n.book.add(m.Name, m.Address)
			}
		}
		if err := n.book.save(); err != nil {
			return nil, err
		}
		if err := pki.SaveIdentity(n.cfg.DataDir, id); err != nil {
			return nil, err
		}
		n.log.Info("joined the cluster", "via", addr, "members", len(resp.Members))
		return id, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrJoin, errors.Join(errs...))
}

// errDefinitive marks an answer from the cluster (as opposed to a network
// failure): trying another address would not help.
var errDefinitive = errors.New("the cluster refused the join")

func (n *Node) joinVia(ctx context.Context, addr string, tok pki.Token, req wire.JoinRequest) (*wire.JoinResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	raw, err := n.dialRaw(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	var answeredBy string
	conn := tls.Client(raw, &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		NextProtos: []string{peer.ALPNJoin},
		// The chain is checked against the token's CA hash below instead of
		// a root pool: the joiner has no CA yet, only its hash.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if _, err := pki.VerifyCAHash(cs.PeerCertificates, tok.CAHash, time.Now()); err != nil {
				return err
			}
			name, err := pki.NameOf(cs.PeerCertificates[0])
			answeredBy = name
			return err
		},
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		if errors.Is(err, pki.ErrCAHashMismatch) {
			return nil, fmt.Errorf("%w: the node at %s belongs to another cluster than the token's (its CA hash differs); nothing was sent to it", pki.ErrCAHashMismatch, addr)
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := wire.WriteFrame(conn, req); err != nil {
		return nil, err
	}
	var resp wire.JoinResponse
	if err := wire.ReadFrame(conn, &resp, 0); err != nil {
		return nil, fmt.Errorf("reading answer from %s: %w", answeredBy, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("%w: %s", errDefinitive, resp.Error)
	}
	// The node we dialed is reachable at the address we used.
	n.book.learn(answeredBy, addr)
	return &resp, nil
}

// joinOp is the RPC a member uses to pass a join request to the leader.
const joinOp = "join"

// serveJoin handles a join connection (TLS done, no client certificate):
// one request, one answer.
func (n *Node) serveJoin(ctx context.Context, conn *tls.Conn) {
	_ = conn.SetDeadline(time.Now().Add(joinTimeout))
	var req wire.JoinRequest
	if err := wire.ReadFrame(conn, &req, 64<<10); err != nil {
		n.log.Info("join connection: bad request", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	req.Observed = conn.RemoteAddr().String()
	var resp wire.JoinResponse
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	err := n.raft.OnLeader(ctx, joinOp, req, &resp, func(ctx context.Context) (any, error) {
		return n.admit(ctx, req)
	})
	if err != nil {
		n.log.Warn("join refused", "name", req.Name, "remote", req.Observed, "err", err)
		resp = wire.JoinResponse{Error: err.Error()}
	} else {
		n.log.Info("node joined", "name", req.Name, "remote", req.Observed)
		n.learnSelf(ctx, req.Dialed)
	}
	_ = wire.WriteFrame(conn, resp)
}

// learnSelf records the address a joiner used to reach this node as this
// node's member address, if it has none yet: peers, not interfaces, tell a
// node where it is.
func (n *Node) learnSelf(ctx context.Context, dialed string) {
	if _, _, err := net.SplitHostPort(dialed); err != nil {
		return
	}
	if me := n.fsm.View().Members[n.cfg.Name]; me.Address != "" {
		return
	}
	err := n.raft.Apply(ctx, store.Command{Op: store.OpMemberAddress, Name: n.cfg.Name, Address: dialed})
	if err != nil {
		n.log.Warn("recording own address", "address", dialed, "err", err)
	}
}

func (n *Node) registerRPC() {
	n.raft.Handle(joinOp, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		var req wire.JoinRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("%w: join request from %s: %v", store.ErrInvalidInput, from, err)
		}
		return n.admit(ctx, req)
	})
	n.raft.Handle(removeOp, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		var req removeRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("%w: remove request from %s: %v", store.ErrInvalidInput, from, err)
		}
		return nil, n.removeLocal(ctx, req)
	})
}

// admit runs on the leader: it checks the token and the name, signs the
// CSR, records the member through Raft and answers with the certificate.
// The certificate is released only after the member is committed, so
// every certificate the CA issues belongs to a recorded member.
func (n *Node) admit(ctx context.Context, req wire.JoinRequest) (*wire.JoinResponse, error) {
	s := n.fsm.View()
	ca, err := pki.ParseCA(s.Cluster.CACertPEM, s.Cluster.CAKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrNotInit, err)
	}
	tok, err := pki.ParseToken(req.Token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalidToken, err)
	}
	if tok.CAHash != ca.Hash() {
		return nil, fmt.Errorf("%w: the token is for another cluster", store.ErrInvalidToken)
	}
	t, ok := s.Tokens[tok.ID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", store.ErrTokenUnknown, tok.ID)
	}
	if !pki.SecretMatches(t.SecretHash, tok.Secret) {
		return nil, store.ErrSecretUnknown
	}
	now := time.Now()
	if err := t.Usable(now); err != nil {
		return nil, err
	}
	if err := pki.ValidName(req.Name); err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalidName, err)
	}
	if s.IsMember(req.Name) {
		return nil, fmt.Errorf("%w: %s (remove it first, or pick another name)", store.ErrNameTaken, req.Name)
	}
	if req.PeerPort < 0 || req.PeerPort > 65535 {
		return nil, fmt.Errorf("%w: peer port %d", store.ErrInvalidInput, req.PeerPort)
	}
	certDER, err := ca.Sign(req.CSR, req.Name, now, certTTL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalidInput, err)
	}
	leaf, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("parse the certificate just signed: %w", err)
	}
	pub, _ := leaf.PublicKey.(ed25519.PublicKey)
	observed, err := net.ResolveTCPAddr("tcp", req.Observed)
	var address string
	if err == nil {
		address = withPort(observed, req.PeerPort)
	}
	err = n.raft.Apply(ctx, store.Command{
		Op:      store.OpMemberJoin,
		TokenID: tok.ID,
		Member:  &store.Member{Name: req.Name, Address: address, PeerPort: req.PeerPort, PublicKey: pub},
	})
	if err != nil {
		return nil, err
	}
	resp := &wire.JoinResponse{Cert: certDER, CA: ca.DER}
	for _, m := range n.fsm.View().Current() {
		if m.Name == req.Name {
			continue
		}
		addr := m.Address
		if addr == "" && len(n.book.get(m.Name)) > 0 {
			addr = n.book.get(m.Name)[0]
		}
		resp.Members = append(resp.Members, wire.MemberAddr{Name: m.Name, Address: addr})
	}
	return resp, nil
}

// listenPort is the port of a listener, or 0.
func listenPort(l net.Listener) int {
	if l == nil {
		return 0
	}
	_, p, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}
