package buoy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"buoy/internal/failover"
	"buoy/internal/store"
	"buoy/internal/wire"
)

// registerRoleRPC installs the handlers of the roles protocol on the rpc
// streams: renewals for the witness, releases, pings for the leader, and
// planned moves.
func (n *Node) registerRoleRPC() {
	r := n.roles
	n.raft.Handle(wire.OpRoleRenew, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		m, err := wire.DecodeRole[wire.RoleRenewal](body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrInvalidInput, err)
		}
		return r.onRenew(from, m, time.Now())
	})
	n.raft.Handle(wire.OpRoleRelease, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		m, err := wire.DecodeRole[wire.RoleRelease](body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrInvalidInput, err)
		}
		if err := sameSender(from, m.Node); err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.witness.Release(failover.Release{Role: m.Role, Epoch: m.Epoch, Node: m.Node, Session: m.Session})
		r.mu.Unlock()
		r.poke()
		return struct{}{}, nil
	})
	n.raft.Handle(wire.OpRolePing, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		m, err := wire.DecodeRole[wire.RolePing](body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrInvalidInput, err)
		}
		if err := sameSender(from, m.From); err != nil {
			return nil, err
		}
		return r.onPing(m.From, m, time.Now())
	})
	n.raft.Handle(wire.OpRoleMove, func(ctx context.Context, from string, body json.RawMessage) (any, error) {
		m, err := wire.DecodeRole[wire.RoleMove](body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrInvalidInput, err)
		}
		return struct{}{}, r.move(ctx, m, time.Now())
	})
}

// sameSender checks that a message's claimed sender is the peer it came
// from, when the rpc layer names the peer (from its certificate).
func sameSender(peer, claimed string) error {
	if peer != "" && peer != claimed {
		return fmt.Errorf("%w: %s may not speak for %s", store.ErrInvalidInput, peer, claimed)
	}
	return nil
}

// onRenew is the witness's answer to a renewal from node from.
func (r *roleManager) onRenew(from string, m wire.RoleRenewal, now time.Time) (wire.RoleAck, error) {
	if err := sameSender(from, m.Node); err != nil {
		return wire.RoleAck{}, err
	}
	from = m.Node
	cur := r.n.fsm.View().Assignment(m.Role)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heard[from] = now // a renewal says the holder is alive as well as a ping
	ack, err := r.witness.Renew(failover.Renewal{Role: m.Role, Epoch: m.Epoch, Node: m.Node, Session: m.Session, Seq: m.Seq}, cur, now)
	if err != nil {
		return wire.RoleAck{}, err
	}
	return wire.RoleAck{Role: ack.Role, Epoch: ack.Epoch, Session: ack.Session, Seq: ack.Seq}, nil
}

// renewLocked sends one renewal round to every voter: this node's own
// witness answers at once, the others through RPCs whose answers come
// back to the holder. An answer later than Lease-Guard could not extend
// the lease, so the calls give up then.
func (r *roleManager) renewLocked(rn failover.Renewal, now time.Time) {
	voters := slices.Clone(r.voters)
	for _, v := range voters {
		if v == r.self {
			ack, err := r.witness.Renew(rn, r.n.fsm.View().Assignment(rn.Role), now)
			if err == nil {
				r.carryOutLocked(r.holder.Ack(ack, voters, now), now)
			}
			continue
		}
		r.wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.n.ctx, r.t.Lease-r.t.Guard)
			defer cancel()
			var ack wire.RoleAck
			err := r.n.raft.Call(ctx, v, wire.OpRoleRenew, wire.RoleRenewal{
				Role: rn.Role, Epoch: rn.Epoch, Node: rn.Node, Session: rn.Session, Seq: rn.Seq,
			}, &ack)
			if err == nil {
				err = ack.Validate()
			}
			if err != nil {
				r.n.log.Debug("renewal not acknowledged", "role", rn.Role, "epoch", rn.Epoch, "voter", v, "err", err)
				return
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.closing {
				return
			}
			now := time.Now()
			r.carryOutLocked(r.holder.Ack(failover.Ack{Role: ack.Role, Epoch: ack.Epoch, Session: ack.Session, Seq: ack.Seq, From: v}, voters, now), now)
		})
	}
}

// sendReleaseLocked tells every node, this one included, that this node
// gave an epoch up, so that witnesses need not wait out their promise.
func (r *roleManager) sendReleaseLocked(rel failover.Release) {
	r.witness.Release(rel)
	msg := wire.RoleRelease{Role: rel.Role, Epoch: rel.Epoch, Node: rel.Node, Session: rel.Session}
	for _, m := range r.n.fsm.View().Current() {
		if m.Name == r.self {
			continue
		}
		to := m.Name
		r.wg.Go(func() {
			// Not the node's context: a release also goes out while the
			// node closes, after its demote hook.
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			if err := r.n.raft.Call(ctx, to, wire.OpRoleRelease, msg, nil); err != nil {
				r.n.log.Debug("release not delivered", "role", rel.Role, "epoch", rel.Epoch, "to", to, "err", err)
			}
		})
	}
	r.poke()
}

// pinger tells the leader every Renew (and at once after a health change)
// that this node is alive and which roles its checks pass for, and keeps
// the leader's view that comes back.
func (r *roleManager) pinger() {
	t := time.NewTicker(r.t.Renew)
	defer t.Stop()
	for {
		r.ping()
		select {
		case <-t.C:
		case <-r.pingNow:
		case <-r.n.ctx.Done():
			return
		}
	}
}

func (r *roleManager) ping() {
	leader := r.n.raft.Leader()
	if leader == "" {
		return
	}
	now := time.Now()
	r.mu.Lock()
	healthy := r.healthyLocked(now)
	r.mu.Unlock()
	if leader == r.self {
		if _, err := r.onPing(r.self, wire.RolePing{From: r.self, Healthy: healthy}, now); err == nil {
			r.mu.Lock()
			r.view, r.viewAt = r.leaderViewLocked(r.n.fsm.View(), now), now
			r.mu.Unlock()
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.n.ctx, 4*r.t.Renew)
	defer cancel()
	var view wire.RoleView
	err := r.n.raft.Call(ctx, leader, wire.OpRolePing, wire.RolePing{From: r.self, Healthy: healthy}, &view)
	if err == nil {
		err = view.Validate()
	}
	if err != nil {
		r.n.log.Debug("ping to the leader", "leader", leader, "err", err)
		return
	}
	r.mu.Lock()
	r.view, r.viewAt = view, time.Now()
	r.mu.Unlock()
}

// onPing records a node's ping on the leader and answers the leader's view.
func (r *roleManager) onPing(from string, m wire.RolePing, now time.Time) (wire.RoleView, error) {
	if !r.n.raft.IsLeader() {
		return wire.RoleView{}, store.ErrNotLeader
	}
	s := r.n.fsm.View()
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.reports[from]
	wasAlive := had && now.Sub(r.heard[from]) < r.aliveFor
	r.heard[from] = now
	r.reports[from] = report{at: now, healthy: m.Healthy}
	if !wasAlive || !slices.Equal(old.healthy, m.Healthy) || !old.at.After(r.office) {
		r.poke()
	}
	return r.leaderViewLocked(s, now), nil
}
