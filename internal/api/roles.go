package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"

	"buoy/internal/failover"
	"buoy/internal/health"
	"buoy/internal/hooks"
	"buoy/internal/store"
)

// RoleInfo is one failover role as a node sees it: the committed holder
// and epoch, the candidates with what the leader knows of them, and this
// node's own checks.
type RoleInfo struct {
	Name string `json:"name"`
	// Holder is the node the role is assigned to, "" for none.
	Holder     string `json:"holder"`
	HolderAddr string `json:"holder_addr,omitempty"`
	Epoch      uint64 `json:"epoch"`
	// Since is when the leader committed the epoch (its clock).
	Since    time.Time `json:"since,omitzero"`
	Previous string    `json:"previous,omitempty"`
	// Held is whether this node holds the role at this instant: assigned
	// to it, and its lease renewed by a majority.
	Held bool `json:"held"`
	// Implicit marks the role "leader", which follows the Raft leader; its
	// epoch is the Raft term.
	Implicit   bool            `json:"implicit,omitempty"`
	Preempt    bool            `json:"preempt"`
	TTL        string          `json:"ttl,omitempty"`
	Candidates []RoleCandidate `json:"candidates"`
	// Checks are this node's checks for the role.
	Checks []RoleCheck `json:"checks,omitempty"`
	// Local is why this node is or is not a healthy candidate: "passing",
	// or what fails.
	Local string `json:"local,omitempty"`
}

// RoleCandidate is one node that may hold a role.
type RoleCandidate struct {
	Node     string `json:"node"`
	Priority int    `json:"priority"`
	// Member is false for a candidate that is not (or no longer) a member
	// of the cluster: it cannot hold the role until it joins.
	Member bool `json:"member"`
	// Alive is "yes", "no" or "unknown" (no word from the leader lately).
	Alive string `json:"alive"`
	// Health is "passing", "failing" or "unknown".
	Health string `json:"health"`
}

// RoleCheck is the state of one of this node's health checks.
type RoleCheck struct {
	Name    string    `json:"name"`
	Healthy bool      `json:"healthy"`
	Probes  uint64    `json:"probes"`
	Error   string    `json:"error,omitempty"`
	LastAt  time.Time `json:"last_at,omitzero"`
}

// RoleSpec is a role's definition as written in the YAML config (under
// roles: NAME:) and sent to PUT /v1/roles/NAME. Durations are Go
// durations with a unit ("5s", "500ms").
type RoleSpec struct {
	// Candidates maps node names to priorities, higher wins; empty means
	// every member with equal priority.
	Candidates map[string]int `json:"candidates,omitempty" yaml:"candidates,omitempty"`
	// Preempt lets a recovered candidate of higher priority take the role
	// back (default off).
	Preempt bool `json:"preempt" yaml:"preempt"`
	// TTL is the DNS TTL of <role>.<zone> (default 5s).
	TTL    string        `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	Checks []health.Spec `json:"checks,omitempty" yaml:"checks,omitempty"`
	Hooks  RoleHooksSpec `json:"hooks,omitzero" yaml:"hooks,omitempty"`
}

// RoleHooksSpec names a role's hook executables (absolute paths) and
// their timeout (default 30s).
type RoleHooksSpec struct {
	Promote string `json:"promote,omitempty" yaml:"promote,omitempty"`
	Demote  string `json:"demote,omitempty" yaml:"demote,omitempty"`
	Change  string `json:"change,omitempty" yaml:"change,omitempty"`
	Timeout string `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// Role converts the spec into the role called name, validated.
func (s RoleSpec) Role(name string) (store.Role, error) {
	r := store.Role{Name: name, Candidates: maps.Clone(s.Candidates), Preempt: s.Preempt, Checks: s.Checks,
		Hooks: store.RoleHooks{Promote: s.Hooks.Promote, Demote: s.Hooks.Demote, Change: s.Hooks.Change}}
	var errs []error
	parse := func(what, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("role %s: %s %q: %w: want a duration like 5s", name, what, v, failover.ErrInvalidRole))
			return
		}
		*dst = d
	}
	parse("ttl", s.TTL, &r.TTL)
	parse("hooks timeout", s.Hooks.Timeout, &r.Hooks.Timeout)
	if len(errs) > 0 {
		return store.Role{}, errors.Join(errs...)
	}
	if err := r.Validate(); err != nil {
		return store.Role{}, err
	}
	return r, nil
}

