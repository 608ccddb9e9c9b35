package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"buoy"
)

// kvAgent is a stand-in for the agent's API: it records each request and
// answers what the test set for its method and path.
type kvAgent struct {
	// mu guards the following fields.
	mu      sync.Mutex
	got     []string // "METHOD /request/uri body"
	answers map[string]cannedAnswer
}

type cannedAnswer struct {
	code int
	body string
}

func (a *kvAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.got = append(a.got, strings.TrimSpace(r.Method+" "+r.RequestURI+" "+string(body)))
	ans, ok := a.answers[r.Method+" "+r.URL.Path]
	a.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"no such endpoint"}`, 404)
		return
	}
	if strings.Contains(ans.body, "event: ") || strings.HasPrefix(ans.body, ":") {
		w.Header().Set("Content-Type", "text/event-stream")
	}
	w.WriteHeader(ans.code)
	io.WriteString(w, ans.body)
}

func (a *kvAgent) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.got
	a.got = nil
	return out
}

func TestKVCommands(t *testing.T) {
	agent := &kvAgent{answers: map[string]cannedAnswer{
		"PUT /v1/kv/app/db":       {200, `{"key":"app/db","create_index":4,"modify_index":5}`},
		"GET /v1/kv/app/db":       {200, "postgres://x"},
		"GET /v1/kv/bin":          {200, `{"key":"bin","value_base64":"/w==","create_index":1,"modify_index":1,"index":9,"stale":true}`},
		"GET /v1/kv/missing":      {404, `{"error":"not found: missing","code":"kv_not_found"}`},
		"PUT /v1/kv/a b/c?d":      {409, `{"error":"check failed: check 0 (not_exists \"a b/c?d\"): key is modify_index 3","code":"kv_check_failed","modify_index":3}`},
		"GET /v1/kv/app/":         {200, `{"index":7,"stale":false,"entries":[{"key":"app/db","value":"line1\nline2","create_index":4,"modify_index":5},{"key":"app/bin","value_base64":"/w==","create_index":6,"modify_index":6}]}`},
		"DELETE /v1/kv/app/":      {200, `{"deleted":2}`},
		"DELETE /v1/kv/app/db":    {200, `{"deleted":1}`},
		"GET /v1/kv/unreachable/": {503, `{"error":"linearizable read refused: ... a stale read still works","code":"kv_no_quorum"}`},
	}}
	srv := httptest.NewServer(agent)
	defer srv.Close()
	tests := []struct {
		args    []string
		stdin   string
		want    []string // requests the agent sees
		stdout  string
		wantErr string
	}{
		{[]string{"put", "app/db", "postgres://x"}, "", []string{"PUT /v1/kv/app/db postgres://x"}, "OK, modify_index 5\n", ""},
		{[]string{"put", "app/db", "--ttl", "90s", "--cas", "0"}, "from stdin", []string{"PUT /v1/kv/app/db?cas=0&ttl=1m30s from stdin"}, "OK, modify_index 5\n", ""},
		{[]string{"put", "--json", "app/db", "--", "-v"}, "", []string{"PUT /v1/kv/app/db -v"}, "{\n  \"key\": \"app/db\",\n  \"create_index\": 4,\n  \"modify_index\": 5\n}\n", ""},
		{[]string{"put", "a b/c?d", "x", "--cas", "0"}, "", []string{"PUT /v1/kv/a%20b/c%3Fd?cas=0 x"}, "", "key is modify_index 3"},
		{[]string{"get", "app/db"}, "", []string{"GET /v1/kv/app/db?raw"}, "postgres://x\n", ""},
		{[]string{"get", "app/db", "--stale"}, "", []string{"GET /v1/kv/app/db?raw&stale"}, "postgres://x\n", ""},
		{[]string{"get", "--json", "bin"}, "", []string{"GET /v1/kv/bin"}, `"value_base64": "/w=="`, ""},
		{[]string{"get", "missing"}, "", []string{"GET /v1/kv/missing?raw"}, "", "not found: missing"},
		{[]string{"list", "app/"}, "", []string{"GET /v1/kv/app/?prefix"}, "KEY      MODIFY_INDEX  VALUE\napp/db   5             \"line1\\nline2\"\napp/bin  6             (1 bytes of binary; --json shows them in base64)\n", ""},
		{[]string{"get", "--prefix", "app/", "--stale", "--json"}, "", []string{"GET /v1/kv/app/?prefix&stale"}, `"index": 7`, ""},
		{[]string{"list", "unreachable/"}, "", []string{"GET /v1/kv/unreachable/?prefix"}, "", "a stale read still works"},
		{[]string{"del", "app/", "--prefix"}, "", []string{"DELETE /v1/kv/app/?prefix"}, "deleted 2\n", ""},
		{[]string{"del", "--cas", "5", "app/db"}, "", []string{"DELETE /v1/kv/app/db?cas=5"}, "deleted 1\n", ""},
		{nil, "", nil, "", "buoy kv get|put|del|list|watch"},
		{[]string{"frobnicate"}, "", nil, "", `unknown command "kv frobnicate"`},
		{[]string{"get"}, "", nil, "", "buoy kv get KEY"},
		{[]string{"get", "a", "b"}, "", nil, "", "buoy kv get KEY"},
		{[]string{"put", "k", "v", "extra"}, "", nil, "", "buoy kv put KEY [VALUE]"},
		{[]string{"put", "k", "v", "--cas", "-1"}, "", nil, "", "want an index"},
		{[]string{"put", "k", "v", "--ttl", "-1s"}, "", nil, "", "--ttl must be positive"},
		{[]string{"del", "k", "--stale"}, "", nil, "", "flag provided but not defined: -stale"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var args []string
			if len(tt.args) > 0 {
				args = slices.Concat(tt.args[:1], []string{"--http-addr", srv.URL}, tt.args[1:])
			}
			err := runKV(context.Background(), args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("buoy kv %q = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
			if got := agent.requests(); !slices.Equal(got, tt.want) {
				t.Errorf("buoy kv %q sent %q, want %q", tt.args, got, tt.want)
			}
			if !strings.Contains(stdout.String(), tt.stdout) || tt.stdout == "" && stdout.Len() > 0 {
				t.Errorf("buoy kv %q printed %q, want %q", tt.args, stdout.String(), tt.stdout)
			}
		})
	}
}

func TestKVUsageExitCode(t *testing.T) {
	err := runKV(context.Background(), []string{"get"}, nil, io.Discard, io.Discard)
	if code := exitCode(err); code != 2 {
		t.Errorf("exit code of %v = %d, want 2", err, code)
	}
	err = runKV(context.Background(), []string{"get", "-h"}, nil, io.Discard, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("buoy kv get -h = %v, want help", err)
	}
}

func TestKVWatchCommand(t *testing.T) {
	stream := ": watching \"app/\" after index 3\n\n" +
		"id: 4\ndata: {\"index\":4,\"type\":\"put\",\"key\":\"app/a\",\"value\":\"one\",\"create_index\":4,\"modify_index\":4}\n\n" +
		": keepalive\n\n" +
		"data: {\"index\":5,\"type\":\"put\",\"key\":\"app/b\",\"value_base64\":\"/w==\",\"create_index\":5,\"modify_index\":5}\n\n" +
		"id: 5\ndata: {\"index\":5,\"type\":\"delete\",\"key\":\"app/a\",\"create_index\":4,\"modify_index\":5}\n\n"
	tests := []struct {
		name, tail string
		args       []string
		stdout     string
		wantErr    string
	}{
		{"compacted", "event: compacted\ndata: {\"error\":\"changes compacted\",\"index\":99}\n\n", []string{"app/", "--index", "3"},
			"4 put app/a = one\n5 put app/b = (1 bytes of binary; --json shows them in base64)\n5 delete app/a\n",
			`re-read with "buoy kv list app/" and watch again with --index 99`},
		{"ended", "", []string{"app/", "--json"},
			"{\"index\":4,\"type\":\"put\",\"key\":\"app/a\",\"value\":\"one\",\"create_index\":4,\"modify_index\":4}\n",
			"the agent ended the stream"},
		{"error", "event: error\ndata: {\"error\":\"the node is shutting down\"}\n\n", []string{"app/"}, "5 delete app/a\n", "the node is shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := &kvAgent{answers: map[string]cannedAnswer{"GET /v1/kv/app/": {200, stream + tt.tail}}}
			srv := httptest.NewServer(agent)
			defer srv.Close()
			var stdout bytes.Buffer
			err := runKV(context.Background(), append([]string{"watch", "--http-addr", srv.URL}, tt.args...), nil, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("watch = %v, want error containing %q", err, tt.wantErr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("watch printed %q, want %q", stdout.String(), tt.stdout)
			}
			want := "GET /v1/kv/app/?watch"
			if slices.Contains(tt.args, "--index") {
				want = "GET /v1/kv/app/?index=3&watch"
			}
			if got := agent.requests(); !slices.Equal(got, []string{want}) {
				t.Errorf("watch sent %q, want %q", got, want)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args     []string
		pos      []string
		ttl, cas string
	}{
		{[]string{"k", "v"}, []string{"k", "v"}, "", ""},
		{[]string{"k", "--ttl", "1m", "v", "--cas=3"}, []string{"k", "v"}, "1m", "3"},
		{[]string{"--ttl", "1m", "--", "k", "--cas"}, []string{"k", "--cas"}, "1m", ""},
		{[]string{"k", "--", "-v", "--ttl"}, []string{"k", "-v", "--ttl"}, "", ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		ttl := fs.String("ttl", "", "")
		cas := fs.String("cas", "", "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil || !slices.Equal(pos, tt.pos) || *ttl != tt.ttl || *cas != tt.cas {
			t.Errorf("parseInterspersed(%q) = %q ttl %q cas %q, %v; want %q ttl %q cas %q", tt.args, pos, *ttl, *cas, err, tt.pos, tt.ttl, tt.cas)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 0, "plain"},
		{"two\nlines", 0, `"two\nlines"`},
		{"ключ значение", 5, "ключ …"},
		{"tab\there", 0, `"tab\there"`},
	}
	for _, tt := range tests {
		if got := printable(tt.in, tt.max); got != tt.want {
			t.Errorf("printable(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestAgentConfigKV(t *testing.T) {
	dir := t.TempDir()
	disable := filepath.Join(dir, "disable.yaml")
	os.WriteFile(disable, []byte("kv_text_addr: \"\"\nkv_max_key: 100\n"), 0o600)
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("kv_text_addr: 127.0.0.1:9999\n"), 0o600)
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		addr     string
		key, val int
		wantErr  string
	}{
		{"defaults", nil, nil, buoy.DefaultKVTextAddr, 0, 0, ""},
		{"flag disables", []string{"--kv-text-addr", ""}, nil, "", 0, 0, ""},
		{"file disables", []string{"--config", disable}, nil, "", 100, 0, ""},
		{"file sets", []string{"--config", other}, nil, "127.0.0.1:9999", 0, 0, ""},
		{"env then flag", []string{"--kv-max-value", "2048"}, map[string]string{"BUOY_KV_TEXT_ADDR": "-", "BUOY_KV_MAX_VALUE": "1024", "BUOY_KV_MAX_KEY": "64"}, "-", 64, 2048, ""},
		{"bad env", nil, map[string]string{"BUOY_KV_MAX_KEY": "big"}, "", 0, 0, "BUOY_KV_MAX_KEY"},
		{"key over the ceiling", []string{"--kv-max-key", "100000"}, nil, "", 0, 0, "--kv-max-key must be 1 to 65536"},
		{"negative value limit", []string{"--kv-max-value", "-1"}, nil, "", 0, 0, "--kv-max-value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := agentConfig(tt.args, io.Discard, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("agentConfig(%q, %v) = %v, want error containing %q", tt.args, tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil || cfg.KVTextAddr != tt.addr || cfg.KVMaxKey != tt.key || cfg.KVMaxValue != tt.val {
				t.Errorf("agentConfig(%q, %v) = addr %q, key %d, value %d, %v; want %q, %d, %d",
					tt.args, tt.env, cfg.KVTextAddr, cfg.KVMaxKey, cfg.KVMaxValue, err, tt.addr, tt.key, tt.val)
			}
		})
	}
}

// FuzzReadWatch feeds arbitrary streams to the watch printer: it never
// panics, always ends with an error (a watch is not meant to end), and
// prints one line per data line at most.
func FuzzReadWatch(f *testing.F) {
	f.Add([]byte("id: 4\ndata: {\"index\":4,\"type\":\"put\",\"key\":\"a\",\"value\":\"x\"}\n\n"), false)
	f.Add([]byte("event: compacted\ndata: {\"error\":\"e\",\"index\":9}\n\n"), false)
	f.Add([]byte("data: {\"index\":5,\"type\":\"delete\",\"key\":\"a\\n\"}\n\n: keepalive\n\n"), true)
	f.Add([]byte("data: {\"value_base64\":\"%%\"}\n"), false)
	f.Fuzz(func(t *testing.T, stream []byte, asJSON bool) {
		var out bytes.Buffer
		err := readWatch(bytes.NewReader(stream), "p/", asJSON, &out)
		if err == nil {
			t.Fatalf("readWatch(%q) = nil, want an error at the end", stream)
		}
		if lines, data := bytes.Count(out.Bytes(), []byte("\n")), bytes.Count(stream, []byte("data: ")); lines > data {
			t.Fatalf("readWatch(%q) printed %d lines for %d data lines: %q", stream, lines, data, out.String())
		}
	})
}
