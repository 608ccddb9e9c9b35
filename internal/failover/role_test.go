package failover

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"db-1", true},
		{"0", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"leader", false},
		{"Web", false},
		{"-web", false},
		{"web-", false},
		{"web.example", false},
		{"we b", false},
		{"wéb", false},
	}
	for _, tt := range tests {
		err := ValidName(tt.name)
		if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidRole) {
			t.Errorf("ValidName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestRoleValidate(t *testing.T) {
	tests := []struct {
		name    string
		role    RoleConfig
		members []string
		want    []error
	}{
		{"minimal", RoleConfig{Name: "web"}, abc, nil},
		{"full", RoleConfig{Name: "web", Candidates: map[string]int{"a": 100, "b": 0}, Preempt: true, TTL: 30 * time.Second}, abc, nil},
		{"members unknown yet", RoleConfig{Name: "web", Candidates: map[string]int{"pi9": 1}}, nil, nil},
		{"unknown node", RoleConfig{Name: "web", Candidates: map[string]int{"a": 1, "pi9": 1}}, abc, []error{ErrUnknownNode}},
		{"reserved name", RoleConfig{Name: "leader"}, abc, []error{ErrInvalidRole}},
		{"negative priority", RoleConfig{Name: "web", Candidates: map[string]int{"a": -1}}, abc, []error{ErrInvalidRole}},
		{"bad candidate name", RoleConfig{Name: "web", Candidates: map[string]int{"A B": 1}}, abc, []error{ErrInvalidRole}},
		{"negative ttl", RoleConfig{Name: "web", TTL: -time.Second}, abc, []error{ErrInvalidRole}},
		{"huge ttl", RoleConfig{Name: "web", TTL: 48 * time.Hour}, abc, []error{ErrInvalidRole}},
		{"several problems", RoleConfig{Name: "Web", Candidates: map[string]int{"x": -2}}, abc, []error{ErrInvalidRole, ErrUnknownNode}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.role.Validate(tt.members)
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("Validate(%+v) = %v, want %v", tt.role, err, tt.want)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Validate(%+v) = %v, want it to wrap %v", tt.role, err, w)
				}
			}
		})
	}
	err := RoleConfig{Name: "web", Candidates: map[string]int{"pi9": 1}}.Validate(abc)
	for _, part := range []string{"pi9", "web", "a, b, c"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("Validate() = %q, want it to name %q", err, part)
		}
	}
}

func TestValidateRoles(t *testing.T) {
	if err := ValidateRoles([]RoleConfig{{Name: "web"}, {Name: "db"}}, abc); err != nil {
		t.Errorf("ValidateRoles(web, db) = %v", err)
	}
	if err := ValidateRoles([]RoleConfig{{Name: "web"}, {Name: "web"}}, abc); !errors.Is(err, ErrInvalidRole) {
		t.Errorf("ValidateRoles(web, web) = %v, want ErrInvalidRole", err)
	}
	if err := ValidateRoles([]RoleConfig{{Name: "web", Candidates: map[string]int{"q": 1}}}, abc); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("ValidateRoles(unknown node) = %v, want ErrUnknownNode", err)
	}
}

func TestRoleDefaults(t *testing.T) {
	if got := (RoleConfig{Name: "web"}).EffectiveTTL(); got != DefaultTTL {
		t.Errorf("EffectiveTTL() = %v, want %v", got, DefaultTTL)
	}
	if got := (RoleConfig{Name: "web", TTL: time.Second}).EffectiveTTL(); got != time.Second {
		t.Errorf("EffectiveTTL() = %v, want 1s", got)
	}
	all := RoleConfig{Name: "web"}
	if p, ok := all.candidate("b", abc); !ok || p != 0 {
		t.Errorf("candidate(b) with default candidates = %d, %v, want 0, true", p, ok)
	}
	if _, ok := all.candidate("z", abc); ok {
		t.Errorf("candidate(z), not a member, = true")
	}
	some := RoleConfig{Name: "web", Candidates: map[string]int{"b": 7}}
	if p, ok := some.candidate("b", abc); !ok || p != 7 {
		t.Errorf("candidate(b) = %d, %v, want 7, true", p, ok)
	}
	if _, ok := some.candidate("a", abc); ok {
		t.Errorf("candidate(a), a member but not listed, = true")
	}
}
