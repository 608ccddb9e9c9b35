package health

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseSpecsIssueForm(t *testing.T) {
	// The form from the roles config in the design issue.
	in := `
- {type: http, url: "http://127.0.0.1:8080/health", interval: 1s, timeout: 500ms, rise: 2, fall: 2}
- {type: tcp, addr: "127.0.0.1:5432"}
- type: https
  url: https://127.0.0.1:8443/
  body: ok
  tls_skip_verify: true
- {type: exec, command: [/usr/bin/pg_isready, -q], interval: 10s, rise: 1, fall: 3, name: pg}
- {type: exec, command: /usr/local/bin/check}
`
	want := []Spec{
		{Name: "http http://127.0.0.1:8080/health", Type: TypeHTTP, URL: "http://127.0.0.1:8080/health", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
		{Name: "tcp 127.0.0.1:5432", Type: TypeTCP, Addr: "127.0.0.1:5432", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
		{Name: "https https://127.0.0.1:8443/", Type: TypeHTTPS, URL: "https://127.0.0.1:8443/", Body: "ok", TLSSkipVerify: true, Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
		{Name: "pg", Type: TypeExec, Command: []string{"/usr/bin/pg_isready", "-q"}, Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 1, Fall: 3},
		{Name: "exec /usr/local/bin/check", Type: TypeExec, Command: []string{"/usr/local/bin/check"}, Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2},
	}
	got, err := ParseSpecs([]byte(in))
	if err != nil {
		t.Fatalf("ParseSpecs: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSpecs =\n%+v\nwant\n%+v", got, want)
	}
}

func TestSpecInRoleConfig(t *testing.T) {
	// The node's config decodes roles with Spec as a field type.
	in := `
web:
  checks:
    - {type: tcp, addr: "127.0.0.1:80", fall: 3}
`
	var cfg map[string]struct {
		Checks []Spec `yaml:"checks"`
	}
	if err := yaml.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if got := cfg["web"].Checks; len(got) != 1 || got[0].Fall != 3 || got[0].Rise != DefaultRise {
		t.Errorf("checks = %+v, want one tcp check with fall 3 and the default rise", got)
	}

	bad := "web:\n  checks:\n    - {type: tcp, addr: \"127.0.0.1:80\", rise: 0}\n"
	err := yaml.Unmarshal([]byte(bad), &cfg)
	if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Unmarshal(rise 0) = %v, want ErrSpec naming line 3", err)
	}
}

func TestParseSpecsErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // substring of the error
	}{
		{"unknown type", `[{type: ftp, url: "ftp://x"}]`, `unknown check type "ftp"`},
		{"missing type", `[{url: "http://127.0.0.1/"}]`, "missing type"},
		{"missing url", `[{type: http}]`, "http check: missing url"},
		{"missing https url", `[{type: https, body: ok}]`, "https check: missing url"},
		{"scheme mismatch", `[{type: http, url: "https://127.0.0.1/"}]`, "must start with http://"},
		{"url without host", `[{type: http, url: "http:///x"}]`, "has no host"},
		{"missing addr", `[{type: tcp}]`, "missing addr"},
		{"addr without port", `[{type: tcp, addr: "127.0.0.1"}]`, "want host:port"},
		{"addr without host", `[{type: tcp, addr: ":80"}]`, "has no host"},
		{"bad port", `[{type: tcp, addr: "127.0.0.1:99999"}]`, "port must be a number"},
		{"missing command", `[{type: exec}]`, "missing command"},
		{"empty command list", `[{type: exec, command: []}]`, "empty command"},
		{"command map", `[{type: exec, command: {a: b}}]`, "want a path or a list"},
		{"duration without unit", `[{type: tcp, addr: "127.0.0.1:1", interval: 1}]`, `"1" is not a duration`},
		{"bad duration", `[{type: tcp, addr: "127.0.0.1:1", timeout: soon}]`, `"soon" is not a duration`},
		{"zero interval", `[{type: tcp, addr: "127.0.0.1:1", interval: 0s}]`, "must be positive"},
		{"negative timeout", `[{type: tcp, addr: "127.0.0.1:1", timeout: -1s}]`, "must be positive"},
		{"timeout over interval", `[{type: tcp, addr: "127.0.0.1:1", interval: 1s, timeout: 2s}]`, "longer than interval"},
		{"rise 0", `[{type: tcp, addr: "127.0.0.1:1", rise: 0}]`, "rise: 0: must be at least 1"},
		{"fall negative", `[{type: tcp, addr: "127.0.0.1:1", fall: -2}]`, "fall: -2: must be at least 1"},
		{"rise not a number", `[{type: tcp, addr: "127.0.0.1:1", rise: two}]`, "rise: want a whole number"},
		{"rise float", `[{type: tcp, addr: "127.0.0.1:1", rise: 1.5}]`, "rise: want a whole number"},
		{"unknown key", `[{type: tcp, addr: "127.0.0.1:1", port: 80}]`, `unknown key "port"`},
		{"repeated key", `[{type: tcp, addr: "127.0.0.1:1", addr: "127.0.0.1:2"}]`, "given twice"},
		{"key of another type", `[{type: tcp, addr: "127.0.0.1:1", url: "http://127.0.0.1/"}]`, "url does not apply to a tcp check"},
		{"skip verify on http", `[{type: http, url: "http://127.0.0.1/", tls_skip_verify: true}]`, "tls_skip_verify does not apply to a http check"},
		{"skip verify not bool", `[{type: https, url: "https://127.0.0.1/", tls_skip_verify: maybe}]`, "want true or false"},
		{"null url", `[{type: http, url: null}]`, "url: want a string"},
		{"not a list", `{type: tcp, addr: "127.0.0.1:1"}`, "checks are a list"},
		{"not a mapping", `[tcp]`, "a check is a mapping"},
		{"two documents", "[]\n---\n[]\n", "more than one YAML document"},
		{"bad yaml", `[{type: tcp`, "invalid health check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSpecs([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseSpecs(%q) = %+v, want an error containing %q", tt.in, got, tt.want)
			}
			if !errors.Is(err, ErrSpec) {
				t.Errorf("ParseSpecs(%q) = %v, want an error wrapping ErrSpec", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSpecs(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseSpecsEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "null", "[]"} {
		got, err := ParseSpecs([]byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("ParseSpecs(%q) = %v, %v, want no checks", in, got, err)
		}
	}
}

func TestValidateGoSpec(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string // "" for valid
	}{
		{"defaults fill in", Spec{Type: TypeTCP, Addr: "127.0.0.1:22"}, ""},
		{"negative rise", Spec{Type: TypeTCP, Addr: "127.0.0.1:22", Rise: -1}, "rise -1"},
		{"negative interval", Spec{Type: TypeTCP, Addr: "127.0.0.1:22", Interval: -time.Second}, "interval -1s is negative"},
		{"interval too short for a timeout", Spec{Type: TypeTCP, Addr: "127.0.0.1:22", Interval: 1}, "too short"},
		{"empty argv0", Spec{Type: TypeExec, Command: []string{""}}, "missing command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate(%+v) = %v, want nil", tt.spec, err)
			case tt.want != "" && (err == nil || !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate(%+v) = %v, want ErrSpec containing %q", tt.spec, err, tt.want)
			}
		})
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	specs, err := ParseSpecs([]byte(`[{type: exec, command: [/bin/true, "a b"], interval: 3s, timeout: 1500ms, rise: 4, fall: 1, name: x}]`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(specs)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"interval":"3s","timeout":"1.5s"`; !strings.Contains(string(b), want) {
		t.Errorf("json.Marshal = %s, want durations as strings (%s)", b, want)
	}
	var back []Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Unmarshal(%s): %v", b, err)
	}
	if !reflect.DeepEqual(back, specs) {
		t.Errorf("JSON round trip = %+v, want %+v", back, specs)
	}
	var s Spec
	if err := json.Unmarshal([]byte(`{"type":"tcp","addr":"127.0.0.1:1","rise":0}`), &s); !errors.Is(err, ErrSpec) {
		t.Errorf("json.Unmarshal(rise 0) = %v, want ErrSpec", err)
	}
}