// SpecOf returns the spec of a role, the inverse of RoleSpec.Role.
func SpecOf(r store.Role) RoleSpec {
	s := RoleSpec{Candidates: maps.Clone(r.Candidates), Preempt: r.Preempt, Checks: r.Checks,
		Hooks: RoleHooksSpec{Promote: r.Hooks.Promote, Demote: r.Hooks.Demote, Change: r.Hooks.Change}}
	if r.TTL != 0 {
		s.TTL = r.TTL.String()
	}
	if r.Hooks.Timeout != 0 {
		s.Hooks.Timeout = r.Hooks.Timeout.String()
	}
	return s
}

// RoleMoveRequest is the body of POST /v1/roles/NAME/move.
type RoleMoveRequest struct {
	Node string `json:"node"`
}

// HistoryEntry is one line of a node's role audit log.
type HistoryEntry = hooks.Entry

// RolesBackend is what the role endpoints need from a node. A Backend
// that implements it gets them.
type RolesBackend interface {
	RoleList(ctx context.Context) ([]RoleInfo, error)
	RoleGet(ctx context.Context, name string) (RoleInfo, RoleSpec, error)
	RolePut(ctx context.Context, name string, spec RoleSpec) error
	RoleDelete(ctx context.Context, name string) error
	RoleMove(ctx context.Context, name, node string) error
	RoleHistory(ctx context.Context, role string, limit int) ([]HistoryEntry, error)
}

// roleRoutes registers the role endpoints if the backend has them.
func (s *server) roleRoutes(mux *http.ServeMux) {
	rb, ok := s.b.(RolesBackend)
	if !ok {
		return
	}
	mux.HandleFunc("GET /v1/roles", func(w http.ResponseWriter, r *http.Request) {
		rs, err := rb.RoleList(r.Context())
		if rs == nil {
			rs = []RoleInfo{}
		}
		s.replyRole(w, rs, err)
	})
	mux.HandleFunc("GET /v1/roles/history", func(w http.ResponseWriter, r *http.Request) {
		limit := 0
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a whole number", v))
				return
			}
			limit = n
		}
		es, err := rb.RoleHistory(r.Context(), r.URL.Query().Get("role"), limit)
		if es == nil {
			es = []HistoryEntry{}
		}
		s.replyRole(w, es, err)
	})
	mux.HandleFunc("GET /v1/roles/{name}", func(w http.ResponseWriter, r *http.Request) {
		info, spec, err := rb.RoleGet(r.Context(), r.PathValue("name"))
		s.replyRole(w, struct {
			RoleInfo
			Definition RoleSpec `json:"definition"`
		}{info, spec}, err)
	})
	mux.HandleFunc("PUT /v1/roles/{name}", func(w http.ResponseWriter, r *http.Request) {
		var spec RoleSpec
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("role %s: %w", r.PathValue("name"), err))
			return
		}
		err := rb.RolePut(r.Context(), r.PathValue("name"), spec)
		s.replyRole(w, map[string]string{"defined": r.PathValue("name")}, err)
	})
	mux.HandleFunc("DELETE /v1/roles/{name}", func(w http.ResponseWriter, r *http.Request) {
		err := rb.RoleDelete(r.Context(), r.PathValue("name"))
		s.replyRole(w, map[string]string{"deleted": r.PathValue("name")}, err)
	})
	mux.HandleFunc("POST /v1/roles/{name}/move", func(w http.ResponseWriter, r *http.Request) {
		var req RoleMoveRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Node == "" {
			if err == nil {
				err = errors.New("missing node")
			}
			writeError(w, http.StatusBadRequest, fmt.Errorf("move %s: %w (send {\"node\": NAME})", r.PathValue("name"), err))
			return
		}
		err := rb.RoleMove(r.Context(), r.PathValue("name"), req.Node)
		s.replyRole(w, map[string]string{"moved": r.PathValue("name"), "to": req.Node}, err)
	})
}

// replyRole is reply with the role errors mapped to their statuses.
func (s *server) replyRole(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
	case errors.Is(err, store.ErrRoleUnknown), errors.Is(err, failover.ErrUnknownRole):
		writeError(w, http.StatusNotFound, err)
		return
	case errors.Is(err, failover.ErrInvalidRole), errors.Is(err, failover.ErrUnknownNode), errors.Is(err, health.ErrSpec),
		errors.Is(err, failover.ErrNotCandidate), errors.Is(err, failover.ErrNotAlive),
		errors.Is(err, failover.ErrUnhealthy), errors.Is(err, failover.ErrPreempted):
		writeError(w, http.StatusBadRequest, err)
		return
	case errors.Is(err, failover.ErrStaleEpoch):
		writeError(w, http.StatusConflict, err)
		return
	}
	s.reply(w, v, err)
}
