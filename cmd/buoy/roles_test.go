package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"buoy"
)

// issueRoles is the roles section exactly as the failover issue writes it.
const issueRoles = `name: pi1
data_dir: /var/lib/buoy
roles:
  web:
    candidates: {pi1: 100, pi2: 50}   # optional; default every node, equal priority
    preempt: false
    ttl: 5s
    checks:
      - {type: http, url: "http://127.0.0.1:8080/health", interval: 1s, timeout: 500ms, rise: 2, fall: 2}
    hooks:
      promote: /etc/buoy/web-promote
      demote: /etc/buoy/web-demote
      change: /etc/buoy/web-change
`

func TestRolesConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "buoy.yaml")
	if err := os.WriteFile(file, []byte(issueRoles+"failover_profile: lan\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := agentConfig([]string{"--config", file}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatalf("agentConfig(issue's roles) = %v", err)
	}
	if len(cfg.Roles) != 1 {
		t.Fatalf("roles = %+v, want web", cfg.Roles)
	}
	web := cfg.Roles[0]
	if web.Name != "web" || web.Candidates["pi1"] != 100 || web.Candidates["pi2"] != 50 || web.Preempt || web.TTL != 5*time.Second {
		t.Errorf("web = %+v", web)
	}
	if len(web.Checks) != 1 || web.Checks[0].Timeout != 500*time.Millisecond || web.Checks[0].Rise != 2 {
		t.Errorf("web checks = %+v", web.Checks)
	}
	if web.Hooks.Promote != "/etc/buoy/web-promote" || web.Hooks.Demote != "/etc/buoy/web-demote" || web.Hooks.Change != "/etc/buoy/web-change" {
		t.Errorf("web hooks = %+v", web.Hooks)
	}
	if cfg.FailoverProfile != "lan" {
		t.Errorf("failover profile = %q, want lan", cfg.FailoverProfile)
	}
	if _, err := buoy.New(cfg); err != nil {
		t.Errorf("buoy.New(issue's roles) = %v", err)
	}

	cfg, _, err = agentConfig([]string{"--config", file, "--failover-profile", "default"}, io.Discard, func(string) string { return "" })
	if err != nil || cfg.FailoverProfile != "default" {
		t.Errorf("--failover-profile default: profile %q, err %v", cfg.FailoverProfile, err)
	}
}

func TestRolesConfigErrors(t *testing.T) {
	tests := []struct {
		name, roles, want string
	}{
		{"unknown key", "roles:\n  web:\n    preemt: true\n", "unknown key preemt"},
		{"bad ttl", "roles:\n  web:\n    ttl: five\n", `ttl "five"`},
		{"bad check", "roles:\n  web:\n    checks:\n      - {type: tcp}\n", "missing addr"},
		{"relative hook", "roles:\n  web:\n    hooks: {promote: web-up}\n", "absolute path"},
		{"bad name", "roles:\n  Web_1: {}\n", "role name"},
		{"implicit leader", "roles:\n  leader: {}\n", "implicit role"},
		{"bad profile", "failover_profile: fast\n", "unknown timing profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "buoy.yaml")
			if err := os.WriteFile(file, []byte("name: pi1\ndata_dir: /d\n"+tt.roles), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := agentConfig([]string{"--config", file}, io.Discard, func(string) string { return "" })
			if err == nil {
				_, err = buoy.New(cfg)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("config %q: error %v, want one containing %q", tt.roles, err, tt.want)
			}
		})
	}
}

func TestReadRoleSpec(t *testing.T) {
	in := "candidates: {pi1: 10}\npreempt: true\nttl: 2s\nhooks: {promote: /bin/true, timeout: 10s}\n"
	spec, err := readRoleSpec("-", strings.NewReader(in))
	if err != nil {
		t.Fatalf("readRoleSpec(%q) = %v", in, err)
	}
	def, err := spec.Role("db")
	if err != nil || !def.Preempt || def.TTL != 2*time.Second || def.Hooks.Timeout != 10*time.Second || def.Candidates["pi1"] != 10 {
		t.Errorf("readRoleSpec(%q).Role = %+v, %v", in, def, err)
	}
	if _, err := readRoleSpec("-", strings.NewReader("candidats: {}\n")); err == nil || !strings.Contains(err.Error(), "unknown key candidats") {
		t.Errorf("readRoleSpec(typo) = %v, want unknown key", err)
	}
}

func TestPrintRoles(t *testing.T) {
	var b bytes.Buffer
	err := printRoles(&b, []buoy.RoleInfo{{
		Name: "web", Holder: "pi2", HolderAddr: "192.0.2.2", Epoch: 4, Held: true,
		Candidates: []buoy.RoleCandidate{
			{Node: "pi1", Priority: 100, Member: true, Alive: "no", Health: "unknown"},
			{Node: "pi2", Priority: 50, Member: true, Alive: "yes", Health: "passing"},
			{Node: "pi9", Priority: 1},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"pi2 (192.0.2.2) *", "pi1:100(no)", "pi2:50", "pi9:1(not a member)"} {
		if !strings.Contains(out, want) {
			t.Errorf("printRoles output lacks %q:\n%s", want, out)
		}
	}
}
