package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCertCommands(t *testing.T) {
	const info = `{"subject":"pi1","serial":"9B7C","key_fingerprint":"sha256:ab12","issuer":"Buoy CA home","ca_hash":"sha256:cd34",` +
		`"not_before":"2026-11-21T11:00:00Z","not_after":"2031-11-20T12:00:00Z","renew_after":"2030-03-22T03:20:00Z","days_left":1825}`
	const renewed = `{"previous":{"subject":"pi1","serial":"9B7C","not_after":"2026-12-01T00:00:00Z","days_left":9},` +
		`"current":{"subject":"pi1","serial":"A001","key_fingerprint":"sha256:ab12","issuer":"Buoy CA home","ca_hash":"sha256:cd34",` +
		`"not_before":"2026-11-21T11:00:00Z","not_after":"2031-11-20T12:00:00Z","renew_after":"2030-03-22T03:20:00Z","days_left":1825}}`
	agent := &kvAgent{answers: map[string]cannedAnswer{
		"GET /v1/cert":        {200, info},
		"POST /v1/cert/renew": {200, renewed},
	}}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	local := func(s string) string {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Local().Format(time.RFC3339)
	}
	show := "subject:      pi1\n" +
		"serial:       %s\n" +
		"key:          sha256:ab12\n" +
		"issuer:       Buoy CA home (sha256:cd34)\n" +
		"not before:   " + local("2026-11-21T11:00:00Z") + "\n" +
		"not after:    " + local("2031-11-20T12:00:00Z") + " (1825 days left)\n" +
		"renew after:  " + local("2030-03-22T03:20:00Z") + " (automatic)\n"
	tests := []struct {
		args    []string
		want    []string // requests the agent sees
		stdout  string
		wantErr string
	}{
		{nil, []string{"GET /v1/cert"}, strings.Replace(show, "%s", "9B7C", 1), ""},
		{[]string{"--json"}, []string{"GET /v1/cert"}, `"renew_after": "2030-03-22T03:20:00Z"`, ""},
		{[]string{"renew"}, []string{"POST /v1/cert/renew"},
			"renewed the certificate of pi1 (was serial 9B7C, valid until " + local("2026-12-01T00:00:00Z") + ")\n" + strings.Replace(show, "%s", "A001", 1), ""},
		{[]string{"renew", "--json"}, []string{"POST /v1/cert/renew"}, `"previous": {`, ""},
		{[]string{"--json", "renew"}, []string{"POST /v1/cert/renew"}, `"current": {`, ""},
		{[]string{"show"}, []string{"GET /v1/cert"}, "serial:       9B7C\n", ""},
		{[]string{"revoke"}, nil, "", `unknown command "buoy cert revoke"`},
		{[]string{"renew", "now"}, nil, "", `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"cert"}, tt.args...), " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(slices.Clone(tt.args), "--http-addr", srv.URL)
			err := run(context.Background(), append([]string{"cert"}, args...), &stdout, &stderr)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("buoy cert %q = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
			if tt.wantErr != "" && !errors.Is(err, errUsage) {
				t.Errorf("buoy cert %q = %v, want a usage error (exit code 2)", tt.args, err)
			}
			if got := agent.requests(); !slices.Equal(got, tt.want) {
				t.Errorf("buoy cert %q sent %q, want %q", tt.args, got, tt.want)
			}
			if !strings.Contains(stdout.String(), tt.stdout) || tt.stdout == "" && stdout.Len() > 0 {
				t.Errorf("buoy cert %q printed\n%s\nwant\n%s", tt.args, stdout.String(), tt.stdout)
			}
		})
	}
}

// TestCertCommandError: an agent's refusal reaches the user as is.
func TestCertCommandError(t *testing.T) {
	agent := &kvAgent{answers: map[string]cannedAnswer{
		"POST /v1/cert/renew": {503, `{"error":"renew node certificate: not ready yet, try again shortly: this node's replicated state has not caught up (it holds no cluster CA yet)"}`},
	}}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	err := run(context.Background(), []string{"cert", "renew", "--http-addr", srv.URL}, &bytes.Buffer{}, &bytes.Buffer{})
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != 503 || !strings.Contains(ae.Message, "no cluster CA yet") {
		t.Errorf("buoy cert renew against a node without its CA = %v, want the agent's 503 error", err)
	}
}
