package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// testCert is what the route tests' fakeBackend presents.
var testCert = CertInfo{
	Subject:        "pi1",
	Serial:         "1F",
	KeyFingerprint: "sha256:ab",
	Issuer:         "Buoy CA home",
	CAHash:         "sha256:cd",
	NotBefore:      time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC),
	NotAfter:       time.Date(2031, 1, 1, 3, 4, 5, 0, time.UTC),
	RenewAfter:     time.Date(2029, 5, 2, 11, 4, 5, 0, time.UTC),
	DaysLeft:       1825,
}

// The certificate methods of the route tests' fakeBackend.
func (f *fakeBackend) CertShow(context.Context) (CertInfo, error) { return testCert, nil }
func (f *fakeBackend) CertRenew(context.Context) (CertRenewal, error) {
	next := testCert
	next.Serial = "20"
	return CertRenewal{Previous: testCert, Current: next}, nil
}

// certBackend is fakeBackend whose renewal fails with err.
type certBackend struct {
	fakeBackend
	err error
}

func (c *certBackend) CertRenew(context.Context) (CertRenewal, error) {
	return CertRenewal{}, c.err
}

func TestCertRoutes(t *testing.T) {
	h := New(&fakeBackend{}, "", slog.New(slog.DiscardHandler))
	code, body := do(t, h, "GET", "/v1/cert", "", "")
	var got CertInfo
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 || got != testCert {
		t.Errorf("GET /v1/cert = %d %q (%v), want 200 and %+v", code, body, err, testCert)
	}
	code, body = do(t, h, "POST", "/v1/cert/renew", "", "")
	var r CertRenewal
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != 200 || r.Previous.Serial != "1F" || r.Current.Serial != "20" {
		t.Errorf("POST /v1/cert/renew = %d %q (%v), want 200 with serials 1F then 20", code, body, err)
	}
	for _, m := range []string{"PUT", "DELETE"} {
		if code, _ := do(t, h, m, "/v1/cert", "", ""); code != 404 {
			t.Errorf("%s /v1/cert = %d, want 404", m, code)
		}
	}
	if code, _ := do(t, h, "GET", "/v1/cert/renew", "", ""); code != 404 {
		t.Errorf("GET /v1/cert/renew = %d, want 404 (renewal is a POST)", code)
	}
}

func TestCertRenewErrors(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{fmt.Errorf("renew: %w: no CA in the replicated state yet", ErrNotReady), 503},
		{errors.New("renew: write node.crt: read-only file system"), 500},
	}
	for _, tt := range tests {
		h := New(&certBackend{err: tt.err}, "", slog.New(slog.DiscardHandler))
		code, body := do(t, h, "POST", "/v1/cert/renew", "", "")
		var e Error
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != tt.code || e.Error != tt.err.Error() {
			t.Errorf("renew failing with %q = %d %q, want %d with that error", tt.err, code, body, tt.code)
		}
	}
}

func TestCertNeedsToken(t *testing.T) {
	h := New(&fakeBackend{}, "s3cret", slog.New(slog.DiscardHandler))
	for _, path := range []string{"/v1/cert", "/v1/cert/renew"} {
		method := "GET"
		if path == "/v1/cert/renew" {
			method = "POST"
		}
		if code, _ := do(t, h, method, path, "", ""); code != 401 {
			t.Errorf("%s %s without the token = %d, want 401", method, path, code)
		}
		if code, _ := do(t, h, method, path, "", "Bearer s3cret"); code != 200 {
			t.Errorf("%s %s with the token = %d, want 200", method, path, code)
		}
	}
}
