package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"buoy/internal/store"
)

type fakeBackend struct {
	removeErr error
	gotTTL    string
}

func (f *fakeBackend) Status(context.Context) (Status, error) {
	return Status{Name: "pi1", Leader: "pi1", Term: 3, CommitIndex: 42, Members: 1}, nil
}
func (f *fakeBackend) Members(context.Context) ([]Member, error) {
	return []Member{{Name: "pi1", Address: "192.0.2.1:7300", Voter: true, Leader: true, State: StateAlive}}, nil
}
func (f *fakeBackend) CreateToken(_ context.Context, r TokenRequest) (NewToken, error) {
	f.gotTTL = r.TTL
	return NewToken{Token: "buoy1.secret", TokenInfo: TokenInfo{ID: "abcd"}}, nil
}
func (f *fakeBackend) Tokens(context.Context) ([]TokenInfo, error) {
	return []TokenInfo{{ID: "abcd"}}, nil
}
func (f *fakeBackend) RevokeToken(_ context.Context, id string) error {
	if id != "abcd" {
		return fmt.Errorf("%w: %s", store.ErrTokenUnknown, id)
	}
	return nil
}
func (f *fakeBackend) RemoveMember(context.Context, string) error { return f.removeErr }
func (f *fakeBackend) Leave(context.Context) error                { return nil }
func (f *fakeBackend) ZoneList(context.Context) ([]ZoneInfo, error) {
	return []ZoneInfo{{Origin: "example.test.", Serial: 3, Records: 4}}, nil
}
func (f *fakeBackend) ZoneText(_ context.Context, o string) (string, error) {
	if o != "example.test." {
		return "", fmt.Errorf("%w: %s", store.ErrZoneUnknown, o)
	}
	return "example.test.\t300\tIN\tSOA\t...\n", nil
}
func (f *fakeBackend) ZonePut(_ context.Context, recs []string) (string, error) {
	if len(recs) == 0 {
		return "", fmt.Errorf("%w: empty zone", ErrBadRequest)
	}
	return "example.test.", nil
}
func (f *fakeBackend) ZoneDrop(context.Context, string) error { return nil }
func (f *fakeBackend) ZoneReload(context.Context) error       { return nil }

func do(t *testing.T, h http.Handler, method, path, body, auth string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestRoutes(t *testing.T) {
	fb := &fakeBackend{}
	h := New(fb, "", slog.New(slog.DiscardHandler))
	tests := []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"GET", "/v1/status", "", 200, `"commit_index": 42`},
		{"GET", "/v1/members", "", 200, `"address": "192.0.2.1:7300"`},
		{"POST", "/v1/tokens", `{"ttl":"10m"}`, 200, `"token": "buoy1.secret"`},
		{"POST", "/v1/tokens", `{"ttl":`, 400, "token request"},
		{"POST", "/v1/tokens", `{"bogus":1}`, 400, "unknown field"},
		{"GET", "/v1/tokens", "", 200, `"id": "abcd"`},
		{"DELETE", "/v1/tokens/abcd", "", 200, "revoked"},
		{"DELETE", "/v1/tokens/nope", "", 404, "token_unknown"},
		{"DELETE", "/v1/members/pi2", "", 200, "removed"},
		{"POST", "/v1/leave", "", 200, "left"},
		{"GET", "/v1/nothing", "", 404, "no such endpoint"},
		{"GET", "/v1/zones", "", 200, `"serial": 3`},
		{"GET", "/v1/zones/example.test.", "", 200, "SOA"},
		{"GET", "/v1/zones/nope.test.", "", 404, "zone_unknown"},
		{"POST", "/v1/zones", `{"records":["a"]}`, 200, "loaded"},
		{"POST", "/v1/zones", `{"records":[]}`, 400, "empty zone"},
		{"DELETE", "/v1/zones/example.test.", "", 200, "dropped"},
		{"POST", "/v1/zones/reload", "", 200, "reloaded"},
		{"PUT", "/v1/status", "", 404, "no such endpoint: PUT"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, body := do(t, h, tt.method, tt.path, tt.body, "")
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.contains)
			}
		})
	}
	if fb.gotTTL != "10m" {
		t.Errorf("backend got ttl %q, want 10m", fb.gotTTL)
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{store.ErrLastVoter, 409},
		{fmt.Errorf("x: %w", store.ErrNoSuchMember), 404},
		{store.ErrNoLeader, 503},
		{fmt.Errorf("disk on fire"), 500},
	}
	for _, tt := range tests {
		h := New(&fakeBackend{removeErr: tt.err}, "", slog.New(slog.DiscardHandler))
		code, body := do(t, h, "DELETE", "/v1/members/pi1", "", "")
		var e Error
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != tt.code || e.Error == "" {
			t.Errorf("remove with %v = %d %q, want %d with a JSON error", tt.err, code, body, tt.code)
		}
	}
}

func TestToken(t *testing.T) {
	h := New(&fakeBackend{}, "s3cret", slog.New(slog.DiscardHandler))
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Bearer s3cret2"} {
		if code, _ := do(t, h, "GET", "/v1/status", "", auth); code != 401 {
			t.Errorf("auth %q = %d, want 401", auth, code)
		}
	}
	if code, _ := do(t, h, "GET", "/v1/status", "", "Bearer s3cret"); code != 200 {
		t.Errorf("right token = %d, want 200", code)
	}
}

// TestDebugProfiles: /debug/pprof/ is served only when asked for, and only
// with the token.
func TestDebugProfiles(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	if code, _ := do(t, New(&fakeBackend{}, "", quiet), "GET", "/debug/pprof/", "", ""); code != 404 {
		t.Errorf("profiles without Debug = %d, want 404", code)
	}
	h := NewWithOptions(&fakeBackend{}, Options{Token: "s3cret", Debug: true}, quiet)
	if code, _ := do(t, h, "GET", "/debug/pprof/", "", ""); code != 401 {
		t.Errorf("profiles without the token = %d, want 401", code)
	}
	code, body := do(t, h, "GET", "/debug/pprof/", "", "Bearer s3cret")
	if code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("profiles with the token = %d %.80q, want 200 and the index", code, body)
	}
	code, body = do(t, h, "GET", "/debug/pprof/goroutine?debug=1", "", "Bearer s3cret")
	if code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("goroutine profile = %d %.80q", code, body)
	}
}
