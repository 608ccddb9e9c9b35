package discovery

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"buoy/internal/wire"
)

// keyring holds test node keys, made deterministically from the name.
type keyring map[string]ed25519.PrivateKey

func newKeyring(names ...string) keyring {
	k := keyring{}
	for _, n := range names {
		seed := make([]byte, ed25519.SeedSize)
		copy(seed, n)
		k[n] = ed25519.NewKeyFromSeed(seed)
	}
	return k
}

func (k keyring) verifier() Verifier {
	return Ed25519Verifier(func(node string) (ed25519.PublicKey, error) {
		key, ok := k[node]
		if !ok {
			return nil, fmt.Errorf("%s is not a member", node)
		}
		return key.Public().(ed25519.PublicKey), nil
	})
}

func (k keyring) sign(t testing.TB, r Record) wire.SignedRecord {
	t.Helper()
	sr, err := Sign(r, Ed25519Signer(k[r.Node]))
	if err != nil {
		t.Fatalf("Sign(%+v) = %v", r, err)
	}
	return sr
}

func pi2Record(inc uint64) Record {
	return Record{
		Node:        "pi2",
		Incarnation: inc,
		Addrs:       []netip.AddrPort{ap("198.51.100.50:7300"), ap("[2001:db8::2]:7300")},
		LAN:         []netip.AddrPort{ap("192.0.2.11:7300")},
		NAT:         NATCone,
		Port:        7300,
		Issued:      t0.Add(time.Duration(inc) * time.Second),
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	keys := newKeyring("pi2")
	for _, r := range []Record{
		pi2Record(1),
		{Node: "pi2", Incarnation: 9, NAT: NATUnknown, Issued: t0}, // listens on no port
		{Node: "pi2", Incarnation: math.MaxUint64, Port: 1, Issued: time.Unix(0, 1), LAN: []netip.AddrPort{ap("127.0.0.1:1")}},
	} {
		sr := keys.sign(t, r)
		got, err := VerifyRecord(sr, keys.verifier())
		if err != nil {
			t.Fatalf("VerifyRecord(Sign(%+v)) = %v", r, err)
		}
		if !got.Equal(r) || !got.Issued.Equal(r.Issued) {
			t.Errorf("VerifyRecord(Sign(r)) = %+v, want %+v", got, r)
		}
	}
}

func TestVerifyRecordRefuses(t *testing.T) {
	keys := newKeyring("pi1", "pi2")
	good := keys.sign(t, pi2Record(3))
	tests := []struct {
		name   string
		modify func(sr *wire.SignedRecord)
		want   error
	}{
		{"tampered address", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "203.0.113.66:7300" }, ErrBadSignature},
		{"tampered incarnation", func(sr *wire.SignedRecord) { sr.Record.Incarnation++ }, ErrBadSignature},
		{"tampered issue time", func(sr *wire.SignedRecord) { sr.Record.Issued++ }, ErrBadSignature},
		{"short signature", func(sr *wire.SignedRecord) { sr.Sig = sr.Sig[:10] }, ErrBadSignature},
		{"no signature", func(sr *wire.SignedRecord) { sr.Sig = nil }, ErrBadSignature},
		{"signed by another member", func(sr *wire.SignedRecord) {
			sr.Sig = ed25519.Sign(keys["pi1"], sr.Record.SigningBytes())
		}, ErrBadSignature},
		{"not a member", func(sr *wire.SignedRecord) {
			r := pi2Record(3)
			r.Node = "mallory"
			*sr = newKeyring("mallory").sign(t, r)
		}, ErrBadSignature},
		{"bad node name", func(sr *wire.SignedRecord) { sr.Record.Node = "Pi2" }, ErrMalformed},
		{"incarnation 0", func(sr *wire.SignedRecord) { sr.Record.Incarnation = 0 }, ErrMalformed},
		{"no issue time", func(sr *wire.SignedRecord) { sr.Record.Issued = 0 }, ErrMalformed},
		{"negative issue time", func(sr *wire.SignedRecord) { sr.Record.Issued = -5 }, ErrMalformed},
		{"not an address", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "pi2.example:7300" }, ErrMalformed},
		{"no port", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "198.51.100.50" }, ErrMalformed},
		{"port 0", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "198.51.100.50:0" }, ErrMalformed},
		{"leading zero port", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "198.51.100.50:07300" }, ErrMalformed},
		{"uppercase v6", func(sr *wire.SignedRecord) { sr.Record.Addrs[1] = "[2001:DB8::2]:7300" }, ErrMalformed},
		{"long v6", func(sr *wire.SignedRecord) { sr.Record.Addrs[1] = "[2001:db8:0:0:0:0:0:2]:7300" }, ErrMalformed},
		{"mapped v4", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "[::ffff:198.51.100.50]:7300" }, ErrMalformed},
		{"zone", func(sr *wire.SignedRecord) { sr.Record.LAN[0] = "[fe80::1%eth0]:7300" }, ErrMalformed},
		{"unspecified", func(sr *wire.SignedRecord) { sr.Record.LAN[0] = "0.0.0.0:7300" }, ErrMalformed},
		{"multicast", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "239.1.1.1:7300" }, ErrMalformed},
		{"broadcast", func(sr *wire.SignedRecord) { sr.Record.Addrs[0] = "255.255.255.255:7300" }, ErrMalformed},
		{"duplicate", func(sr *wire.SignedRecord) { sr.Record.Addrs[1] = sr.Record.Addrs[0] }, ErrMalformed},
		{"too many addrs", func(sr *wire.SignedRecord) {
			sr.Record.Addrs = []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1", "192.0.2.4:1", "192.0.2.5:1"}
		}, ErrMalformed},
		{"addresses without a port to listen on", func(sr *wire.SignedRecord) { sr.Record.Port = 0 }, ErrMalformed},
		{"bad nat class", func(sr *wire.SignedRecord) { sr.Record.NAT = "Cone!" }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := keys.sign(t, pi2Record(3))
			tt.modify(&sr)
			r, err := VerifyRecord(sr, keys.verifier())
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyRecord(%+v) = %+v, %v; want %v", sr.Record, r, err, tt.want)
			}
		})
	}
	if _, err := VerifyRecord(good, keys.verifier()); err != nil {
		t.Errorf("VerifyRecord(good) = %v after the cases above, want nil (cases must not share slices)", err)
	}
}

