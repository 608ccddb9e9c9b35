package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Op names a command type. Values are stored in the Raft log: never change
// the meaning of an existing one; add new ones.
type Op string

// Commands.
const (
	OpClusterInit   Op = "cluster.init"   // Cluster: the CA, once
	OpMemberJoin    Op = "member.join"    // Member, TokenID (empty only for the first member)
	OpMemberAddress Op = "member.address" // Name, Address, PeerPort
	OpMemberLeave   Op = "member.leave"   // Name, Reason
	OpTokenCreate   Op = "token.create"   // Token
	OpTokenRevoke   Op = "token.revoke"   // ID
	OpZonePut       Op = "zone.put"       // Zone: replaces the zone atomically
	OpZoneDrop      Op = "zone.drop"      // Origin
	OpZoneUpdate    Op = "zone.update"    // Update: RFC 2136, applied atomically
	OpRolePut       Op = "role.put"       // Role: defines or replaces a failover role
	OpRoleDelete    Op = "role.delete"    // Name
	OpRoleChange    Op = "role.change"    // RoleChange: assign or release, the next epoch
)

// CommandVersion is the envelope version written by this code.
const CommandVersion = 1

// Command is one entry of the Raft log. At is the proposing leader's clock,
// so that time-dependent checks (token expiry) give the same answer on every
// node that applies the entry.
type Command struct {
	V        int       `json:"v"`
	Op       Op        `json:"op"`
	At       time.Time `json:"at"`
	Cluster  *Cluster  `json:"cluster,omitempty"`
	Member   *Member   `json:"member,omitempty"`
	Token    *Token    `json:"token,omitempty"`
	TokenID  string    `json:"token_id,omitempty"`
	Name     string    `json:"name,omitempty"`
	Address  string    `json:"address,omitempty"`
	PeerPort int       `json:"peer_port,omitempty"`
	ID       string    `json:"id,omitempty"`
	Reason   string    `json:"reason,omitempty"`

	// Zone commands.
	Zone   *ZoneData   `json:"zone,omitempty"`
	Update *ZoneUpdate `json:"update,omitempty"`
	Origin string      `json:"origin,omitempty"`

	// Role commands.
	Role       *Role       `json:"role,omitempty"`
	RoleChange *RoleChange `json:"role_change,omitempty"`
}

// Encode returns the log entry bytes for c.
func (c Command) Encode() ([]byte, error) {
	if c.V == 0 {
		c.V = CommandVersion
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %s: %w", c.Op, err)
	}
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("encode command %s: %w: %d bytes, the limit is %d", c.Op, ErrBadCommand, len(b), MaxCommandBytes)
	}
	return b, nil
}

// ErrBadCommand wraps every decoding or validation failure of a command.
var ErrBadCommand = errors.New("bad command")

// DecodeCommand parses and validates a log entry. It is the only way bytes
// from the log become a Command, so every check of shape lives here.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) > MaxCommandBytes {
		return Command{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadCommand, len(b), MaxCommandBytes)
	}
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	if c.V != CommandVersion {
		return Command{}, fmt.Errorf("%w: version %d, this build understands %d", ErrBadCommand, c.V, CommandVersion)
	}
	missing := func(what string) (Command, error) {
		return Command{}, fmt.Errorf("%w: %s without %s", ErrBadCommand, c.Op, what)
	}
	switch c.Op {
	case OpClusterInit:
		if c.Cluster == nil || len(c.Cluster.CACertPEM) == 0 || len(c.Cluster.CAKeyPEM) == 0 {
			return missing("CA")
		}
	case OpMemberJoin:
		if c.Member == nil || c.Member.Name == "" {
			return missing("member")
		}
	case OpMemberAddress, OpMemberLeave:
		if c.Name == "" {
			return missing("name")
		}
	case OpTokenCreate:
		if c.Token == nil || c.Token.ID == "" || c.Token.SecretHash == "" {
			return missing("token")
		}
	case OpTokenRevoke:
		if c.ID == "" {
			return missing("token id")
		}
	case OpZonePut:
		if c.Zone == nil {
			return missing("zone")
		}
		if err := c.Zone.decode(); err != nil {
			return Command{}, fmt.Errorf("%w: %s: %w", ErrBadCommand, c.Op, err)
		}
	case OpZoneDrop:
		o, err := checkOrigin(c.Origin)
		if err != nil {
			return Command{}, fmt.Errorf("%w: %s: %w", ErrBadCommand, c.Op, err)
		}
		c.Origin = o
	case OpZoneUpdate:
		if c.Update == nil {
			return missing("update")
		}
		if err := c.Update.decode(); err != nil {
			return Command{}, fmt.Errorf("%w: %s: %w", ErrBadCommand, c.Op, err)
		}
	case OpRolePut, OpRoleDelete, OpRoleChange:
		if err := decodeRoleCommand(&c); err != nil {
			return Command{}, fmt.Errorf("%w: %s: %w", ErrBadCommand, c.Op, err)
		}
	default:
		return Command{}, fmt.Errorf("%w: unknown op %q", ErrBadCommand, c.Op)
	}
	return c, nil
}
