package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"buoy"
	"buoy/internal/kv"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// agentConfig builds the node configuration from defaults, the config file,
// BUOY_* variables and flags, in that order of precedence (flags win).
func agentConfig(args []string, stderr io.Writer, getenv func(string) string) (buoy.Config, string, error) {
	fs := flag.NewFlagSet("buoy agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       buoy.Config
		join      stringList
		logLevel  string
		flagLevel = fs.String("log-level", "info", "log level: debug, info, warn, error")
		cfgFile   = fs.String("config", "", "YAML config file (unknown keys are an error)")
	)
	name := fs.String("name", "", "this node's name, one DNS label (required)")
	dataDir := fs.String("data-dir", "", "where the node keeps its keys and state (required)")
	peerAddr := fs.String("peer-addr", buoy.DefaultPeerAddr, "address to accept peer links on")
	httpAddr := fs.String("http-addr", buoy.DefaultHTTPAddr, "HTTP API address; a non-loopback one needs --http-token; - disables")
	httpToken := fs.String("http-token", "", "bearer token required by the HTTP API")
	enableDebug := fs.Bool("enable-debug", false, "serve Go's profiles under /debug/pprof/ on the HTTP API (behind --http-token)")
	bootstrap := fs.Bool("bootstrap", false, "create a new cluster if the data dir is empty")
	fs.Var(&join, "join", "HOST:PORT of a member to join through (repeatable)")
	token := fs.String("token", "", "join token from \"buoy token create\"")
	maxVoters := fs.Int("max-voters", buoy.DefaultMaxVoters, "most Raft voters; later nodes join as non-voters")
	cluster := fs.String("cluster", buoy.DefaultCluster, "cluster name written into a new CA")
	heartbeat := fs.Duration("heartbeat", buoy.DefaultHeartbeat, "how often each peer link carries a heartbeat")
	dnsAddr := fs.String("dns-addr", buoy.DefaultDNSAddr, "authoritative DNS address, UDP and TCP; - disables")
	zone := fs.String("zone", buoy.DefaultZone, "the cluster's zone: <node>.nodes.<zone>, leader.<zone>")
	var zoneFiles, tsigKeys, notify, allowXfr stringList
	fs.Var(&zoneFiles, "zone-file", "RFC 1035 zone file to serve (repeatable; reloaded on SIGHUP)")
	fs.Var(&tsigKeys, "tsig-key", "NAME:ALG:SECRET key for transfers and updates (repeatable)")
	fs.Var(&notify, "notify", "HOST:PORT of a secondary to NOTIFY on zone changes (repeatable)")
	fs.Var(&allowXfr, "allow-transfer", "address or prefix allowed AXFR/IXFR without TSIG (repeatable)")
	kvTextAddr := fs.String("kv-text-addr", buoy.DefaultKVTextAddr, "address of the key-value line protocol (\"kv set foo bar\" | nc); a non-loopback one needs --http-token; empty or - disables")
	kvMaxKey := fs.Int("kv-max-key", kv.DefaultLimits.MaxKeyBytes, "longest key-value store key, in bytes")
	kvMaxValue := fs.Int("kv-max-value", kv.DefaultLimits.MaxValueBytes, "largest key-value store value, in bytes")
	failoverProfile := fs.String("failover-profile", "default", "role lease timing: default (home links) or lan (fast; also shortens Raft's timeouts)")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	logLevel = "info"
	cfg.DNSAddr = buoy.DefaultDNSAddr
	cfg.KVTextAddr = buoy.DefaultKVTextAddr
	if *cfgFile != "" {
		fc, err := loadConfigFile(*cfgFile)
		if err != nil {
			return cfg, "", err
		}
		if err := fc.apply(&cfg, &logLevel); err != nil {
			return cfg, "", fmt.Errorf("config file %s: %w", *cfgFile, err)
		}
	}
	if err := applyEnv(&cfg, &logLevel, getenv); err != nil {
		return cfg, "", err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "name":
			cfg.Name = *name
		case "data-dir":
			cfg.DataDir = *dataDir
		case "peer-addr":
			cfg.PeerAddr = *peerAddr
		case "http-addr":
			cfg.HTTPAddr = *httpAddr
		case "http-token":
			cfg.HTTPToken = *httpToken
		case "bootstrap":
			cfg.Bootstrap = *bootstrap
		case "enable-debug":
			cfg.EnableDebug = *enableDebug
		case "join":
			cfg.Join = join
		case "token":
			cfg.Token = *token
		case "max-voters":
			cfg.MaxVoters = *maxVoters
		case "cluster":
			cfg.Cluster = *cluster
		case "heartbeat":
			cfg.Heartbeat = *heartbeat
		case "dns-addr":
			cfg.DNSAddr = *dnsAddr
		case "zone":
			cfg.Zone = *zone
		case "zone-file":
			cfg.ZoneFiles = zoneFiles
		case "tsig-key":
			cfg.TSIGKeys = tsigKeys
		case "notify":
			cfg.Notify = notify
		case "allow-transfer":
			cfg.TransferACL = allowXfr
		case "kv-text-addr":
			cfg.KVTextAddr = *kvTextAddr
		case "kv-max-key":
			cfg.KVMaxKey = *kvMaxKey
		case "kv-max-value":
			cfg.KVMaxValue = *kvMaxValue
		case "failover-profile":
			cfg.FailoverProfile = *failoverProfile
		case "log-level":
			logLevel = *flagLevel
		}
	})
	if err := checkKVLimits(cfg); err != nil {
		return cfg, "", err
	}
	// Checked here too, before a bootstrap creates anything on disk.
	if err := buoy.CheckKVTextAddr(cfg.KVTextAddr, cfg.HTTPToken); err != nil {
		return cfg, "", err
	}
	return cfg, logLevel, nil
}