func TestSignRefusesInvalid(t *testing.T) {
	r := pi2Record(1)
	r.Addrs = append(r.Addrs, r.Addrs[0])
	called := false
	_, err := Sign(r, func([]byte) ([]byte, error) { called = true; return nil, nil })
	if !errors.Is(err, ErrMalformed) || called {
		t.Errorf("Sign(duplicate address) = %v, signer called %v; want ErrMalformed, not called", err, called)
	}
	_, err = Sign(pi2Record(1), func([]byte) ([]byte, error) { return nil, errors.New("hsm offline") })
	if err == nil {
		t.Error("Sign with a failing signer = nil error")
	}
}

func TestNextIncarnation(t *testing.T) {
	ms := uint64(t0.UnixMilli())
	tests := []struct {
		name string
		prev uint64
		now  time.Time
		want uint64
	}{
		{"first start takes the clock", 0, t0, ms},
		{"restart after a lost file takes the clock", 5, t0, ms},
		{"ahead of the clock counts up", ms + 10, t0, ms + 11},
		{"same millisecond counts up", ms, t0, ms + 1},
		{"clock before 1970 counts up", 7, time.Unix(-100, 0), 8},
		{"zero time counts up", 7, time.Time{}, 8},
		{"never wraps", math.MaxUint64, t0, math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextIncarnation(tt.prev, tt.now); got != tt.want {
				t.Errorf("NextIncarnation(%d, %v) = %d, want %d", tt.prev, tt.now, got, tt.want)
			}
		})
	}
}

