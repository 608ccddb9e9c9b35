package health

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Type is the kind of a check.
type Type string

// The check types.
const (
	// TypeTCP passes when a TCP connection to Addr is accepted.
	TypeTCP Type = "tcp"
	// TypeHTTP passes when a GET of URL answers 2xx (and contains Body).
	TypeHTTP Type = "http"
	// TypeHTTPS is TypeHTTP over TLS, verified against the system roots
	// unless TLSSkipVerify is set.
	TypeHTTPS Type = "https"
	// TypeExec passes when Command exits 0.
	TypeExec Type = "exec"
)

// Defaults for fields a Spec leaves zero (in Go) or out (in YAML). The
// default timeout is half the interval, so that a probe that hangs still
// ends before the next one is due.
const (
	DefaultInterval = time.Second
	DefaultRise     = 2
	DefaultFall     = 2
)

// ErrSpec wraps every error about a check definition.
var ErrSpec = errors.New("invalid health check")

// Spec defines one check. In YAML it is a mapping with the keys type, name,
// addr (tcp), url and body (http, https), tls_skip_verify (https), command
// (exec: a path, or a list of the path and its arguments; never run through
// a shell), interval, timeout, rise and fall. Durations are Go durations
// with a unit ("500ms", "2s"). Unknown keys and keys that do not apply to
// the type are errors.
type Spec struct {
	// Name labels the check in logs and status; it defaults to the type
	// and target ("http http://127.0.0.1:8080/health").
	Name string
	// Type is the kind of check.
	Type Type
	// Addr is the host:port a tcp check connects to.
	Addr string
	// URL is what an http or https check gets. Redirects are not
	// followed: a 3xx answer fails the check.
	URL string
	// Body, if set, must occur in the first 64 KiB of the response body.
	Body string
	// TLSSkipVerify accepts any certificate (https only), for local
	// services with self-signed certificates. Off by default.
	TLSSkipVerify bool
	// Command is the program an exec check runs and its arguments. A
	// name without a slash is looked up in PATH.
	Command []string
	// Interval is the time from the start of one probe to the start of
	// the next (default 1 s).
	Interval time.Duration
	// Timeout bounds one probe (default half the interval; at most the
	// interval).
	Timeout time.Duration
	// Rise is how many consecutive passes make a failing check healthy
	// (default 2).
	Rise int
	// Fall is how many consecutive failures make a healthy check failing
	// (default 2).
	Fall int
}

// WithDefaults returns s with its zero fields set to their defaults.
func (s Spec) WithDefaults() Spec {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = s.Interval / 2
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
	if s.Name == "" {
		s.Name = s.defaultName()
	}
	return s
}

func (s Spec) defaultName() string {
	var target string
	switch s.Type {
	case TypeTCP:
		target = s.Addr
	case TypeHTTP, TypeHTTPS:
		target = s.URL
	case TypeExec:
		if len(s.Command) > 0 {
			target = s.Command[0]
		}
	}
	if target == "" {
		return string(s.Type)
	}
	return string(s.Type) + " " + target
}

func specErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSpec, fmt.Sprintf(format, args...))
}

