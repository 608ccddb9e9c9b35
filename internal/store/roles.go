package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"buoy/internal/failover"
	"buoy/internal/health"
)

// Role is a failover role as the replicated state keeps it: who may hold it
// (failover.RoleConfig) and what every node runs for it, its health checks
// and hooks. Checks and hooks run on each node with that node's own files
// and services, so one definition serves the whole cluster.
type Role struct {
	Name string `json:"name"`
	// Candidates maps node names to priorities (higher wins); empty means
	// every member, all with priority 0.
	Candidates map[string]int `json:"candidates,omitempty"`
	// Preempt lets a healthy candidate of higher priority take the role
	// back from its holder.
	Preempt bool `json:"preempt,omitempty"`
	// TTL is the DNS TTL of <role>.<zone>; 0 means failover.DefaultTTL.
	TTL time.Duration `json:"ttl,omitempty"`
	// Checks must all pass on a node for it to be a candidate.
	Checks []health.Spec `json:"checks,omitempty"`
	Hooks  RoleHooks     `json:"hooks,omitzero"`
}

// RoleHooks are the executables a node runs when the role moves. Empty
// paths run nothing.
type RoleHooks struct {
	Promote string `json:"promote,omitempty"`
	Demote  string `json:"demote,omitempty"`
	Change  string `json:"change,omitempty"`
	// Timeout bounds one run (0: the hook runner's default, 30 s).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// maxHookTimeout bounds a hook's timeout: a hook that runs longer holds up
// every later hook of the role.
const maxHookTimeout = time.Hour

// reservedRoleNames cannot name roles: their names are taken in the
// cluster zone (<node>.nodes.<zone>).
var reservedRoleNames = []string{"nodes"}

// ErrRoleUnknown: no role of that name is defined.
var ErrRoleUnknown = errors.New("no such role")

// Config returns the part of the role the leader assigns by.
func (r Role) Config() failover.RoleConfig {
	return failover.RoleConfig{Name: r.Name, Candidates: r.Candidates, Preempt: r.Preempt, TTL: r.TTL}
}

// Validate checks the role's name, candidates, TTL, checks and hooks. It
// does not check that candidates are members: a role may name nodes that
// join later (callers that know the members check with
// failover.RoleConfig.Validate).
func (r Role) Validate() error {
	var errs []error
	if err := r.Config().Validate(nil); err != nil {
		errs = append(errs, err)
	}
	if slices.Contains(reservedRoleNames, r.Name) {
		errs = append(errs, fmt.Errorf("role name %q: %w: the name is taken by <node>.nodes.<zone>", r.Name, failover.ErrInvalidRole))
	}
	for i, c := range r.Checks {
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("role %s: check %d: %w", r.Name, i+1, err))
		}
	}
	for _, h := range []struct{ event, path string }{
		{"promote", r.Hooks.Promote}, {"demote", r.Hooks.Demote}, {"change", r.Hooks.Change},
	} {
		if h.path != "" && !filepath.IsAbs(h.path) {
			errs = append(errs, fmt.Errorf("role %s: %s hook %q: %w: give an absolute path", r.Name, h.event, h.path, failover.ErrInvalidRole))
		}
	}
	if r.Hooks.Timeout < 0 || r.Hooks.Timeout > maxHookTimeout {
		errs = append(errs, fmt.Errorf("role %s: hook timeout %v: %w: use 0 (default 30s) up to %v", r.Name, r.Hooks.Timeout, failover.ErrInvalidRole, maxHookTimeout))
	}
	return errors.Join(errs...)
}

// Equal reports whether two definitions are the same.
func (r Role) Equal(o Role) bool {
	a, err1 := json.Marshal(r)
	b, err2 := json.Marshal(o)
	return err1 == nil && err2 == nil && string(a) == string(b)
}

// RoleChange is the payload of role.change: one failover.Command, which
// creates the role's next epoch.
type RoleChange struct {
	// Op is "assign" or "release".
	Op     string `json:"op"`
	Role   string `json:"role"`
	Node   string `json:"node,omitempty"`
	Epoch  uint64 `json:"epoch"`
	Reason string `json:"reason,omitempty"`
}

// NewRolePut returns the role.put command that defines or replaces a role.
func NewRolePut(r Role) Command {
	r.Candidates = maps.Clone(r.Candidates)
	r.Checks = slices.Clone(r.Checks)
	return Command{Op: OpRolePut, Role: &r}
}

// NewRoleDelete returns the role.delete command. The role's assignment
// stays in the state (released by the leader), so that its epochs keep
// growing if the role is defined again.
func NewRoleDelete(name string) Command {
	return Command{Op: OpRoleDelete, Name: name}
}

// NewRoleChange returns the role.change command carrying c.
func NewRoleChange(c failover.Command) Command {
	return Command{Op: OpRoleChange, RoleChange: &RoleChange{
		Op: c.Op.String(), Role: c.Role, Node: c.Node, Epoch: c.Epoch, Reason: string(c.Reason),
	}}
}

