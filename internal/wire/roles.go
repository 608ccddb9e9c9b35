package wire

import (
	"encoding/json"
	"errors"
	"fmt"
)

// RPC operations of the failover roles, carried in Request.Op on rpc
// streams. Each body is one of the messages below, as JSON.
const (
	// OpRoleRenew: a holder asks a voter's witness to acknowledge a
	// renewal round (RoleRenewal → RoleAck).
	OpRoleRenew = "roles.renew"
	// OpRoleRelease: a former holder tells a node it gave an epoch up
	// (RoleRelease → nothing).
	OpRoleRelease = "roles.release"
	// OpRolePing: a node tells the leader it is alive and which roles its
	// checks pass for (RolePing → RoleView, the leader's view).
	OpRolePing = "roles.ping"
	// OpRoleMove: a planned move, run on the leader (RoleMove → nothing).
	OpRoleMove = "roles.move"
)

// Bounds of role messages, so that a peer cannot make a node keep or echo
// unbounded data.
const (
	// MaxRoleLen bounds a role name (a DNS label).
	MaxRoleLen = 63
	// MaxRolesPerMsg bounds the roles in a ping or a view.
	MaxRolesPerMsg = 256
	// MaxViewNodes bounds the nodes in a view.
	MaxViewNodes = 512
)

// ErrInvalidRoleMsg marks a role message that breaks the format.
var ErrInvalidRoleMsg = errors.New("invalid role message")

// RoleRenewal asks a witness to acknowledge that Node still holds Role at
// Epoch (failover.Renewal).
type RoleRenewal struct {
	Role    string `json:"role"`
	Epoch   uint64 `json:"epoch"`
	Node    string `json:"node"`
	Session uint64 `json:"session"`
	Seq     uint64 `json:"seq"`
}

// RoleAck acknowledges one renewal round (failover.Ack). From is not sent:
// the receiver takes it from the peer's certificate.
type RoleAck struct {
	Role    string `json:"role"`
	Epoch   uint64 `json:"epoch"`
	Session uint64 `json:"session"`
	Seq     uint64 `json:"seq"`
}

// RoleRelease tells a witness that Node, in run Session, gave Role's Epoch
// up for good (failover.Release).
type RoleRelease struct {
	Role    string `json:"role"`
	Epoch   uint64 `json:"epoch"`
	Node    string `json:"node"`
	Session uint64 `json:"session"`
}

// RolePing tells the leader that the sender is alive and lists the roles
// whose checks pass on it. Roles not listed fail (or are unknown to it).
type RolePing struct {
	// From is the sender's name. The receiver checks it against the
	// peer's certificate name when the rpc layer provides it.
	From    string   `json:"from"`
	Healthy []string `json:"healthy,omitempty"`
}

// RoleView is the leader's answer to a ping: the nodes it hears from and,
// per role, the nodes whose checks pass, so that every node can show
// candidates' state without asking.
type RoleView struct {
	Leader  string              `json:"leader"`
	Alive   []string            `json:"alive,omitempty"`
	Healthy map[string][]string `json:"healthy,omitempty"`
}

// RoleMove asks the leader to move Role to Node.
type RoleMove struct {
	Role string `json:"role"`
	Node string `json:"node"`
}

func checkName(what, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%w: %s has %d bytes, want 1 to %d", ErrInvalidRoleMsg, what, len(s), max)
	}
	return nil
}

// Validate checks the renewal's fields.
func (m RoleRenewal) Validate() error {
	if err := checkName("role", m.Role, MaxRoleLen); err != nil {
		return err
	}
	if m.Epoch == 0 {
		return fmt.Errorf("%w: renewal of %s at epoch 0", ErrInvalidRoleMsg, m.Role)
	}
	return checkName("node", m.Node, MaxNodeLen)
}

// Validate checks the acknowledgement's fields.
func (m RoleAck) Validate() error {
	if err := checkName("role", m.Role, MaxRoleLen); err != nil {
		return err
	}
	if m.Epoch == 0 {
		return fmt.Errorf("%w: ack of %s at epoch 0", ErrInvalidRoleMsg, m.Role)
	}
	return nil
}

// Validate checks the release's fields.
func (m RoleRelease) Validate() error {
	if err := checkName("role", m.Role, MaxRoleLen); err != nil {
		return err
	}
	if m.Epoch == 0 {
		return fmt.Errorf("%w: release of %s at epoch 0", ErrInvalidRoleMsg, m.Role)
	}
	return checkName("node", m.Node, MaxNodeLen)
}

// Validate checks the ping's fields.
func (m RolePing) Validate() error {
	if err := checkName("from", m.From, MaxNodeLen); err != nil {
		return err
	}
	if len(m.Healthy) > MaxRolesPerMsg {
		return fmt.Errorf("%w: ping lists %d roles, at most %d", ErrInvalidRoleMsg, len(m.Healthy), MaxRolesPerMsg)
	}
	for _, r := range m.Healthy {
		if err := checkName("role", r, MaxRoleLen); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the view's fields.
func (m RoleView) Validate() error {
	if m.Leader != "" {
		if err := checkName("leader", m.Leader, MaxNodeLen); err != nil {
			return err
		}
	}
	if len(m.Alive) > MaxViewNodes {
		return fmt.Errorf("%w: view lists %d nodes, at most %d", ErrInvalidRoleMsg, len(m.Alive), MaxViewNodes)
	}
	if len(m.Healthy) > MaxRolesPerMsg {
		return fmt.Errorf("%w: view lists %d roles, at most %d", ErrInvalidRoleMsg, len(m.Healthy), MaxRolesPerMsg)
	}
	for _, n := range m.Alive {
		if err := checkName("node", n, MaxNodeLen); err != nil {
			return err
		}
	}
	for r, nodes := range m.Healthy {
		if err := checkName("role", r, MaxRoleLen); err != nil {
			return err
		}
		if len(nodes) > MaxViewNodes {
			return fmt.Errorf("%w: view lists %d nodes for %s, at most %d", ErrInvalidRoleMsg, len(nodes), r, MaxViewNodes)
		}
		for _, n := range nodes {
			if err := checkName("node", n, MaxNodeLen); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks the move's fields.
func (m RoleMove) Validate() error {
	if err := checkName("role", m.Role, MaxRoleLen); err != nil {
		return err
	}
	return checkName("node", m.Node, MaxNodeLen)
}

// roleMsg is any role message.
type roleMsg interface {
	RoleRenewal | RoleAck | RoleRelease | RolePing | RoleView | RoleMove
	Validate() error
}

// DecodeRole decodes and validates one role message body. Unknown fields
// are allowed, so that a newer node may add some.
func DecodeRole[M roleMsg](body []byte) (M, error) {
	var m M
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("decode %T: %w: %v", m, ErrInvalidRoleMsg, err)
	}
	if err := m.Validate(); err != nil {
		var zero M
		return zero, fmt.Errorf("decode %T: %w", m, err)
	}
	return m, nil
}