// problem makes an error about a check definition, before ErrSpec wraps it.
func problem(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// Validate reports what is wrong with s, after defaults are applied. Every
// error wraps ErrSpec.
func (s Spec) Validate() error {
	if err := s.WithDefaults().problem(); err != nil {
		return fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return nil
}

// problem is Validate without the ErrSpec wrapping.
func (s Spec) problem() error {
	switch s.Type {
	case "":
		return problem("missing type (want tcp, http, https or exec)")
	case TypeTCP:
		if err := s.onlyKeys("addr"); err != nil {
			return err
		}
		if err := validateAddr(s.Addr); err != nil {
			return err
		}
	case TypeHTTP, TypeHTTPS:
		allowed := []string{"url", "body"}
		if s.Type == TypeHTTPS {
			allowed = append(allowed, "tls_skip_verify")
		}
		if err := s.onlyKeys(allowed...); err != nil {
			return err
		}
		if err := validateURL(s.Type, s.URL); err != nil {
			return err
		}
	case TypeExec:
		if err := s.onlyKeys("command"); err != nil {
			return err
		}
		if len(s.Command) == 0 || s.Command[0] == "" {
			return problem("exec check: missing command")
		}
	default:
		return problem("unknown check type %q (want tcp, http, https or exec)", string(s.Type))
	}
	switch {
	case s.Interval < 0:
		return problem("interval %v is negative", s.Interval)
	case s.Timeout < 0:
		return problem("timeout %v is negative", s.Timeout)
	case s.Timeout > s.Interval:
		return problem("timeout %v is longer than interval %v: a probe would still run when the next is due", s.Timeout, s.Interval)
	case s.Timeout == 0:
		// Only an interval of 1ns halves to zero.
		return problem("interval %v is too short", s.Interval)
	case s.Rise < 1:
		return problem("rise %d: must be at least 1", s.Rise)
	case s.Fall < 1:
		return problem("fall %d: must be at least 1", s.Fall)
	}
	return nil
}

// onlyKeys reports the first type-specific field that is set but not
// among allowed (YAML key names).
func (s Spec) onlyKeys(allowed ...string) error {
	set := []struct {
		key string
		on  bool
	}{
		{"addr", s.Addr != ""},
		{"url", s.URL != ""},
		{"body", s.Body != ""},
		{"tls_skip_verify", s.TLSSkipVerify},
		{"command", len(s.Command) > 0},
	}
	for _, f := range set {
		if f.on && !slices.Contains(allowed, f.key) {
			return problem("%s does not apply to a %s check", f.key, s.Type)
		}
	}
	return nil
}

func validateAddr(addr string) error {
	if addr == "" {
		return problem("tcp check: missing addr (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return problem("tcp check: addr %q: want host:port", addr)
	}
	if host == "" {
		return problem("tcp check: addr %q has no host (write 127.0.0.1%s for this machine)", addr, addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return problem("tcp check: addr %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

func validateURL(t Type, raw string) error {
	if raw == "" {
		return problem("%s check: missing url", t)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return problem("%s check: url %q: %v", t, raw, err)
	}
	if u.Scheme != string(t) {
		return problem("%s check: url %q must start with %s:// (the type is %s)", t, raw, t, t)
	}
	if u.Host == "" {
		return problem("%s check: url %q has no host", t, raw)
	}
	return nil
}

// specKeys lists the YAML keys of a check, in the order MarshalYAML writes
// them.
var specKeys = []string{"name", "type", "addr", "url", "body", "tls_skip_verify", "command", "interval", "timeout", "rise", "fall"}

// UnmarshalYAML decodes a check from its YAML mapping strictly: unknown or
// repeated keys, keys that do not apply to the type, durations without a
// unit, and rise or fall below 1 are errors that name the line. Omitted
// fields get their defaults.
func (s *Spec) UnmarshalYAML(n *yaml.Node) error {
	out, err := decodeSpec(n)
	if err != nil {
		return err
	}
	*s = out
	return nil
}

func decodeSpec(n *yaml.Node) (Spec, error) {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return Spec{}, specErr("line %d: a check is a mapping like {type: tcp, addr: \"127.0.0.1:22\"}", n.Line)
	}
	var s Spec
	var rise, fall *int
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		key := k.Value
		if k.Kind != yaml.ScalarNode || !slices.Contains(specKeys, key) {
			return Spec{}, specErr("line %d: unknown key %q (want one of %v)", k.Line, key, specKeys)
		}
		if seen[key] {
			return Spec{}, specErr("line %d: key %s given twice", k.Line, key)
		}
		seen[key] = true
		fail := func(format string, args ...any) error {
			return specErr("line %d: %s: %s", v.Line, key, fmt.Sprintf(format, args...))
		}
		switch key {
		case "name", "type", "addr", "url", "body":
			if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
				return Spec{}, fail("want a string")
			}
			switch key {
			case "name":
				s.Name = v.Value
			case "type":
				s.Type = Type(v.Value)
			case "addr":
				s.Addr = v.Value
			case "url":
				s.URL = v.Value
			case "body":
				s.Body = v.Value
			}
		case "tls_skip_verify":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
				return Spec{}, fail("want true or false")
			}
			if err := v.Decode(&s.TLSSkipVerify); err != nil {
				return Spec{}, fail("want true or false")
			}
		case "command":
			cmd, err := decodeCommand(v)
			if err != nil {
				return Spec{}, fail("%v", err)
			}
			s.Command = cmd
		case "interval", "timeout":
			if v.Kind != yaml.ScalarNode {
				return Spec{}, fail("want a duration like 500ms or 2s")
			}
			d, err := time.ParseDuration(v.Value)
			if err != nil {
				return Spec{}, fail("%q is not a duration like 500ms or 2s", v.Value)
			}
			if d <= 0 {
				return Spec{}, fail("%v must be positive", d)
			}
			if key == "interval" {
				s.Interval = d
			} else {
				s.Timeout = d
			}
		case "rise", "fall":
			var c int
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Decode(&c) != nil {
				return Spec{}, fail("want a whole number")
			}
			if c < 1 {
				return Spec{}, fail("%d: must be at least 1", c)
			}
			if key == "rise" {
				rise = &c
			} else {
				fall = &c
			}
		}
	}
	if rise != nil {
		s.Rise = *rise
	}
	if fall != nil {
		s.Fall = *fall
	}
	s = s.WithDefaults()
	if err := s.problem(); err != nil {
		return Spec{}, fmt.Errorf("%w: line %d: %w", ErrSpec, n.Line, err)
	}
	return s, nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func decodeCommand(v *yaml.Node) ([]string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.ShortTag() == "!!null" || v.Value == "" {
			return nil, errors.New("empty command")
		}
		return []string{v.Value}, nil
	case yaml.SequenceNode:
		var cmd []string
		for _, e := range v.Content {
			e = resolveAlias(e)
			if e.Kind != yaml.ScalarNode || e.ShortTag() == "!!null" {
				return nil, errors.New("want a list of strings")
			}
			cmd = append(cmd, e.Value)
		}
		if len(cmd) == 0 || cmd[0] == "" {
			return nil, errors.New("empty command")
		}
		return cmd, nil
	}
	return nil, errors.New("want a path or a list of the path and its arguments")
}

// specDoc is the encoded form of a Spec, shared by YAML and JSON.
type specDoc struct {
	Name          string   `yaml:"name,omitempty" json:"name,omitempty"`
	Type          Type     `yaml:"type" json:"type"`
	Addr          string   `yaml:"addr,omitempty" json:"addr,omitempty"`
	URL           string   `yaml:"url,omitempty" json:"url,omitempty"`
	Body          string   `yaml:"body,omitempty" json:"body,omitempty"`
	TLSSkipVerify bool     `yaml:"tls_skip_verify,omitempty" json:"tls_skip_verify,omitempty"`
	Command       []string `yaml:"command,omitempty" json:"command,omitempty"`
	Interval      string   `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout       string   `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Rise          int      `yaml:"rise,omitempty" json:"rise,omitempty"`
	Fall          int      `yaml:"fall,omitempty" json:"fall,omitempty"`
}

func (s Spec) doc() specDoc {
	d := specDoc{
		Name: s.Name, Type: s.Type, Addr: s.Addr, URL: s.URL, Body: s.Body,
		TLSSkipVerify: s.TLSSkipVerify, Command: s.Command, Rise: s.Rise, Fall: s.Fall,
	}
	if s.Interval != 0 {
		d.Interval = s.Interval.String()
	}
	if s.Timeout != 0 {
		d.Timeout = s.Timeout.String()
	}
	return d
}

// MarshalYAML writes s in the form UnmarshalYAML reads.
func (s Spec) MarshalYAML() (any, error) { return s.doc(), nil }

// MarshalJSON writes s with the YAML key names and durations as strings,
// the form in which role configs are stored and served.
func (s Spec) MarshalJSON() ([]byte, error) { return json.Marshal(s.doc()) }

// UnmarshalJSON reads what MarshalJSON writes, with the same rules as
// UnmarshalYAML (JSON is YAML's flow style).
func (s *Spec) UnmarshalJSON(data []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("%w: %v", ErrSpec, err)
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) != 1 {
		return specErr("want a JSON object")
	}
	return s.UnmarshalYAML(n.Content[0])
}

// ParseSpecs decodes a YAML list of checks (the value of a role's checks
// key). An empty document is an empty list.
func ParseSpecs(data []byte) ([]Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrSpec, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, specErr("more than one YAML document")
	}
	if len(n.Content) == 0 {
		return nil, nil
	}
	root := resolveAlias(n.Content[0])
	if root.ShortTag() == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.SequenceNode {
		return nil, specErr("line %d: checks are a list (- {type: ...})", root.Line)
	}
	specs := make([]Spec, 0, len(root.Content))
	for i, c := range root.Content {
		s, err := decodeSpec(c)
		if err != nil {
			return nil, fmt.Errorf("check %d: %w", i+1, err)
		}
		specs = append(specs, s)
	}
	return specs, nil
}
