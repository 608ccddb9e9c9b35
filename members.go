package buoy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"buoy/internal/api"
	"buoy/internal/consensus"
	"buoy/internal/pki"
	"buoy/internal/store"
)

// Member is one cluster member as this node sees it.
type Member = api.Member

// Status summarises this node's view of the cluster.
type Status = api.Status

// TokenInfo describes a join token without its secret.
type TokenInfo = api.TokenInfo

// NewToken is a freshly created join token, with its secret.
type NewToken = api.NewToken

// TokenRequest asks for a join token.
type TokenRequest = api.TokenRequest

// ZonePut replaces a zone through the API.
type ZonePut = api.ZonePut

// suspectAfter is how long a member whose link is down stays "suspect"
// before it is shown as "dead".
const suspectAfter = 15 * time.Second

// Members lists the cluster's members, departed ones last, with their
// liveness as seen from this node.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	s := n.fsm.View()
	servers, _ := n.raft.Servers()
	voter := map[string]bool{}
	for _, sv := range servers {
		voter[string(sv.ID)] = sv.Suffrage == raft.Voter
	}
	leader := n.raft.Leader()
	now := time.Now()
	var out, gone []Member
	for _, m := range s.All() {
		am := Member{
			Name:    m.Name,
			Address: m.Address,
			Voter:   voter[m.Name],
			Leader:  m.Name == leader,
			Joined:  m.Joined,
			State:   n.memberState(m, now),
		}
		if m.Name == n.cfg.Name {
			if self, _, _ := n.observations(); self != "" {
				am.Address = self
			}
		} else if ap, ok := n.PeerAddr(m.Name); ok {
			// The member's own address, not a relay path to it.
			am.Address = ap.String()
		} else if addrs := n.resolve(m.Name); len(addrs) > 0 {
			am.Address = addrs[0] // a WebSocket URL, or a relay path
		}
		if m.Left {
			gone = append(gone, am)
		} else {
			out = append(out, am)
		}
	}
	return append(out, gone...), nil
}

func (n *Node) memberState(m store.Member, now time.Time) string {
	if m.Left {
		return api.StateLeft
	}
	if m.Name == n.cfg.Name {
		return api.StateAlive
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.linked[m.Name] {
		return api.StateAlive
	}
	seen, ok := n.lastSeen[m.Name]
	if ok && now.Sub(seen) < suspectAfter {
		return api.StateSuspect
	}
	return api.StateDead
}

// Status returns this node's view of the cluster.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st := n.raft.Stats()
	servers, _ := n.raft.Servers()
	s := n.fsm.View()
	out := Status{
		Name:        n.cfg.Name,
		Leader:      n.raft.Leader(),
		RaftState:   st.State,
		Term:        st.Term,
		CommitIndex: st.CommitIndex,
		AppliedIdx:  st.AppliedIndex,
		LastIndex:   st.LastIndex,
		Members:     len(s.Current()),
		Voters:      consensus.VoterCount(servers),
		CAHash:      pki.CertHash(n.id.CADER),
		PeerAddr:    n.peerL.Addr().String(),
	}
	if id := n.cert.cur.Load(); id != nil {
		out.CertNotAfter, out.CertRenewAfter = id.Cert.NotAfter.UTC(), pki.RenewAt(id.Cert).UTC()
	}
	out.SelfAddress, out.NAT, out.Observations = n.observations()
	if out.Observations == nil {
		out.Observations = []api.Observation{}
	}
	return out, nil
}

// CreateToken makes a join token. Its secret is returned once and stored
// only hashed.
func (n *Node) CreateToken(ctx context.Context, req TokenRequest) (NewToken, error) {
	ttl := DefaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return NewToken{}, fmt.Errorf("%w: ttl %q: want a positive duration such as 30m or 24h", store.ErrInvalidInput, req.TTL)
		}
		ttl = d
	}
	if req.MaxUses < 0 {
		return NewToken{}, fmt.Errorf("%w: max uses %d", store.ErrInvalidInput, req.MaxUses)
	}
	tok, err := pki.NewToken(pki.CertHash(n.id.CADER))
	if err != nil {
		return NewToken{}, err
	}
	now := time.Now().UTC()
	st := store.Token{
		ID:          tok.ID,
		SecretHash:  pki.HashSecret(tok.Secret),
		Created:     now,
		Expires:     now.Add(ttl),
		MaxUses:     req.MaxUses,
		Description: req.Description,
	}
	err = n.raft.Apply(ctx, store.Command{Op: store.OpTokenCreate, Token: &st})
	// A forwarded write retried after a lost answer may find its own first
	// attempt committed: that is success, not a clash.
	if errors.Is(err, store.ErrTokenExists) && n.fsm.View().Tokens[st.ID].SecretHash == st.SecretHash {
		err = nil
	}
	if err != nil {
		return NewToken{}, fmt.Errorf("create token: %w", err)
	}
	return NewToken{Token: tok.String(), TokenInfo: tokenInfo(st, now)}, nil
}

