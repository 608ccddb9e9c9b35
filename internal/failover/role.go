package failover

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// LeaderRole is the implicit role that always follows the Raft leader. It
// is not assigned here, so no configured role may take its name.
const LeaderRole = "leader"

// DefaultTTL is the DNS TTL of a role's name when its configuration gives none.
const DefaultTTL = 5 * time.Second

// maxTTL keeps TTLs within what resolvers honour (RFC 8767 caps at a week;
// a role that moves wants far less).
const maxTTL = 24 * time.Hour

// RoleConfig is one role as configured. Health checks and hooks belong to
// the node; here a role only needs who may hold it and how eagerly.
type RoleConfig struct {
	// Name is a DNS label: the role answers as <name>.<zone>.
	Name string
	// Candidates maps node names to priorities; higher wins. Empty means
	// every member of the cluster, all with priority 0.
	Candidates map[string]int
	// Preempt lets a healthy candidate of higher priority take the role
	// from its current holder. Off, a holder keeps the role while it is
	// healthy and alive, however good the others are.
	Preempt bool
	// TTL is the DNS TTL of the role's name; 0 means DefaultTTL.
	TTL time.Duration
}

// EffectiveTTL returns the TTL answers for the role carry.
func (c RoleConfig) EffectiveTTL() time.Duration {
	if c.TTL == 0 {
		return DefaultTTL
	}
	return c.TTL
}

// candidate reports whether node may hold the role, and its priority.
// members is the cluster's member list, the candidates by default.
func (c RoleConfig) candidate(node string, members []string) (priority int, ok bool) {
	if len(c.Candidates) == 0 {
		return 0, slices.Contains(members, node)
	}
	p, ok := c.Candidates[node]
	return p, ok
}

// ValidName reports whether s can name a role: a lower-case DNS label of
// letters, digits and inner hyphens, at most 63 bytes, and not "leader".
func ValidName(s string) error {
	if err := validLabel(s); err != nil {
		return fmt.Errorf("role name %q: %w", s, err)
	}
	if s == LeaderRole {
		return fmt.Errorf("role name %q: %w: it is the implicit role that follows the Raft leader", s, ErrInvalidRole)
	}
	return nil
}

// validLabel checks a lower-case DNS label (role and node names alike).
// Upper case is refused rather than folded so that a name has one spelling
// in the state, the logs and the hook environment.
func validLabel(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("%w: a DNS label has 1 to 63 characters", ErrInvalidRole)
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("%w: a DNS label may not start or end with '-'", ErrInvalidRole)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q at byte %d; use a-z, 0-9 and '-'", ErrInvalidRole, c, i)
		}
	}
	return nil
}

// Validate checks the role's name, priorities and TTL. With a non-nil
// members list it also checks that every candidate is a member (an error
// wrapping ErrUnknownNode otherwise); pass nil where membership is not
// known yet, as when a config file is read before joining.
func (c RoleConfig) Validate(members []string) error {
	var errs []error
	if err := ValidName(c.Name); err != nil {
		errs = append(errs, err)
	}
	if c.TTL < 0 || c.TTL > maxTTL {
		errs = append(errs, fmt.Errorf("role %s: ttl %v: %w: use 0 (default %v) up to %v", c.Name, c.TTL, ErrInvalidRole, DefaultTTL, maxTTL))
	}
	for _, node := range sortedKeys(c.Candidates) {
		if err := validLabel(node); err != nil {
			errs = append(errs, fmt.Errorf("role %s: candidate %q: %w", c.Name, node, err))
			continue
		}
		if p := c.Candidates[node]; p < 0 {
			errs = append(errs, fmt.Errorf("role %s: candidate %s: priority %d: %w: priorities are 0 or more, higher wins", c.Name, node, p, ErrInvalidRole))
		}
		if members != nil && !slices.Contains(members, node) {
			errs = append(errs, fmt.Errorf("role %s: candidate %s is not a member of the cluster (members: %s): %w; fix the candidates or join %s first",
				c.Name, node, strings.Join(members, ", "), ErrUnknownNode, node))
		}
	}
	return errors.Join(errs...)
}

// ValidateRoles validates every role (see RoleConfig.Validate) and that no
// two share a name.
func ValidateRoles(roles []RoleConfig, members []string) error {
	var errs []error
	seen := make(map[string]bool, len(roles))
	for _, r := range roles {
		if err := r.Validate(members); err != nil {
			errs = append(errs, err)
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("role %s: configured twice: %w", r.Name, ErrInvalidRole))
		}
		seen[r.Name] = true
	}
	return errors.Join(errs...)
}

// sortedKeys returns m's keys in order, so that errors and decisions do not
// depend on map iteration.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
