package buoy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"buoy/internal/pki"
)

// Config configures a Node. The zero value is not usable: Name and DataDir
// are required, and a new data dir needs Bootstrap or Join.
type Config struct {
	// Name is the node's name, one DNS label ([a-z0-9-], up to 63
	// characters). It is the node's identity in its certificate and in Raft.
	Name string
	// DataDir holds the node's key, certificates and Raft state.
	DataDir string
	// PeerAddr is where the node accepts peer links (default ":7300").
	PeerAddr string
	// HTTPAddr is where the HTTP API listens (default "127.0.0.1:7380";
	// "-" disables it). A non-loopback address needs HTTPToken.
	HTTPAddr string
	// HTTPToken, if set, is required as "Authorization: Bearer <token>" on
	// every API request.
	HTTPToken string
	// EnableDebug serves Go's profiles (net/http/pprof) under /debug/pprof/
	// on the HTTP API, behind HTTPToken like every other endpoint, as
	// Consul's enable_debug does: "go tool pprof
	// http://127.0.0.1:7380/debug/pprof/profile?seconds=10".
	EnableDebug bool
	// Bootstrap creates a new cluster with this node as its first member
	// when the data dir is empty. It is ignored for a data dir that already
	// holds a cluster.
	Bootstrap bool
	// Join lists host:port addresses of existing members, used with Token
	// when the data dir is empty.
	Join []string
	// Token is a join token from "buoy token create".
	Token string
	// MaxVoters caps Raft voters (default 5); later nodes are non-voters.
	MaxVoters int
	// Cluster names the cluster in its CA certificate (default "buoy").
	Cluster string
	// Heartbeat is how often each peer link carries a heartbeat, which
	// tells the other side the address we see it at (default 1 s).
	Heartbeat time.Duration
	// Logger receives the node's logs (default: discarded).
	Logger *slog.Logger

	// DNSAddr is where authoritative DNS is served over UDP and TCP; empty
	// or "-" disables it (the agent's --dns-addr defaults to ":53").
	DNSAddr string
	// Zone is the cluster's own zone (default "buoy.internal."):
	// <node>.nodes.<zone> and leader.<zone> follow live addresses.
	Zone string
	// ZoneFiles are RFC 1035 master files loaded into the replicated state
	// at start and on LoadZoneFiles (SIGHUP for the agent).
	ZoneFiles []string
	// TSIGKeys are "NAME:ALG:SECRET" keys for zone transfers and updates.
	TSIGKeys []string
	// TransferACL lists addresses or prefixes allowed AXFR/IXFR without TSIG.
	TransferACL []string
	// Notify lists host:port secondaries to NOTIFY when a zone changes.
	Notify []string
	// KVMaxKey and KVMaxValue bound keys and values of the key-value store
	// (defaults 512 bytes and 512 KiB).
	KVMaxKey, KVMaxValue int
	// KVTextAddr is the address of the dns-raft style line protocol ("kv
	// set foo bar" through nc); empty or "-" disables it. A non-loopback
	// address needs HTTPToken (the protocol itself has no authentication).
	KVTextAddr string

	// Roles are failover roles this node puts into the replicated state
	// once the cluster has a leader: a role missing there, or one this
	// node's Roles changed since it last put it, is written; a role changed
	// at run time (API, CLI) is left alone while this list stays the same.
	Roles []RoleDef
	// FailoverProfile selects the timing of role leases: "default" (home
	// links, failover in about 1.3 s) or "lan" (about 0.45 s; also shortens
	// Raft's timeouts). Every node of a cluster should use the same one.
	FailoverProfile string

	// DNSConn and DNSListener, if set, are used instead of listening on
	// DNSAddr (tests and embedding programs).
	DNSConn     net.PacketConn
	DNSListener net.Listener

	// PeerListener, if set, is used instead of listening on PeerAddr (an
	// embedding program or a test supplies its own).
	PeerListener net.Listener
	// HTTPListener, if set, is used instead of listening on HTTPAddr.
	HTTPListener net.Listener
	// Dial, if set, opens raw transport connections to peers instead of
	// TCP (tests use an in-memory network).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Defaults.
const (
	DefaultPeerAddr  = ":7300"
	DefaultHTTPAddr  = "127.0.0.1:7380"
	DefaultMaxVoters = 5
	DefaultCluster   = "buoy"
	// DefaultTokenTTL is the lifetime of a join token when none is given.
	DefaultTokenTTL = time.Hour
	// certTTL is the lifetime of node certificates.
	certTTL = 5 * 365 * 24 * time.Hour
)

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("invalid configuration")

func (c *Config) setDefaults() {
	if c.PeerAddr == "" {
		c.PeerAddr = DefaultPeerAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = DefaultMaxVoters
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.Zone == "" {
		c.Zone = DefaultZone
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the configuration without touching the disk or network.
func (c *Config) Validate() error {
	if err := pki.ValidName(c.Name); err != nil {
		return fmt.Errorf("%w: --name: %w", ErrConfig, err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: --data-dir is required", ErrConfig)
	}
	if c.Heartbeat < 10*time.Millisecond || c.Heartbeat > time.Minute {
		return fmt.Errorf("%w: --heartbeat must be between 10ms and 1m, got %s", ErrConfig, c.Heartbeat)
	}
	if _, ok := dns.IsDomainName(c.Zone); !ok {
		return fmt.Errorf("%w: --zone %q is not a domain name", ErrConfig, c.Zone)
	}
	if c.MaxVoters < 1 {
		return fmt.Errorf("%w: --max-voters must be at least 1, got %d", ErrConfig, c.MaxVoters)
	}
	if c.Bootstrap && len(c.Join) > 0 {
		return fmt.Errorf("%w: --bootstrap and --join exclude each other: bootstrap creates a new cluster, join enters an existing one", ErrConfig)
	}
	if len(c.Join) > 0 && c.Token == "" {
		return fmt.Errorf("%w: --join needs --token (create one with \"buoy token create\" on a member)", ErrConfig)
	}
	if c.HTTPAddr != "-" && c.HTTPListener == nil {
		if err := CheckHTTPAddr(c.HTTPAddr, c.HTTPToken); err != nil {
			return err
		}
	}
	return c.validateRoles()
}

// CheckHTTPAddr refuses a non-loopback API address without a token: the
// API can create join tokens and remove members.
func CheckHTTPAddr(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: --http-addr %q: %w", ErrConfig, addr, err)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: --http-addr %q is not a loopback address; set --http-token to expose the API beyond this machine", ErrConfig, addr)
	}
	return nil
}