func TestOwn(t *testing.T) {
	own, first, err := NewOwn("pi1", 7300, 41, t0)
	if err != nil {
		t.Fatalf("NewOwn = %v", err)
	}
	if first.Incarnation <= 41 || len(first.Addrs) != 0 || first.NAT != NATUnknown {
		t.Fatalf("NewOwn(last 41) record = %+v, want incarnation > 41, no addresses, nat unknown", first)
	}
	if _, _, err := NewOwn("Pi 1", 7300, 0, t0); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewOwn(bad name) = %v, want ErrMalformed", err)
	}

	pub := []netip.Addr{ip(pub4), ip("::ffff:198.51.100.50"), ip(pub6)}
	local := []netip.Addr{ip("192.0.2.10"), ip("0.0.0.0")}
	r1, changed := own.Set(pub, local, NATCone, at(1))
	if !changed || r1.Incarnation <= first.Incarnation {
		t.Fatalf("Set(new addresses) = %+v, %v; want changed with a higher incarnation", r1, changed)
	}
	wantAddrs := []netip.AddrPort{ap(pub4 + ":7300"), ap("[" + pub6 + "]:7300")}
	if fmt.Sprint(r1.Addrs) != fmt.Sprint(wantAddrs) || fmt.Sprint(r1.LAN) != "[192.0.2.10:7300]" || !r1.Issued.Equal(at(1)) {
		t.Errorf("Set() record = %+v, want addrs %v, lan [192.0.2.10:7300], issued %v", r1, wantAddrs, at(1))
	}
	if err := r1.Validate(); err != nil {
		t.Errorf("Set() record does not validate: %v", err)
	}
	if r, changed := own.Set(pub, local, NATCone, at(2)); changed || r.Incarnation != r1.Incarnation {
		t.Errorf("Set(same content) = %+v, %v; want unchanged incarnation %d", r, changed, r1.Incarnation)
	}
	r2, changed := own.Set(pub, local, NATSymmetric, at(3))
	if !changed || r2.Incarnation <= r1.Incarnation {
		t.Errorf("Set(new nat class) = %+v, %v; want a higher incarnation than %d", r2, changed, r1.Incarnation)
	}
	// A peer holds a record of ours from a previous life with a higher
	// incarnation: ours must go above it.
	r3, changed := own.Supersede(r2.Incarnation+1000, at(4))
	if !changed || r3.Incarnation <= r2.Incarnation+1000 || !r3.Equal(own.Record()) {
		t.Errorf("Supersede(%d) = %+v, %v; want an incarnation above it", r2.Incarnation+1000, r3, changed)
	}
	if r, changed := own.Supersede(r1.Incarnation, at(5)); changed || r.Incarnation != r3.Incarnation {
		t.Errorf("Supersede(older %d) = %+v, %v; want unchanged", r1.Incarnation, r, changed)
	}

	// Update reads the same parts from a Self.
	s := NewSelf(SelfConfig{})
	if _, err := s.Observe(see("vps", other4, 6)); err != nil {
		t.Fatal(err)
	}
	r4, changed := own.Update(s, at(6))
	if !changed || fmt.Sprint(r4.Addrs) != "["+other4+":7300]" || r4.NAT != NATCone {
		t.Errorf("Update(self voting %s) = %+v, %v", other4, r4, changed)
	}

	// A node that listens on no port publishes no addresses.
	quiet, _, _ := NewOwn("pi3", 0, 0, t0)
	if r, _ := quiet.Set(pub, local, NATCone, at(1)); len(r.Addrs)+len(r.LAN) != 0 || r.Validate() != nil {
		t.Errorf("Set() without a port = %+v, want no addresses and a valid record", r)
	}
}
