// Package api serves Buoy's HTTP JSON API under /v1/ and defines the types
// it speaks, which the CLI decodes and the buoy package re-exports.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"buoy/internal/store"
)

// Member is one cluster member as the API shows it.
type Member struct {
	Name string `json:"name"`
	// Address is the host:port peers dial, empty if unknown.
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	// State is alive, suspect, dead or left.
	State  string    `json:"state"`
	Joined time.Time `json:"joined"`
}

// Member states.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Status summarises one node's view of the cluster.
type Status struct {
	Name        string `json:"name"`
	Leader      string `json:"leader"`
	RaftState   string `json:"raft_state"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commit_index"`
	AppliedIdx  uint64 `json:"applied_index"`
	LastIndex   uint64 `json:"last_index"`
	Members     int    `json:"members"`
	Voters      int    `json:"voters"`
	CAHash      string `json:"ca_hash"`
	PeerAddr    string `json:"peer_addr"`
	// SelfAddress is this node's public address as voted from its peers'
	// observations, empty until a peer has seen it.
	SelfAddress string `json:"self_address"`
	// NAT is none, cone, symmetric, cgnat or unknown.
	NAT string `json:"nat"`
	// Observations are the peers' recent views of this node.
	Observations []Observation `json:"observations"`
	// CertNotAfter is when this node's certificate expires, CertRenewAfter
	// when the node renews it by itself (see GET /v1/cert).
	CertNotAfter   time.Time `json:"cert_not_after"`
	CertRenewAfter time.Time `json:"cert_renew_after"`
}

// Observation is one peer's view of this node's address.
type Observation struct {
	Observer string    `json:"observer"`
	Seen     string    `json:"seen"`
	Local    string    `json:"local"`
	At       time.Time `json:"at"`
}

// TokenInfo describes a join token without its secret.
type TokenInfo struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	MaxUses     int       `json:"max_uses"`
	Uses        int       `json:"uses"`
	Revoked     bool      `json:"revoked"`
	Expired     bool      `json:"expired"`
}

// NewToken is the answer to a token creation: the only time the token's
// secret is shown.
type NewToken struct {
	Token string `json:"token"`
	TokenInfo
}

// TokenRequest asks for a new join token.
type TokenRequest struct {
	TTL         string `json:"ttl,omitempty"` // Go duration, default 1h
	MaxUses     int    `json:"max_uses,omitempty"`
	Description string `json:"description,omitempty"`
}

// ErrBadRequest marks an error in what the client sent (a backend wraps
// it, e.g. for a zone file that does not parse).
var ErrBadRequest = errors.New("bad request")

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// Backend is what the API needs from a node.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Members(ctx context.Context) ([]Member, error)
	CreateToken(ctx context.Context, req TokenRequest) (NewToken, error)
	Tokens(ctx context.Context) ([]TokenInfo, error)
	RevokeToken(ctx context.Context, id string) error
	RemoveMember(ctx context.Context, name string) error
	Leave(ctx context.Context) error
	ZoneList(ctx context.Context) ([]ZoneInfo, error)
	ZoneText(ctx context.Context, origin string) (string, error)
	ZonePut(ctx context.Context, records []string) (string, error)
	ZoneDrop(ctx context.Context, origin string) error
	ZoneReload(ctx context.Context) error
	KVBackend
	CertBackend
}

