package discovery

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"buoy/internal/wire"
)

// Record is a node's signed statement about where it can be reached.
type Record struct {
	// Node is the subject, the only node whose key may sign the record.
	Node string
	// Incarnation orders the subject's records: a higher one always wins.
	Incarnation uint64
	// Addrs are the public addresses: each voted IP with the listening
	// port, IPv4 first.
	Addrs []netip.AddrPort
	// LAN are the local IPs of the subject's links with the listening
	// port, for peers behind the same NAT.
	LAN []netip.AddrPort
	// NAT is the subject's NAT class.
	NAT NAT
	// Port is the subject's listening port; 0 if it accepts no links and
	// is reached only over the links it dials.
	Port uint16
	// Issued is the subject's clock when it made the record. It is shown,
	// never compared with other clocks.
	Issued time.Time
}

// Signer signs msg with this node's key.
type Signer func(msg []byte) ([]byte, error)

// Verifier checks that sig is node's signature of msg, returning an error
// if not, or if node is not a member. The node implements it with the
// public key of node's certificate; this package knows no certificates.
type Verifier func(node string, msg, sig []byte) error

// Ed25519Signer returns a Signer using key.
func Ed25519Signer(key ed25519.PrivateKey) Signer {
	return func(msg []byte) ([]byte, error) { return ed25519.Sign(key, msg), nil }
}

// Ed25519Verifier returns a Verifier that checks signatures with the key
// keyOf returns for the node.
func Ed25519Verifier(keyOf func(node string) (ed25519.PublicKey, error)) Verifier {
	return func(node string, msg, sig []byte) error {
		pub, err := keyOf(node)
		if err != nil {
			return fmt.Errorf("key of %s: %w", node, err)
		}
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, sig) {
			return fmt.Errorf("signature of %s does not verify", node)
		}
		return nil
	}
}

// Validate checks that r can be signed and accepted: a valid node name, an
// incarnation, an issue time, canonical unicast addresses with a port, no
// duplicates, bounded lists, and no addresses for a node that listens on
// no port.
func (r Record) Validate() error {
	if err := validName(r.Node); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	switch {
	case r.Incarnation == 0:
		return fmt.Errorf("record of %s: %w: incarnation 0", r.Node, ErrMalformed)
	case r.Issued.UnixNano() <= 0 || !time.Unix(0, r.Issued.UnixNano()).Equal(r.Issued):
		return fmt.Errorf("record of %s: %w: issue time %v out of range", r.Node, ErrMalformed, r.Issued)
	case len(r.Addrs) > wire.MaxRecordAddrs:
		return fmt.Errorf("record of %s: %w: %d addrs, at most %d", r.Node, ErrMalformed, len(r.Addrs), wire.MaxRecordAddrs)
	case len(r.LAN) > wire.MaxRecordLAN:
		return fmt.Errorf("record of %s: %w: %d lan addrs, at most %d", r.Node, ErrMalformed, len(r.LAN), wire.MaxRecordLAN)
	case r.Port == 0 && len(r.Addrs)+len(r.LAN) > 0:
		return fmt.Errorf("record of %s: %w: addresses but no listening port", r.Node, ErrMalformed)
	case len(r.NAT) > wire.MaxNATLen:
		return fmt.Errorf("record of %s: %w: nat class of %d bytes", r.Node, ErrMalformed, len(r.NAT))
	}
	for i := 0; i < len(r.NAT); i++ {
		if c := r.NAT[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("record of %s: %w: nat class %q", r.Node, ErrMalformed, r.NAT)
		}
	}
	for _, list := range [][]netip.AddrPort{r.Addrs, r.LAN} {
		for i, ap := range list {
			if err := checkRecordAddr(ap); err != nil {
				return fmt.Errorf("record of %s: %w", r.Node, err)
			}
			if slices.Contains(list[:i], ap) {
				return fmt.Errorf("record of %s: %w: address %s twice", r.Node, ErrMalformed, ap)
			}
		}
	}
	return nil
}

// Wire returns r in its wire form.
func (r Record) Wire() wire.AddressRecord {
	w := wire.AddressRecord{
		Node:        r.Node,
		Incarnation: r.Incarnation,
		NAT:         string(r.NAT),
		Port:        r.Port,
		Issued:      r.Issued.UnixNano(),
	}
	for _, ap := range r.Addrs {
		w.Addrs = append(w.Addrs, ap.String())
	}
	for _, ap := range r.LAN {
		w.LAN = append(w.LAN, ap.String())
	}
	return w
}

// Equal reports whether r and o say exactly the same, as signed.
func (r Record) Equal(o Record) bool {
	return bytes.Equal(r.Wire().SigningBytes(), o.Wire().SigningBytes())
}

// clone returns r with its own copies of the lists.
func (r Record) clone() Record {
	r.Addrs, r.LAN = slices.Clone(r.Addrs), slices.Clone(r.LAN)
	return r
}

// Sign validates r and signs it with sign.
func Sign(r Record, sign Signer) (wire.SignedRecord, error) {
	if err := r.Validate(); err != nil {
		return wire.SignedRecord{}, fmt.Errorf("sign: %w", err)
	}
	w := r.Wire()
	sig, err := sign(w.SigningBytes())
	if err != nil {
		return wire.SignedRecord{}, fmt.Errorf("sign record of %s: %w", r.Node, err)
	}
	return wire.SignedRecord{Record: w, Sig: sig}, nil
}