func tokenInfo(t store.Token, now time.Time) TokenInfo {
	return TokenInfo{
		ID: t.ID, Description: t.Description, Created: t.Created, Expires: t.Expires,
		MaxUses: t.MaxUses, Uses: t.Uses, Revoked: t.Revoked, Expired: !now.Before(t.Expires),
	}
}

// Tokens lists join tokens, without their secrets.
func (n *Node) Tokens(ctx context.Context) ([]TokenInfo, error) {
	now := time.Now()
	out := []TokenInfo{}
	for _, t := range n.fsm.View().TokenList() {
		out = append(out, tokenInfo(t, now))
	}
	return out, nil
}

// RevokeToken makes a token unusable at once.
func (n *Node) RevokeToken(ctx context.Context, id string) error {
	if _, ok := n.fsm.View().Tokens[id]; !ok {
		return fmt.Errorf("%w: %s", store.ErrTokenUnknown, id)
	}
	return n.raft.Apply(ctx, store.Command{Op: store.OpTokenRevoke, ID: id})
}

const removeOp = "remove"

type removeRequest struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// RemoveMember removes a member from the cluster (from any node): it
// leaves Raft's configuration and its certificate is refused from now on.
// The last voter cannot be removed.
func (n *Node) RemoveMember(ctx context.Context, name string) error {
	req := removeRequest{Name: name, Reason: "removed"}
	return n.raft.OnLeader(ctx, removeOp, req, nil, func(ctx context.Context) (any, error) {
		return nil, n.removeLocal(ctx, req)
	})
}

// removeLocal runs on the leader.
func (n *Node) removeLocal(ctx context.Context, req removeRequest) error {
	m, ok := n.fsm.View().Members[req.Name]
	if !ok {
		return fmt.Errorf("%w: %s", store.ErrNoSuchMember, req.Name)
	}
	if m.Left {
		return fmt.Errorf("%w: %s (%s)", store.ErrMemberGone, req.Name, m.LeftReason)
	}
	servers, err := n.raft.Servers()
	if err != nil {
		return err
	}
	isVoter := false
	for _, s := range servers {
		if string(s.ID) == req.Name && s.Suffrage == raft.Voter {
			isVoter = true
		}
	}
	if isVoter && consensus.VoterCount(servers) <= 1 {
		return fmt.Errorf("%w: %s is the only voter; the cluster would have no quorum", store.ErrLastVoter, req.Name)
	}
	if err := n.raft.Apply(ctx, store.Command{Op: store.OpMemberLeave, Name: req.Name, Reason: req.Reason}); err != nil {
		return err
	}
	// Reconcile at once rather than at the next tick: a promotion that
	// replaces a departed voter need not wait. The departed member itself
	// leaves Raft's configuration after raftRemoveGrace (leaderDuties).
	names, alive := n.raftMembers(n.fsm.View(), time.Now())
	if err := n.raft.Reconcile(names, n.cfg.MaxVoters, alive); err != nil && !errors.Is(err, raft.ErrNotLeader) {
		return err
	}
	return nil
}

// Leave removes this node from the cluster gracefully: leadership is handed
// over first if this node leads, then the member is removed, and the node
// stops (Done is closed). A node that is the last voter cannot leave.
func (n *Node) Leave(ctx context.Context) error {
	if n.raft.IsLeader() {
		servers, err := n.raft.Servers()
		if err != nil {
			return err
		}
		if consensus.VoterCount(servers) <= 1 {
			return fmt.Errorf("%w: %s is the only voter", store.ErrLastVoter, n.cfg.Name)
		}
		if err := n.raft.TransferLeadership(); err != nil {
			n.log.Warn("leave: leadership transfer", "err", err)
		}
	}
	req := removeRequest{Name: n.cfg.Name, Reason: "left"}
	err := n.raft.OnLeader(ctx, removeOp, req, nil, func(ctx context.Context) (any, error) {
		return nil, n.removeLocal(ctx, req)
	})
	// A retry after a lost answer finds this node already gone: done.
	if err != nil && !errors.Is(err, store.ErrMemberGone) {
		return fmt.Errorf("leave: %w", err)
	}
	n.stopSelf(fmt.Errorf("%w: left at %s", ErrLeft, time.Now().UTC().Format(time.RFC3339)))
	return nil
}

// WaitReady blocks until this node is a recorded member and knows a leader,
// or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s := n.fsm.View()
		if s.IsMember(n.cfg.Name) && n.raft.Leader() != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait until ready: %w", ctx.Err())
		case <-n.done:
			return n.Err()
		case <-s.Next():
		case <-t.C:
		}
	}
}
