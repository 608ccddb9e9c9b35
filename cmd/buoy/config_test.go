package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"buoy"
)

func TestParseConfigFile(t *testing.T) {
	tests := []struct {
		name, in string
		wantErr  string
	}{
		{"full", "name: pi1\ndata_dir: /var/lib/buoy\njoin: [192.0.2.1:7300]\nmax_voters: 3\n", ""},
		{"empty", "", ""},
		{"unknown key", "name: pi1\nnmae: typo\n", "unknown key nmae"},
		{"wrong type", "max_voters: lots\n", "cannot unmarshal"},
		{"two documents", "name: a\n---\nname: b\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfigFile([]byte(tt.in))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("parseConfigFile(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestAgentConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "buoy.yaml")
	if err := os.WriteFile(file, []byte("name: fromfile\ndata_dir: /file\npeer_addr: :1111\nhttp_addr: 127.0.0.1:2222\nmax_voters: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BUOY_DATA_DIR": "/env", "BUOY_PEER_ADDR": ":3333", "BUOY_JOIN": "192.0.2.1:7300,192.0.2.2:7300"}
	cfg, level, err := agentConfig([]string{"--config", file, "--peer-addr", ":4444", "--log-level", "debug"}, io.Discard, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "fromfile" || cfg.DataDir != "/env" || cfg.PeerAddr != ":4444" || cfg.HTTPAddr != "127.0.0.1:2222" || cfg.MaxVoters != 3 || level != "debug" {
		t.Errorf("agentConfig = %+v level %q: want name from file, data dir from env, peer addr from flag", cfg, level)
	}
	if !slices.Equal(cfg.Join, []string{"192.0.2.1:7300", "192.0.2.2:7300"}) {
		t.Errorf("join = %q", cfg.Join)
	}
}

func TestAgentConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nbogus: 1\n"), 0o600)
	tests := []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{[]string{"--config", bad}, nil, "unknown key bogus"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "no such file"},
		{nil, map[string]string{"BUOY_BOOTSTRAP": "maybe"}, "BUOY_BOOTSTRAP"},
		{nil, map[string]string{"BUOY_MAX_VOTERS": "five"}, "BUOY_MAX_VOTERS"},
		{[]string{"--nope"}, nil, "flag provided but not defined"},
		{[]string{"stray"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		_, _, err := agentConfig(tt.args, io.Discard, func(k string) string { return tt.env[k] })
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("agentConfig(%q, %v) = %v, want error containing %q", tt.args, tt.env, err, tt.wantErr)
		}
	}
}

func FuzzParseConfigFile(f *testing.F) {
	f.Add([]byte("name: pi1\njoin: [a, b]\n"))
	f.Add([]byte("max_voters: 3\nbootstrap: true\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fc, err := parseConfigFile(b)
		if err != nil {
			return
		}
		var level string
		var c buoy.Config
		if err := fc.apply(&c, &level); err != nil {
			return
		}
		if fc.Name != "" && c.Name != fc.Name {
			t.Fatalf("apply lost name %q", fc.Name)
		}
	})
}