// ParseRecord converts a wire record, refusing with ErrMalformed anything
// Validate refuses and addresses not in canonical form (so that the
// parsed record encodes back to the very bytes that were signed). It does
// not check the signature: see VerifyRecord.
func ParseRecord(w wire.AddressRecord) (Record, error) {
	r := Record{
		Node:        w.Node,
		Incarnation: w.Incarnation,
		NAT:         NAT(w.NAT),
		Port:        w.Port,
		Issued:      time.Unix(0, w.Issued),
	}
	if len(w.Addrs) > wire.MaxRecordAddrs || len(w.LAN) > wire.MaxRecordLAN {
		return Record{}, fmt.Errorf("record of %.70q: %w: %d addrs and %d lan addrs, at most %d and %d",
			w.Node, ErrMalformed, len(w.Addrs), len(w.LAN), wire.MaxRecordAddrs, wire.MaxRecordLAN)
	}
	for _, s := range w.Addrs {
		ap, err := parseAddr(s)
		if err != nil {
			return Record{}, fmt.Errorf("record of %.70q: %w", w.Node, err)
		}
		r.Addrs = append(r.Addrs, ap)
	}
	for _, s := range w.LAN {
		ap, err := parseAddr(s)
		if err != nil {
			return Record{}, fmt.Errorf("record of %.70q: %w", w.Node, err)
		}
		r.LAN = append(r.LAN, ap)
	}
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// VerifyRecord parses sr and checks that its subject signed it. A forged
// record, or one signed with another node's key, is refused with an error
// wrapping ErrBadSignature.
func VerifyRecord(sr wire.SignedRecord, verify Verifier) (Record, error) {
	r, err := ParseRecord(sr.Record)
	if err != nil {
		return Record{}, err
	}
	if err := verify(r.Node, sr.Record.SigningBytes(), sr.Sig); err != nil {
		return Record{}, fmt.Errorf("record of %s: %w: %v", r.Node, ErrBadSignature, err)
	}
	return r, nil
}

// NextIncarnation returns the incarnation to use after prev: prev+1, or
// the current Unix time in milliseconds if that is larger. The clock floor
// means a node that lost its persisted incarnation (a new data dir, a
// damaged file) still starts above what its peers hold, as long as its
// clock is roughly right; prev+1 keeps it increasing when the clock is not.
func NextIncarnation(prev uint64, now time.Time) uint64 {
	next := prev + 1
	if next == 0 { // wrapped: unreachable in practice, but never go back
		return prev
	}
	if ms := now.UnixMilli(); ms > 0 && uint64(ms) > next {
		next = uint64(ms)
	}
	return next
}

// Own keeps this node's own record. Every change of content gets a new
// incarnation, so that peers never see two different records with the
// same one. The node persists the incarnation of every record Own returns
// as changed, and passes the last persisted one to NewOwn on start.
type Own struct {
	// mu guards the following fields.
	mu  sync.Mutex
	rec Record
}

// NewOwn starts this node's record after a restart: no addresses yet, and
// an incarnation above lastIncarnation (0 on the first start). The node
// persists the returned record's incarnation before announcing it.
func NewOwn(node string, port uint16, lastIncarnation uint64, now time.Time) (*Own, Record, error) {
	if err := validName(node); err != nil {
		return nil, Record{}, fmt.Errorf("own record: %w", err)
	}
	rec := Record{
		Node:        node,
		Incarnation: NextIncarnation(lastIncarnation, now),
		NAT:         NATUnknown,
		Port:        port,
		Issued:      now,
	}
	if err := rec.Validate(); err != nil {
		return nil, Record{}, fmt.Errorf("own record: %w", err)
	}
	return &Own{rec: rec}, rec.clone(), nil
}

// Record returns the current record.
func (o *Own) Record() Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rec.clone()
}

// Update rebuilds the record from s (voted addresses, local addresses, NAT
// class) and reports whether it changed; a changed record has a new
// incarnation and must be persisted, signed and pushed to every link.
func (o *Own) Update(s *Self, now time.Time) (Record, bool) {
	return o.Set(s.Addresses(), s.LocalAddrs(), s.NAT(now), now)
}

// Set is Update with the parts given directly.
func (o *Own) Set(public, local []netip.Addr, nat NAT, now time.Time) (Record, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := o.rec.clone()
	next.Addrs, next.LAN, next.NAT = withPort(public, o.rec.Port, wire.MaxRecordAddrs), withPort(local, o.rec.Port, wire.MaxRecordLAN), nat
	if next.NAT == "" {
		next.NAT = NATUnknown
	}
	if slices.Equal(next.Addrs, o.rec.Addrs) && slices.Equal(next.LAN, o.rec.LAN) && next.NAT == o.rec.NAT {
		return o.rec.clone(), false
	}
	return o.bumpLocked(next, now), true
}

// Supersede makes sure the record's incarnation is above inc, the
// incarnation of a record of this node that a peer holds: one from before
// a restart that lost the persisted incarnation. It reports whether the
// record changed.
func (o *Own) Supersede(inc uint64, now time.Time) (Record, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if inc < o.rec.Incarnation {
		return o.rec.clone(), false
	}
	o.rec.Incarnation = inc
	return o.bumpLocked(o.rec.clone(), now), true
}

func (o *Own) bumpLocked(next Record, now time.Time) Record {
	next.Incarnation = NextIncarnation(o.rec.Incarnation, now)
	if now.UnixNano() > 0 {
		next.Issued = now
	}
	o.rec = next
	return next.clone()
}

// withPort pairs each usable IP with port, dropping what a record may not
// carry, deduplicated and at most limit long.
func withPort(ips []netip.Addr, port uint16, limit int) []netip.AddrPort {
	if port == 0 {
		return nil
	}
	var out []netip.AddrPort
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap().WithZone(""), port)
		if checkRecordAddr(ap) != nil || slices.Contains(out, ap) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, ap)
	}
	return out
}
