package api

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// CertInfo describes the certificate a node presents to its peers.
type CertInfo struct {
	// Subject is the node name the certificate carries (its CN and only
	// DNS name).
	Subject string `json:"subject"`
	// Serial is the serial number in uppercase hex, as "openssl x509
	// -serial" prints it.
	Serial string `json:"serial"`
	// KeyFingerprint is "sha256:" and the hex SHA-256 of the public key
	// (SubjectPublicKeyInfo); a renewal keeps it.
	KeyFingerprint string `json:"key_fingerprint"`
	// Issuer is the cluster CA's name, CAHash its certificate's hash (the
	// one join tokens carry).
	Issuer string `json:"issuer"`
	CAHash string `json:"ca_hash"`
	// NotBefore and NotAfter bound the validity; RenewAfter is when the
	// node renews it by itself (a third of its lifetime before NotAfter).
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	RenewAfter time.Time `json:"renew_after"`
	// DaysLeft is the whole days until NotAfter when the answer was made
	// (negative once expired).
	DaysLeft int `json:"days_left"`
}

// CertRenewal answers POST /v1/cert/renew: the certificate before and
// after the renewal.
type CertRenewal struct {
	Previous CertInfo `json:"previous"`
	Current  CertInfo `json:"current"`
}

// CertBackend is what the certificate endpoints need from a node.
type CertBackend interface {
	// CertShow describes the certificate the node presents now.
	CertShow(ctx context.Context) (CertInfo, error)
	// CertRenew replaces it now, whatever its age.
	CertRenew(ctx context.Context) (CertRenewal, error)
}

// ErrNotReady marks a request the node cannot serve yet but will shortly
// (a renewal while its replicated state has not caught up); it is answered
// with 503 Service Unavailable.
var ErrNotReady = errors.New("not ready yet, try again shortly")

// certRoutes registers GET /v1/cert and POST /v1/cert/renew.
func (s *server) certRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/cert", func(w http.ResponseWriter, r *http.Request) {
		info, err := s.b.CertShow(r.Context())
		s.replyCert(w, info, err)
	})
	mux.HandleFunc("POST /v1/cert/renew", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.b.CertRenew(r.Context())
		s.replyCert(w, out, err)
	})
}

func (s *server) replyCert(w http.ResponseWriter, v any, err error) {
	if errors.Is(err, ErrNotReady) {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.reply(w, v, err)
}
