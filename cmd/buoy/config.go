package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"buoy"
	"buoy/internal/api"
)

// fileConfig is the YAML config file. Unknown keys are an error.
type fileConfig struct {
	Name      string `yaml:"name"`
	DataDir   string `yaml:"data_dir"`
	PeerAddr  string `yaml:"peer_addr"`
	HTTPAddr  string `yaml:"http_addr"`
	HTTPToken string `yaml:"http_token"`
	// EnableDebug serves Go's profiles on the HTTP API (Consul's name).
	EnableDebug bool     `yaml:"enable_debug"`
	Bootstrap   bool     `yaml:"bootstrap"`
	Join        []string `yaml:"join"`
	Token       string   `yaml:"token"`
	MaxVoters   int      `yaml:"max_voters"`
	Cluster     string   `yaml:"cluster"`
	LogLevel    string   `yaml:"log_level"`
	Heartbeat   string   `yaml:"heartbeat"`
	DNSAddr     string   `yaml:"dns_addr"`
	Zone        string   `yaml:"zone"`
	ZoneFiles   []string `yaml:"zone_files"`
	TSIGKeys    []string `yaml:"tsig_keys"`
	Notify      []string `yaml:"notify"`
	AllowXfr    []string `yaml:"allow_transfer"`
	// Roles are failover roles by name, each as api.RoleSpec.
	Roles           map[string]api.RoleSpec `yaml:"roles"`
	FailoverProfile string                  `yaml:"failover_profile"`
	// KVTextAddr is a pointer so that an explicit "" disables the line
	// protocol rather than meaning "not set".
	KVTextAddr *string `yaml:"kv_text_addr"`
	KVMaxKey   int     `yaml:"kv_max_key"`
	KVMaxValue int     `yaml:"kv_max_value"`
}

// unknownKey rewrites yaml's "field x not found in type main.fileConfig",
// which names a Go type, into words for the user.
var unknownKey = regexp.MustCompile(`field (\S+) not found in type \S+`)

// parseConfigFile decodes a YAML config strictly.
func parseConfigFile(data []byte) (fileConfig, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fileConfig{}, errors.New(unknownKey.ReplaceAllString(err.Error(), "unknown key $1"))
	}
	// A second document is a mistake, not something to ignore.
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fileConfig{}, errors.New("config file holds more than one YAML document")
	}
	return fc, nil
}

func loadConfigFile(path string) (fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config file: %w", err)
	}
	fc, err := parseConfigFile(data)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return fc, nil
}

// apply copies the file's settings into c.
func (fc fileConfig) apply(c *buoy.Config, logLevel *string) error {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Name, fc.Name)
	set(&c.DataDir, fc.DataDir)
	set(&c.PeerAddr, fc.PeerAddr)
	set(&c.HTTPAddr, fc.HTTPAddr)
	set(&c.HTTPToken, fc.HTTPToken)
	set(&c.Token, fc.Token)
	set(&c.Cluster, fc.Cluster)
	set(logLevel, fc.LogLevel)
	set(&c.DNSAddr, fc.DNSAddr)
	set(&c.Zone, fc.Zone)
	for _, l := range []struct{ dst, src *[]string }{
		{&c.ZoneFiles, &fc.ZoneFiles}, {&c.TSIGKeys, &fc.TSIGKeys}, {&c.Notify, &fc.Notify}, {&c.TransferACL, &fc.AllowXfr},
	} {
		if len(*l.src) > 0 {
			*l.dst = *l.src
		}
	}
	if fc.Bootstrap {
		c.Bootstrap = true
	}
	if fc.EnableDebug {
		c.EnableDebug = true
	}
	if len(fc.Join) > 0 {
		c.Join = fc.Join
	}
	if fc.MaxVoters != 0 {
		c.MaxVoters = fc.MaxVoters
	}
	if fc.KVTextAddr != nil {
		c.KVTextAddr = *fc.KVTextAddr
	}
	if fc.KVMaxKey != 0 {
		c.KVMaxKey = fc.KVMaxKey
	}
	if fc.KVMaxValue != 0 {
		c.KVMaxValue = fc.KVMaxValue
	}
	if err := fc.applyRoles(c); err != nil {
		return err
	}
	if fc.Heartbeat != "" {
		d, err := time.ParseDuration(fc.Heartbeat)
		if err != nil {
			return fmt.Errorf("heartbeat %q: want a duration such as 1s", fc.Heartbeat)
		}
		c.Heartbeat = d
	}
	return nil
}

// applyEnv copies BUOY_* variables into c. getenv is os.Getenv in main.
func applyEnv(c *buoy.Config, logLevel *string, getenv func(string) string) error {
	if v := getenv("BUOY_FAILOVER_PROFILE"); v != "" {
		c.FailoverProfile = v
	}
	str := map[string]*string{
		"BUOY_NAME": &c.Name, "BUOY_DATA_DIR": &c.DataDir, "BUOY_PEER_ADDR": &c.PeerAddr,
		"BUOY_HTTP_ADDR": &c.HTTPAddr, "BUOY_HTTP_TOKEN": &c.HTTPToken, "BUOY_TOKEN": &c.Token,
		"BUOY_CLUSTER": &c.Cluster, "BUOY_LOG_LEVEL": logLevel,
		"BUOY_DNS_ADDR": &c.DNSAddr, "BUOY_ZONE": &c.Zone, "BUOY_KV_TEXT_ADDR": &c.KVTextAddr,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	lists := map[string]*[]string{
		"BUOY_JOIN": &c.Join, "BUOY_ZONE_FILES": &c.ZoneFiles, "BUOY_TSIG_KEYS": &c.TSIGKeys,
		"BUOY_NOTIFY": &c.Notify, "BUOY_ALLOW_TRANSFER": &c.TransferACL,
	}
	for k, p := range lists {
		if v := getenv(k); v != "" {
			*p = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		}
	}
	for k, p := range map[string]*bool{"BUOY_BOOTSTRAP": &c.Bootstrap, "BUOY_ENABLE_DEBUG": &c.EnableDebug} {
		if v := getenv(k); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false", k, v)
			}
			*p = b
		}
	}
	if v := getenv("BUOY_HEARTBEAT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("BUOY_HEARTBEAT=%q: want a duration such as 1s", v)
		}
		c.Heartbeat = d
	}
	for k, p := range map[string]*int{"BUOY_MAX_VOTERS": &c.MaxVoters, "BUOY_KV_MAX_KEY": &c.KVMaxKey, "BUOY_KV_MAX_VALUE": &c.KVMaxValue} {
		if v := getenv(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s=%q: want a number", k, v)
			}
			*p = n
		}
	}
	return nil
}

// applyRoles copies the roles section into c, in name order.
func (fc fileConfig) applyRoles(c *buoy.Config) error {
	setString(&c.FailoverProfile, fc.FailoverProfile)
	if len(fc.Roles) == 0 {
		return nil
	}
	var errs []error
	c.Roles = nil
	for _, name := range slices.Sorted(maps.Keys(fc.Roles)) {
		def, err := fc.Roles[name].Role(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.Roles = append(c.Roles, def)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("roles: %w", err)
	}
	return nil
}

func setString(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}
