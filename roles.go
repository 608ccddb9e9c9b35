package buoy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"buoy/internal/api"
	"buoy/internal/consensus"
	"buoy/internal/failover"
	"buoy/internal/health"
	"buoy/internal/hooks"
	"buoy/internal/store"
	"buoy/internal/wire"
)

// RoleDef defines a failover role: its name (a DNS label), candidates and
// priorities, preempt, DNS TTL, health checks and hooks. Definitions live in
// the replicated state; Config.Roles and PutRole write them.
type RoleDef = store.Role

// RoleHooks are a role's hook executables and their timeout.
type RoleHooks = store.RoleHooks

// HealthCheck is one health check of a role: tcp, http, https or exec,
// with interval, timeout, rise and fall.
type HealthCheck = health.Spec

// RoleInfo is a role as this node sees it (Node.Roles).
type RoleInfo = api.RoleInfo

// RoleCandidate is one candidate of a role, with what the leader knows of it.
type RoleCandidate = api.RoleCandidate

// RoleHistoryEntry is one line of this node's role audit log.
type RoleHistoryEntry = api.HistoryEntry

// LeaderRole is the implicit role that follows the Raft leader.
const LeaderRole = failover.LeaderRole

// Errors of the roles API callers branch on.
var (
	// ErrUnknownRole: no role of that name is defined.
	ErrUnknownRole = store.ErrRoleUnknown
	// ErrInvalidRole: a role definition is malformed.
	ErrInvalidRole = failover.ErrInvalidRole
	// ErrUnknownNode: a role names a node that is not a member.
	ErrUnknownNode = failover.ErrUnknownNode
	// ErrMoveRefused: a planned move was refused (the target is not an
	// alive, healthy candidate, or preempt would take the role back).
	ErrMoveRefused = errors.New("move refused")
)

// RoleEvent is one change of a role as this node saw it: what its hooks
// run for. OnRoleChange delivers them in order.
type RoleEvent struct {
	// Kind is "promote" (this node now holds the role), "demote" (it no
	// longer does) or "change" (the role moved; on every node).
	Kind string
	Role string
	// Epoch is the role's fencing epoch the event is about; for the
	// implicit role "leader", the Raft term.
	Epoch uint64
	// Node is this node; Holder the role's holder after the event ("" for
	// none), Previous the one before.
	Node, Holder, Previous string
	// Cause is why: quorum, lease-lost, moved, rerun, shutdown or leader.
	Cause string
	At    time.Time
}

// OnRoleChange registers f to be called for every role event on this node,
// in order, from one goroutine. f must not block for long: events that do
// not fit in a bounded queue are dropped (and logged).
func (n *Node) OnRoleChange(f func(RoleEvent)) {
	n.roleShared.onChange(f)
}

// Roles lists the roles as this node sees them, the implicit role "leader"
// first. It does not block on the network: candidates' liveness and health
// are what the leader last told this node.
func (n *Node) Roles() []RoleInfo {
	if n.roles == nil {
		return nil
	}
	return n.roles.list(time.Now())
}

// HoldsRole reports whether this node holds role at this instant, and at
// which epoch: assigned to it and its lease renewed by a majority. A
// program acting as the holder checks it right before each action and
// passes the epoch on to whatever it writes, so a stale holder is fenced.
func (n *Node) HoldsRole(role string) (epoch uint64, ok bool) {
	if n.roles == nil {
		return 0, false
	}
	return n.roles.holds(role, time.Now())
}

// SetRoleHealth reports this program's own health for role on this node:
// nil is passing, an error failing (its text shows in "buoy roles"). It
// adds to the role's configured checks; until it is first called only
// those count.
func (n *Node) SetRoleHealth(role string, err error) {
	if n.roleShared.setExternal(role, err) && n.roles != nil {
		n.roles.pokePing()
		n.roles.poke()
	}
}

// PutRole defines or replaces a role through Raft. Every candidate must be
// a current member (an error wrapping ErrUnknownNode otherwise).
func (n *Node) PutRole(ctx context.Context, def RoleDef) error {
	if err := def.Validate(); err != nil {
		return err
	}
	s := n.fsm.View()
	if err := def.Config().Validate(memberNames(s)); err != nil {
		return err
	}
	if cur, ok := s.Role(def.Name); ok && cur.Equal(def) {
		return nil
	}
	if err := n.raft.Apply(ctx, store.NewRolePut(def)); err != nil {
		return fmt.Errorf("define role %s: %w", def.Name, err)
	}
	return nil
}

