package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"buoy/internal/failover"
	"buoy/internal/store"
)

// roleBackend is fakeBackend with roles.
type roleBackend struct {
	fakeBackend
	put      store.Role
	moveErr  error
	gotLimit int
}

func (b *roleBackend) RoleList(context.Context) ([]RoleInfo, error) {
	return []RoleInfo{{Name: "leader", Holder: "pi1", Implicit: true}, {Name: "web", Holder: "pi2", Epoch: 4}}, nil
}

func (b *roleBackend) RoleGet(_ context.Context, name string) (RoleInfo, RoleSpec, error) {
	if name != "web" {
		return RoleInfo{}, RoleSpec{}, fmt.Errorf("role %s: %w", name, store.ErrRoleUnknown)
	}
	return RoleInfo{Name: "web", Holder: "pi2"}, RoleSpec{TTL: "5s"}, nil
}

func (b *roleBackend) RolePut(_ context.Context, name string, spec RoleSpec) error {
	r, err := spec.Role(name)
	if err != nil {
		return err
	}
	b.put = r
	return nil
}

func (b *roleBackend) RoleDelete(_ context.Context, name string) error {
	if name != "web" {
		return fmt.Errorf("delete %s: %w", name, store.ErrRoleUnknown)
	}
	return nil
}

func (b *roleBackend) RoleMove(context.Context, string, string) error { return b.moveErr }

func (b *roleBackend) RoleHistory(_ context.Context, role string, limit int) ([]HistoryEntry, error) {
	b.gotLimit = limit
	return []HistoryEntry{{Role: role, Kind: "transition", Event: "promote", Epoch: 4}}, nil
}

func TestRoleRoutes(t *testing.T) {
	b := &roleBackend{}
	h := New(b, "", slog.New(slog.DiscardHandler))
	tests := []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"GET", "/v1/roles", "", 200, `"holder": "pi2"`},
		{"GET", "/v1/roles/web", "", 200, `"ttl": "5s"`},
		{"GET", "/v1/roles/nope", "", 404, "no such role"},
		{"PUT", "/v1/roles/db", `{"candidates":{"pi1":10},"ttl":"2s","checks":[{"type":"tcp","addr":"127.0.0.1:5432"}]}`, 200, "defined"},
		{"PUT", "/v1/roles/db", `{"ttl":"soon"}`, 400, "want a duration"},
		{"PUT", "/v1/roles/db", `{"preemt":true}`, 400, "unknown field"},
		{"PUT", "/v1/roles/db", `{"checks":[{"type":"ping"}]}`, 400, "unknown check type"},
		{"PUT", "/v1/roles/leader", `{}`, 400, "implicit role"},
		{"PUT", "/v1/roles/db", `{"hooks":{"promote":"up.sh"}}`, 400, "absolute path"},
		{"DELETE", "/v1/roles/web", "", 200, "deleted"},
		{"DELETE", "/v1/roles/nope", "", 404, "no such role"},
		{"POST", "/v1/roles/web/move", `{"node":"pi3"}`, 200, `"to": "pi3"`},
		{"POST", "/v1/roles/web/move", `{}`, 400, "missing node"},
		{"GET", "/v1/roles/history?role=web&limit=5", "", 200, `"event": "promote"`},
		{"GET", "/v1/roles/history?limit=x", "", 400, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.body, func(t *testing.T) {
			code, body := do(t, h, tt.method, tt.path, tt.body, "")
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s %s = %d %q, want %d containing %q", tt.method, tt.path, tt.body, code, body, tt.code, tt.contains)
			}
		})
	}
	if b.put.Name != "db" || b.put.TTL != 2*time.Second || b.put.Candidates["pi1"] != 10 || len(b.put.Checks) != 1 {
		t.Errorf("backend got role %+v", b.put)
	}
	if b.gotLimit != 5 {
		t.Errorf("history limit = %d, want 5", b.gotLimit)
	}
}

func TestRoleMoveErrors(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{fmt.Errorf("move: %w", failover.ErrNotCandidate), 400},
		{fmt.Errorf("move: %w", failover.ErrPreempted), 400},
		{fmt.Errorf("move: %w: %w", store.ErrInvalidInput, errors.New("remote refusal")), 400},
		{fmt.Errorf("move: %w", failover.ErrUnknownRole), 404},
		{store.ErrNoLeader, 503},
	}
	for _, tt := range tests {
		h := New(&roleBackend{moveErr: tt.err}, "", slog.New(slog.DiscardHandler))
		code, body := do(t, h, "POST", "/v1/roles/web/move", `{"node":"pi3"}`, "")
		if code != tt.code || !strings.Contains(body, tt.err.Error()) {
			t.Errorf("move failing with %v = %d %q, want %d with the message", tt.err, code, body, tt.code)
		}
	}
}

// TestRolesOptional: a backend without roles has no role endpoints.
func TestRolesOptional(t *testing.T) {
	h := New(&fakeBackend{}, "", slog.New(slog.DiscardHandler))
	if code, _ := do(t, h, "GET", "/v1/roles", "", ""); code != 404 {
		t.Errorf("GET /v1/roles without roles = %d, want 404", code)
	}
}

func FuzzRoleSpec(f *testing.F) {
	f.Add(`{"candidates":{"pi1":100,"pi2":50},"preempt":true,"ttl":"5s","hooks":{"promote":"/x","timeout":"1s"}}`)
	f.Add(`{"checks":[{"type":"http","url":"http://127.0.0.1:8080/health","interval":"1s","timeout":"500ms","rise":2,"fall":2}]}`)
	f.Add(`{"ttl":"-1s"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var spec RoleSpec
		if json.Unmarshal([]byte(body), &spec) != nil {
			return
		}
		r, err := spec.Role("web")
		if err != nil {
			return
		}
		// A valid role survives the trip back to a spec and again.
		again, err := SpecOf(r).Role("web")
		if err != nil || !again.Equal(r) {
			t.Fatalf("round trip of %+v = %+v, %v", r, again, err)
		}
	})
}
