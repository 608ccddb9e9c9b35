// Package dnsserver is Buoy's authoritative DNS server. Zones are compiled
// into immutable views (one per zone, swapped in with an atomic pointer) that
// hold, for every name and query type, the answer already packed in wire
// format; the UDP fast path answers from them without allocating, and
// everything unusual (other opcodes, TSIG, transfers, malformed input) goes
// through ServeDNS, which implements the full semantics with miekg/dns.
//
// The server is authoritative only: it never recurses, never sets RA, and
// answers REFUSED for names outside its zones.
package dnsserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Config configures a Server.
type Config struct {
	// Source provides zone content and history for transfers, and applies
	// updates.
	Source Source
	// TSIG maps key names (FQDN) to base64 secrets; the algorithm of each
	// key is in TSIGAlgs.
	TSIG map[string]string
	// TSIGAlgs maps key names to their algorithm (dns.HmacSHA256 etc.). A
	// key with no entry accepts any HMAC algorithm miekg/dns knows.
	TSIGAlgs map[string]string
	// TransferACL lists the addresses allowed AXFR/IXFR without TSIG.
	TransferACL []netip.Prefix
	// Notify lists the host:port secondaries to NOTIFY on every change.
	Notify []string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// ErrUnknownZone is returned for operations on a zone the server does not
// serve.
var ErrUnknownZone = errors.New("unknown zone")

// ErrBadZone is returned (wrapped, with the reason) by SetZone for zone
// content that cannot be served, such as a zone without an SOA at its apex.
var ErrBadZone = errors.New("bad zone")

// opHandler answers one request that the query engine hands over to the
// transfer/update half of the package. ctx is the serving loop's context. It
// writes one answer through w, or none to drop the request; it may block
// (an UPDATE waits for its Raft commit), so the UDP loop runs it on a
// goroutine of its own.
type opHandler func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg)

// handlerRegistrar is implemented by *Server in the transfer/update files of
// this package (xfr.go, notify.go, update.go): registerHandlers fills
// s.opcodes and s.qtypes. New finds it through this interface so that the
// query engine builds and is tested on its own; once both halves are in the
// tree a direct call would do the same.
type handlerRegistrar interface{ registerHandlers() }

// Server is an authoritative DNS server for a set of zones. Its methods are
// safe for concurrent use: queries read the current catalog with one atomic
// load and never lock; zone changes are serialised among themselves.
type Server struct {
	cfg Config
	log *slog.Logger

	// tsig verifies and signs with the keys of cfg.TSIG; nil when no key is
	// configured. The transfer/update files and any TCP server use it too.
	tsig dns.TsigProvider

	// cat is the current catalog of compiled zones; replaced, never changed.
	cat atomic.Pointer[catalog]

	// mu serialises writers (SetZone, SetOverlay, DropZone) so that two
	// changes never build on the same old catalog and lose one of them. It
	// guards the following fields too.
	mu sync.Mutex
	// overlays holds the overlay last given for each zone and the sequence
	// number of that call: SetZone compiles outside the lock, and must not
	// install the overlay it was given if a SetOverlay came after it.
	overlays map[string]overlayCall
	seq      uint64

	// opcodes routes requests by opcode (dns.OpcodeNotify,
	// dns.OpcodeUpdate), and qtypes routes QUERY requests by question type
	// (dns.TypeAXFR, dns.TypeIXFR), to the transfer/update half of the
	// package. Both are filled once in New and only read afterwards.
	opcodes map[int]opHandler
	qtypes  map[uint16]opHandler
}

// New returns a server with no zones.
func New(cfg Config) *Server {
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		opcodes:  make(map[int]opHandler),
		qtypes:   make(map[uint16]opHandler),
		overlays: make(map[string]overlayCall),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.TSIG) > 0 {
		s.tsig = newKeyring(cfg.TSIG, cfg.TSIGAlgs)
	}
	s.cat.Store(&catalog{zones: map[string]*zoneView{}})
	if r, ok := any(s).(handlerRegistrar); ok {
		r.registerHandlers()
	}
	return s
}

// overlayCall is an overlay and the sequence number of the call that set it.
type overlayCall struct {
	ov  Overlay
	seq uint64
}