// Command returns the failover command c carries.
func (c RoleChange) Command() (failover.Command, error) {
	fc := failover.Command{Role: c.Role, Node: c.Node, Epoch: c.Epoch, Reason: failover.Reason(c.Reason)}
	switch c.Op {
	case failover.OpAssign.String():
		fc.Op = failover.OpAssign
	case failover.OpRelease.String():
		fc.Op = failover.OpRelease
	default:
		return fc, fmt.Errorf("role change %q: unknown op", c.Op)
	}
	return fc, nil
}

// decodeRoleCommand checks the shape of the role commands (DecodeCommand).
func decodeRoleCommand(c *Command) error {
	switch c.Op {
	case OpRolePut:
		if c.Role == nil {
			return errors.New("without role")
		}
		return c.Role.Validate()
	case OpRoleDelete:
		return failover.ValidName(c.Name)
	case OpRoleChange:
		if c.RoleChange == nil {
			return errors.New("without role change")
		}
		_, err := c.RoleChange.Command()
		return err
	}
	return nil
}

// Role returns the role called name.
func (s *State) Role(name string) (Role, bool) {
	r, ok := s.Roles[name]
	return r, ok
}

// RoleList returns every defined role, ordered by name.
func (s *State) RoleList() []Role {
	out := make([]Role, 0, len(s.Roles))
	for _, name := range slices.Sorted(maps.Keys(s.Roles)) {
		out = append(out, s.Roles[name])
	}
	return out
}

// Assignment returns the role's committed assignment: the zero assignment
// (with Role set) for a role never assigned.
func (s *State) Assignment(role string) failover.Assignment {
	a, ok := s.Assignments[role]
	if !ok {
		return failover.Assignment{Role: role}
	}
	return a
}

// applyRole applies a role command at index.
func (s *State) applyRole(index uint64, c Command) error {
	var err error
	switch c.Op {
	case OpRolePut:
		err = s.applyRolePut(c.Role)
	case OpRoleDelete:
		err = s.applyRoleDelete(c.Name)
	case OpRoleChange:
		err = s.applyRoleChange(c.At, c.RoleChange)
	}
	if err == nil {
		s.RolesIndex = index
	}
	return err
}

func (s *State) applyRolePut(r *Role) error {
	s.Roles[r.Name] = *r
	return nil
}

func (s *State) applyRoleDelete(name string) error {
	if _, ok := s.Roles[name]; !ok {
		return fmt.Errorf("%w: %s", ErrRoleUnknown, name)
	}
	delete(s.Roles, name)
	return nil
}

// applyRoleChange applies one failover command. Only a command that
// creates exactly the role's next epoch applies (failover.Assignment.Apply),
// and an assignment only to a defined role and a current member, so that
// a command proposed against an older state is refused alike everywhere.
func (s *State) applyRoleChange(at time.Time, rc *RoleChange) error {
	c, err := rc.Command()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	if c.Op == failover.OpAssign {
		if _, ok := s.Roles[c.Role]; !ok {
			return fmt.Errorf("%w: %v", ErrRoleUnknown, c)
		}
		if !s.IsMember(c.Node) {
			return fmt.Errorf("%w: %v: %s", ErrNoSuchMember, c, c.Node)
		}
	}
	cur := s.Assignment(c.Role)
	next, err := cur.Apply(c, at)
	if err != nil {
		return err
	}
	s.Assignments[c.Role] = next
	return nil
}

// assignmentDoc is an assignment in a snapshot.
type assignmentDoc struct {
	Role     string    `json:"role"`
	Holder   string    `json:"holder,omitempty"`
	Epoch    uint64    `json:"epoch"`
	Previous string    `json:"previous,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// snapshotAssignments lists the assignments for a snapshot, by role name.
func snapshotAssignments(s *State) []assignmentDoc {
	out := make([]assignmentDoc, 0, len(s.Assignments))
	for _, name := range slices.Sorted(maps.Keys(s.Assignments)) {
		a := s.Assignments[name]
		out = append(out, assignmentDoc{Role: a.Role, Holder: a.Holder, Epoch: a.Epoch, Previous: a.Previous, Since: a.Since})
	}
	return out
}

// restoreRoles fills s's roles and assignments from a snapshot.
func restoreRoles(s *State, roles []Role, as []assignmentDoc) error {
	s.RolesIndex = s.Index
	for _, r := range roles {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("role %s: %w", r.Name, err)
		}
		s.Roles[r.Name] = r
	}
	for _, a := range as {
		if a.Role == "" {
			return errors.New("assignment without a role")
		}
		s.Assignments[a.Role] = failover.Assignment{Role: a.Role, Holder: a.Holder, Epoch: a.Epoch, Previous: a.Previous, Since: a.Since}
	}
	return nil
}