// ZoneInfo describes one zone in the replicated state.
type ZoneInfo struct {
	Origin  string `json:"origin"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
}

// ZonePut replaces a zone: its records in presentation format, SOA first.
type ZonePut struct {
	Records []string `json:"records"`
}

// New returns the API handler. A non-empty token is required as a bearer
// token on every request.
func New(b Backend, token string, log *slog.Logger) http.Handler {
	return NewWithOptions(b, Options{Token: token}, log)
}

// Options are the API handler's settings.
type Options struct {
	// Token, if not empty, is required as a bearer token on every request.
	Token string
	// Debug serves net/http/pprof under /debug/pprof/.
	Debug bool
}

// NewWithOptions returns the API handler with o's settings.
func NewWithOptions(b Backend, o Options, log *slog.Logger) http.Handler {
	token := o.Token
	s := &server{b: b, log: log}
	mux := http.NewServeMux()
	if o.Debug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/members", s.members)
	mux.HandleFunc("DELETE /v1/members/{name}", s.removeMember)
	mux.HandleFunc("POST /v1/tokens", s.createToken)
	mux.HandleFunc("GET /v1/tokens", s.tokens)
	mux.HandleFunc("DELETE /v1/tokens/{id}", s.revokeToken)
	mux.HandleFunc("POST /v1/leave", s.leave)
	mux.HandleFunc("GET /v1/zones", s.zones)
	mux.HandleFunc("POST /v1/zones", s.zonePut)
	mux.HandleFunc("POST /v1/zones/reload", s.zoneReload)
	mux.HandleFunc("GET /v1/zones/{origin}", s.zoneShow)
	mux.HandleFunc("DELETE /v1/zones/{origin}", s.zoneDrop)
	s.kvRoutes(mux)
	s.roleRoutes(mux)
	s.certRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong API token: send \"Authorization: Bearer <token>\" (BUOY_HTTP_TOKEN for the CLI)"))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type server struct {
	b   Backend
	log *slog.Logger
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.Status(r.Context())
	s.reply(w, st, err)
}

func (s *server) members(w http.ResponseWriter, r *http.Request) {
	ms, err := s.b.Members(r.Context())
	s.reply(w, ms, err)
}

func (s *server) removeMember(w http.ResponseWriter, r *http.Request) {
	err := s.b.RemoveMember(r.Context(), r.PathValue("name"))
	s.reply(w, map[string]string{"removed": r.PathValue("name")}, err)
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("token request: %w", err))
			return
		}
	}
	t, err := s.b.CreateToken(r.Context(), req)
	s.reply(w, t, err)
}

func (s *server) tokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.b.Tokens(r.Context())
	s.reply(w, ts, err)
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	err := s.b.RevokeToken(r.Context(), r.PathValue("id"))
	s.reply(w, map[string]string{"revoked": r.PathValue("id")}, err)
}

func (s *server) leave(w http.ResponseWriter, r *http.Request) {
	err := s.b.Leave(r.Context())
	s.reply(w, map[string]bool{"left": err == nil}, err)
}

func (s *server) zones(w http.ResponseWriter, r *http.Request) {
	zs, err := s.b.ZoneList(r.Context())
	if zs == nil {
		zs = []ZoneInfo{}
	}
	s.reply(w, zs, err)
}

func (s *server) zoneShow(w http.ResponseWriter, r *http.Request) {
	txt, err := s.b.ZoneText(r.Context(), r.PathValue("origin"))
	if err != nil {
		s.reply(w, nil, err)
		return
	}
	w.Header().Set("Content-Type", "text/dns; charset=utf-8")
	_, _ = w.Write([]byte(txt))
}

func (s *server) zonePut(w http.ResponseWriter, r *http.Request) {
	var req ZonePut
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("zone: %w", err))
		return
	}
	origin, err := s.b.ZonePut(r.Context(), req.Records)
	s.reply(w, map[string]string{"loaded": origin}, err)
}

func (s *server) zoneDrop(w http.ResponseWriter, r *http.Request) {
	err := s.b.ZoneDrop(r.Context(), r.PathValue("origin"))
	s.reply(w, map[string]string{"dropped": r.PathValue("origin")}, err)
}

func (s *server) zoneReload(w http.ResponseWriter, r *http.Request) {
	err := s.b.ZoneReload(r.Context())
	s.reply(w, map[string]bool{"reloaded": err == nil}, err)
}

func (s *server) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		code := statusOf(err)
		if code >= 500 {
			s.log.Warn("API request failed", "err", err)
		}
		writeError(w, code, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, store.ErrNoSuchMember), errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrZoneUnknown):
		return http.StatusNotFound
	case errors.Is(err, store.ErrLastVoter), errors.Is(err, store.ErrNameTaken), errors.Is(err, store.ErrMemberGone):
		return http.StatusConflict
	case errors.Is(err, store.ErrInvalidInput), errors.Is(err, store.ErrInvalidName), errors.Is(err, store.ErrBadCommand), errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error(), Code: store.Code(err)})
}
