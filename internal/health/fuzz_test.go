package health

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParseSpecs checks that the parser never panics, that every error
// wraps ErrSpec, and that whatever it accepts is valid and survives a
// round trip through YAML and JSON unchanged.
func FuzzParseSpecs(f *testing.F) {
	for _, s := range []string{
		`- {type: http, url: "http://127.0.0.1:8080/health", interval: 1s, timeout: 500ms, rise: 2, fall: 2}`,
		`[{type: tcp, addr: "127.0.0.1:22"}]`,
		`[{type: https, url: "https://[::1]:8443/x", body: ok, tls_skip_verify: true}]`,
		`[{type: exec, command: [/bin/sh, -c, "exit 0"], interval: 10s}]`,
		`[{type: exec, command: check, rise: 0}]`,
		`[{type: tcp, addr: ":80", interval: 1}]`,
		"- &a {type: tcp, addr: \"127.0.0.1:1\"}\n- *a\n",
		`[{type: tcp, addr: "127.0.0.1:1", timeout: 2s}]`,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := ParseSpecs(data)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("ParseSpecs(%q) = %v, not wrapping ErrSpec", data, err)
			}
			return
		}
		for i, s := range specs {
			if err := s.Validate(); err != nil {
				t.Fatalf("ParseSpecs(%q)[%d] = %+v, which Validate refuses: %v", data, i, s, err)
			}
			if s.WithDefaults().Name != s.Name || s.Interval == 0 || s.Timeout == 0 || s.Rise == 0 || s.Fall == 0 {
				t.Fatalf("ParseSpecs(%q)[%d] = %+v, defaults not applied", data, i, s)
			}
		}
		if len(specs) == 0 {
			return
		}
		y, err := yaml.Marshal(specs)
		if err != nil {
			t.Fatalf("yaml.Marshal(%+v): %v", specs, err)
		}
		back, err := ParseSpecs(y)
		if err != nil || !reflect.DeepEqual(back, specs) {
			t.Fatalf("YAML round trip of %q via %q = %+v, %v, want %+v", data, y, back, err, specs)
		}
		j, err := json.Marshal(specs)
		if err != nil {
			t.Fatalf("json.Marshal(%+v): %v", specs, err)
		}
		var jback []Spec
		if err := json.Unmarshal(j, &jback); err != nil || !reflect.DeepEqual(jback, specs) {
			t.Fatalf("JSON round trip of %q via %s = %+v, %v, want %+v", data, j, jback, err, specs)
		}
	})
}