// SetZone compiles z merged with the overlay ov and swaps it in, replacing
// any earlier version of the zone; if SetOverlay was called for the zone
// while z compiled, that newer overlay is used instead of ov. On error the
// server keeps serving the version it had. Calls for one zone must come in
// order (the store's apply loop makes them so): the last to finish wins.
func (s *Server) SetZone(z *Zone, ov Overlay) error {
	if z == nil {
		return fmt.Errorf("set zone: %w: nil zone", ErrBadZone)
	}
	s.mu.Lock()
	start := s.seq
	s.mu.Unlock()

	// The expensive part, outside the lock: queries never wait anyway, and
	// other zones' changes need not wait either.
	base, err := compileBase(z)
	if err != nil {
		return fmt.Errorf("set zone %s: %w", z.Origin, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if last, ok := s.overlays[base.origin]; ok && last.seq > start {
		ov = last.ov
	}
	s.overlays[base.origin] = overlayCall{ov: ov, seq: s.seq}
	v := base.withOverlay(ov)
	s.cat.Store(s.cat.Load().with(v.origin, v))
	return nil
}

// SetOverlay replaces the overlay of the zone origin. Only the overlay's
// names and the names whose answers depend on them are compiled; the
// zone's own records are not compiled again.
func (s *Server) SetOverlay(origin string, ov Overlay) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := canonical(origin)
	cat := s.cat.Load()
	old := cat.zones[key]
	if old == nil {
		return fmt.Errorf("set overlay %s: %w", origin, ErrUnknownZone)
	}
	s.seq++
	s.overlays[key] = overlayCall{ov: ov, seq: s.seq}
	v := old.withOverlay(ov)
	s.cat.Store(cat.with(key, v))
	return nil
}

// DropZone stops serving the zone origin; queries for it are then REFUSED.
func (s *Server) DropZone(origin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := canonical(origin)
	delete(s.overlays, key)
	cat := s.cat.Load()
	if cat.zones[key] == nil {
		return
	}
	s.cat.Store(cat.with(key, nil))
}

// Zones returns the origins of the zones being served, for diagnostics.
func (s *Server) Zones() []string {
	cat := s.cat.Load()
	out := make([]string, 0, len(cat.zones))
	for _, z := range cat.zones {
		out = append(out, z.origin)
	}
	return out
}

// ServeDNS implements dns.Handler with the full semantics of the server, for
// miekg/dns servers and tests. miekg's Handler carries no context, so
// requests handed to the transfer/update handlers get a background one; our
// own listeners call ServeDNSContext instead.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.ServeDNSContext(context.Background(), w, r)
}

// canonical returns name as a lowercase FQDN, the form of zone origins.
func canonical(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

// keyring is a dns.TsigProvider over Config.TSIG: keys are looked up by
// canonical name, and a key bound to an algorithm refuses the others.
type keyring struct {
	secrets map[string]string // canonical key name -> base64 secret
	algs    map[string]string // canonical key name -> canonical algorithm
}

func newKeyring(secrets, algs map[string]string) *keyring {
	k := &keyring{secrets: map[string]string{}, algs: map[string]string{}}
	for name, secret := range secrets {
		k.secrets[canonical(name)] = secret
	}
	for name, alg := range algs {
		k.algs[canonical(name)] = canonical(alg)
	}
	return k
}

// mac computes the HMAC of msg with the key of t, or returns an error that
// maps to BADKEY (unknown key, or an algorithm the key is not bound to).
func (k *keyring) mac(msg []byte, t *dns.TSIG) ([]byte, error) {
	name := canonical(t.Hdr.Name)
	secret, ok := k.secrets[name]
	if !ok {
		return nil, dns.ErrSecret
	}
	alg := canonical(t.Algorithm)
	if want, ok := k.algs[name]; ok && want != alg {
		return nil, dns.ErrKeyAlg
	}
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return nil, fmt.Errorf("tsig key %s: %w", name, err)
	}
	var h func() hash.Hash
	switch alg {
	case dns.HmacSHA1:
		h = sha1.New
	case dns.HmacSHA224:
		h = sha256.New224
	case dns.HmacSHA256:
		h = sha256.New
	case dns.HmacSHA384:
		h = sha512.New384
	case dns.HmacSHA512:
		h = sha512.New
	default:
		return nil, dns.ErrKeyAlg
	}
	m := hmac.New(h, raw)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Generate implements dns.TsigProvider.
func (k *keyring) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	return k.mac(msg, t)
}

// Verify implements dns.TsigProvider.
func (k *keyring) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.mac(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}