// DeleteRole removes a role. The leader then releases it (its holder runs
// its demote hook) and its name stops answering.
func (n *Node) DeleteRole(ctx context.Context, name string) error {
	if _, ok := n.fsm.View().Role(name); !ok {
		return fmt.Errorf("delete role %s: %w", name, store.ErrRoleUnknown)
	}
	if err := n.raft.Apply(ctx, store.NewRoleDelete(name)); err != nil {
		return fmt.Errorf("delete role %s: %w", name, err)
	}
	return nil
}

// MoveRole makes a planned switchover of role to node: the holder demotes
// and releases its lease, then node is assigned the role. It returns once
// node is the committed holder, or with an error wrapping ErrMoveRefused
// when the leader refuses the move.
func (n *Node) MoveRole(ctx context.Context, role, node string) error {
	s := n.fsm.View()
	if _, ok := s.Role(role); !ok {
		return fmt.Errorf("move %s to %s: %w", role, node, store.ErrRoleUnknown)
	}
	if !s.IsMember(node) {
		return fmt.Errorf("move %s to %s: %w: %s is not a member", role, node, ErrMoveRefused, node)
	}
	req := wire.RoleMove{Role: role, Node: node}
	send := func(ctx context.Context) error {
		err := n.raft.OnLeader(ctx, wire.OpRoleMove, req, nil, func(ctx context.Context) (any, error) {
			return nil, n.roles.move(ctx, req, time.Now())
		})
		if err != nil && !errors.Is(err, ErrMoveRefused) && errors.Is(err, store.ErrInvalidInput) {
			// The leader's refusal, across the wire.
			err = fmt.Errorf("%w: %w", ErrMoveRefused, err)
		}
		if err != nil {
			return fmt.Errorf("move %s to %s: %w", role, node, err)
		}
		return nil
	}
	if err := send(ctx); err != nil {
		return err
	}
	// The leader carries the move out over the next plans: release, wait
	// for the holder to let go, assign. The planned move lives in that
	// leader's memory only, so when leadership changes before it is done
	// the move is asked of the new leader (Move is idempotent, also once
	// the role is vacant).
	wait, cancel := context.WithTimeout(ctx, n.roles.t.Lease*4+5*time.Second)
	defer cancel()
	leader := n.raft.Leader()
	var lastErr error
	tick := time.NewTicker(n.roles.t.Lease / 4)
	defer tick.Stop()
	for {
		s := n.fsm.View()
		if s.Assignment(role).Holder == node {
			return nil
		}
		if l := n.raft.Leader(); l != "" && l != leader {
			leader = l
			// A new leader may not have heard from the target yet and
			// refuse it as not alive: ask again at the next tick.
			if lastErr = send(wait); lastErr != nil {
				n.log.Debug("planned move: asking the new leader", "role", role, "to", node, "err", lastErr)
				leader = ""
			}
		}
		select {
		case <-s.Next():
		case <-tick.C:
		case <-wait.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (after a change of leader)", lastErr)
			}
			return fmt.Errorf("move %s to %s: not done yet (%v); see \"buoy roles\" and \"buoy roles history\"", role, node, wait.Err())
		case <-n.ctx.Done():
			return fmt.Errorf("move %s to %s: node closed", role, node)
		}
	}
}

// RoleHistory returns this node's audit log of role transitions and hook
// runs, oldest first: only role's entries unless role is "", and only the
// last limit entries unless limit is 0.
func (n *Node) RoleHistory(role string, limit int) ([]RoleHistoryEntry, error) {
	es, err := n.roles.audit.Entries()
	if err != nil && len(es) == 0 {
		return nil, err
	}
	if role != "" {
		es = slices.DeleteFunc(es, func(e hooks.Entry) bool { return e.Role != role })
	}
	if limit > 0 && len(es) > limit {
		es = es[len(es)-limit:]
	}
	return es, nil
}

func memberNames(s *store.State) []string {
	var out []string
	for _, m := range s.Current() {
		out = append(out, m.Name)
	}
	return out
}

// validateRoles checks Config.Roles and Config.FailoverProfile.
func (c *Config) validateRoles() error {
	if _, err := failover.Profile(c.FailoverProfile); err != nil {
		return fmt.Errorf("%w: --failover-profile: %w", ErrConfig, err)
	}
	var errs []error
	seen := map[string]bool{}
	for _, r := range c.Roles {
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("role %s: defined twice", r.Name))
		}
		seen[r.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: roles: %w", ErrConfig, err)
	}
	return nil
}

// raftTiming returns Raft's timeouts for a failover profile: hashicorp's
// defaults for "default", and for "lan" elections fast enough that a crash
// of a leader that also held a role costs little more than the lease.
func raftTiming(profile string) consensus.Timing {
	if profile != failover.ProfileLAN {
		return consensus.Timing{}
	}
	return consensus.Timing{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
	}
}