// checkKVLimits refuses key-value limits the store cannot honour; zero
// means the default.
func checkKVLimits(cfg buoy.Config) error {
	l := kv.DefaultLimits
	if cfg.KVMaxKey != 0 {
		l.MaxKeyBytes = cfg.KVMaxKey
	}
	if cfg.KVMaxValue != 0 {
		l.MaxValueBytes = cfg.KVMaxValue
	}
	if l.MaxKeyBytes <= 0 || l.MaxKeyBytes > kv.MaxLimits.MaxKeyBytes || l.MaxValueBytes <= 0 || l.MaxValueBytes > kv.MaxLimits.MaxValueBytes {
		return fmt.Errorf("%w: --kv-max-key must be 1 to %d and --kv-max-value 1 to %d bytes; got %d and %d",
			errUsage, kv.MaxLimits.MaxKeyBytes, kv.MaxLimits.MaxValueBytes, l.MaxKeyBytes, l.MaxValueBytes)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log level %q: want debug, info, warn or error", errUsage, s)
	}
	return l, nil
}

func runAgent(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, level, err := agentConfig(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	lvl, err := parseLevel(level)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	n, err := buoy.New(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close()
	// Zone files load once the cluster has a leader, and again on SIGHUP.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	loadZones := func() {
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := n.WaitReady(lctx); err != nil {
			cfg.Logger.Error("zone files not loaded", "err", err)
			return
		}
		if err := n.LoadZoneFiles(lctx); err != nil {
			cfg.Logger.Error("zone files", "err", err)
		} else if len(cfg.ZoneFiles) > 0 {
			cfg.Logger.Info("zone files loaded", "files", len(cfg.ZoneFiles))
		}
	}
	loaded := make(chan struct{})
	go func() { // ends after one load; the agent waits for it below
		defer close(loaded)
		loadZones()
	}()
	defer func() { <-loaded }()
	for {
		select {
		case <-hup:
			cfg.Logger.Info("SIGHUP: reloading zone files")
			loadZones()
			continue
		case <-ctx.Done():
			cfg.Logger.Info("shutting down")
			return n.Close()
		case <-n.Done():
			n.Close()
			err := n.Err()
			if errors.Is(err, buoy.ErrLeft) && !errors.Is(err, buoy.ErrRemoved) {
				cfg.Logger.Info("left the cluster", "reason", err)
				return nil
			}
			return err
		}
	}
}
