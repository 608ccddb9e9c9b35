package discovery

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"buoy/internal/wire"
)

func newTestBook(t *testing.T, keys keyring) *Book {
	t.Helper()
	b, err := NewBook(BookConfig{Self: "pi1", Verify: keys.verifier()})
	if err != nil {
		t.Fatalf("NewBook = %v", err)
	}
	return b
}

func TestMerge(t *testing.T) {
	keys := newKeyring("pi1", "pi2", "vps")
	b := newTestBook(t, keys)
	conflicting := pi2Record(3)
	conflicting.Addrs = conflicting.Addrs[:1]
	forged := keys.sign(t, pi2Record(5))
	forged.Sig = ed25519.Sign(keys["vps"], forged.Record.SigningBytes())
	malformed := keys.sign(t, pi2Record(6))
	malformed.Record.LAN = []string{"192.0.2.11"}
	garbageOld := keys.sign(t, pi2Record(1))
	garbageOld.Sig = []byte("not a signature")
	ownRecord := pi2Record(9)
	ownRecord.Node = "pi1"
	forgedOwn := keys.sign(t, ownRecord)
	forgedOwn.Sig = ed25519.Sign(keys["pi2"], forgedOwn.Record.SigningBytes())

	steps := []struct {
		name    string
		in      wire.SignedRecord
		want    Outcome
		wantErr error
		heldInc uint64 // pi2's held incarnation afterwards
	}{
		{"first record", keys.sign(t, pi2Record(3)), Accepted, nil, 3},
		{"same again", keys.sign(t, pi2Record(3)), Duplicate, nil, 3},
		{"older", keys.sign(t, pi2Record(2)), Stale, nil, 3},
		{"older with a bad signature is just old", garbageOld, Stale, nil, 3},
		{"same incarnation, other content", keys.sign(t, conflicting), Refused, ErrConflict, 3},
		{"newer", keys.sign(t, pi2Record(4)), Accepted, nil, 4},
		{"forged by another member", forged, Refused, ErrBadSignature, 4},
		{"malformed", malformed, Refused, ErrMalformed, 4},
		{"our own record", keys.sign(t, ownRecord), Ours, nil, 4},
		{"our own record, forged", forgedOwn, Refused, ErrBadSignature, 4},
	}
	for i, st := range steps {
		rec, out, err := b.Merge(st.in, at(i))
		if out != st.want || !errors.Is(err, st.wantErr) || st.wantErr == nil && err != nil {
			t.Errorf("step %d (%s): Merge = %v, %v; want %v, %v", i, st.name, out, err, st.want, st.wantErr)
		}
		if err == nil && rec.Incarnation != st.in.Record.Incarnation {
			t.Errorf("step %d (%s): Merge returned incarnation %d, want %d", i, st.name, rec.Incarnation, st.in.Record.Incarnation)
		}
		held, ok := b.Record("pi2")
		if !ok || held.Incarnation != st.heldInc {
			t.Errorf("step %d (%s): Record(pi2) = %+v, %v; want incarnation %d", i, st.name, held, ok, st.heldInc)
		}
	}
	if held, _ := b.Record("pi2"); !held.Equal(pi2Record(4)) {
		t.Errorf("Record(pi2) = %+v, want %+v", held, pi2Record(4))
	}
	if _, ok := b.Record("pi1"); ok {
		t.Error("the book keeps a record of this node itself")
	}

	// What the book forwards still verifies, and is not aliased.
	signed := b.Signed()
	if len(signed) != 1 || signed[0].Record.Node != "pi2" {
		t.Fatalf("Signed() = %+v, want pi2's record", signed)
	}
	signed[0].Record.Addrs[0] = "203.0.113.66:7300"
	for _, sr := range b.Signed("pi2", "nobody", "pi2") {
		if _, err := VerifyRecord(sr, keys.verifier()); err != nil {
			t.Errorf("Signed(pi2) record does not verify: %v", err)
		}
	}
	if got := b.Signed("vps"); len(got) != 0 {
		t.Errorf("Signed(vps) = %+v, want none held", got)
	}
}

func TestMergeAliasing(t *testing.T) {
	keys := newKeyring("pi1", "pi2")
	b := newTestBook(t, keys)
	sr := keys.sign(t, pi2Record(3))
	if _, out, err := b.Merge(sr, t0); out != Accepted || err != nil {
		t.Fatalf("Merge = %v, %v", out, err)
	}
	sr.Record.Addrs[0] = "203.0.113.66:7300"
	sr.Sig[0] ^= 1
	rec, _ := b.Record("pi2")
	rec.Addrs[0] = ap("203.0.113.67:7300")
	if held, _ := b.Record("pi2"); !held.Equal(pi2Record(3)) {
		t.Errorf("Record(pi2) = %+v after the caller changed its copies, want %+v", held, pi2Record(3))
	}
}

func TestNewBookRefuses(t *testing.T) {
	if _, err := NewBook(BookConfig{Self: "pi1"}); err == nil {
		t.Error("NewBook without a verifier = nil error")
	}
	if _, err := NewBook(BookConfig{Self: "", Verify: newKeyring().verifier()}); !errors.Is(err, ErrMalformed) {
		t.Errorf("NewBook(no name) = %v, want ErrMalformed", err)
	}
}

func TestCandidates(t *testing.T) {
	keys := newKeyring("pi1", "pi2")
	pi2 := pi2Record(3) // public 198.51.100.50:7300 and [2001:db8::2]:7300, LAN 192.0.2.11:7300
	loop := Record{Node: "pi2", Incarnation: 3, Port: 7300, Issued: t0, NAT: NATNone,
		Addrs: []netip.AddrPort{ap("127.0.0.1:7300")}, LAN: []netip.AddrPort{ap("[fe80::2]:7300")}}
	moved := pi2Record(4)
	moved.Addrs = []netip.AddrPort{ap("203.0.113.20:7300")}

	type op func(t *testing.T, b *Book)
	record := func(r Record, sec int) op {
		return func(t *testing.T, b *Book) {
			if _, out, err := b.Merge(keys.sign(t, r), at(sec)); out != Accepted {
				t.Fatalf("Merge(%+v) = %v, %v", r, out, err)
			}
		}
	}
	self := func(addrs ...string) op {
		return func(t *testing.T, b *Book) {
			var as []netip.Addr
			for _, a := range addrs {
				as = append(as, ip(a))
			}
			b.SetSelfAddrs(as)
		}
	}
	up := func(remote string, outbound bool, sec int) op {
		return func(t *testing.T, b *Book) { b.LinkUp("pi2", ap(remote), outbound, at(sec)) }
	}
	down := func(sec int) op { return func(t *testing.T, b *Book) { b.LinkDown("pi2", at(sec)) } }
	failed := func(addr string, sec int) op {
		return func(t *testing.T, b *Book) { b.DialFailed("pi2", ap(addr), at(sec)) }
	}
	hint := func(addr string, sec int) op {
		return func(t *testing.T, b *Book) {
			if err := b.Hint("pi2", ap(addr), at(sec)); err != nil {
				t.Fatalf("Hint(%s) = %v", addr, err)
			}
		}
	}

	tests := []struct {
		name string
		ops  []op
		now  int
		want string // Explain's candidates, joined by ", "
	}{
		{"unknown peer", nil, 0, ""},
		{"record only, other NAT: no LAN addresses", []op{record(pi2, 0), self("203.0.113.1")}, 0,
			"198.51.100.50:7300 (record), [2001:db8::2]:7300 (record)"},
		{"same NAT: LAN first", []op{record(pi2, 0), self("198.51.100.50")}, 0,
			"192.0.2.11:7300 (lan), 198.51.100.50:7300 (record), [2001:db8::2]:7300 (record)"},
		{"full order", []op{
			hint("192.0.2.99:7300", 0),
			record(pi2, 0), self("198.51.100.50"),
			up("203.0.113.5:41234", false, 1), // pi2 dialed us from there
			up("192.0.2.12:7300", true, 2),    // we dialed it there
		}, 2, "192.0.2.12:7300 (worked), 203.0.113.5:7300 (observed), 192.0.2.11:7300 (lan), " +
			"198.51.100.50:7300 (record), [2001:db8::2]:7300 (record), 192.0.2.99:7300 (hint)"},
		{"an address keeps its best reason", []op{
			record(pi2, 0), hint("198.51.100.50:7300", 0), up("198.51.100.50:50000", false, 1),
		}, 1, "198.51.100.50:7300 (observed), [2001:db8::2]:7300 (record)"},
		{"most recent worked first", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), up("192.0.2.11:7300", true, 2),
		}, 2, "192.0.2.11:7300 (worked), 198.51.100.50:7300 (worked), [2001:db8::2]:7300 (record)"},
		{"a failed dial goes last", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), down(5), failed("198.51.100.50:7300", 6),
		}, 6, "[2001:db8::2]:7300 (record), 198.51.100.50:7300 (worked, failed)"},
		{"a failure is forgotten after the hold", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), down(5), failed("198.51.100.50:7300", 6),
		}, 6 + 60, "198.51.100.50:7300 (worked), [2001:db8::2]:7300 (record)"},
		{"newer evidence beats a failure", []op{
			record(pi2, 0), failed("198.51.100.50:7300", 1), up("198.51.100.50:7300", true, 2),
		}, 2, "198.51.100.50:7300 (worked), [2001:db8::2]:7300 (record)"},
		{"a newer record drops evidence of old addresses", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), up("198.51.100.60:1234", false, 1), down(5), record(moved, 6),
		}, 6, "203.0.113.20:7300 (record)"},
		{"while the link is up its evidence stays", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), record(moved, 6),
		}, 6, "198.51.100.50:7300 (worked), 203.0.113.20:7300 (record)"},
		{"a link from the new address before the record: older evidence goes", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), down(5),
			up("203.0.113.20:7300", false, 6), record(moved, 7),
		}, 7, "203.0.113.20:7300 (observed)"},
		{"the first record drops old evidence too", []op{
			up("198.51.100.50:7300", true, 1), down(5), up("203.0.113.20:7300", false, 6), record(moved, 7),
		}, 7, "203.0.113.20:7300 (observed)"},
		{"evidence as new as the link but from another address goes", []op{
			record(pi2, 0), up("198.51.100.50:7300", false, 6), down(6), up("203.0.113.20:7300", false, 6), record(moved, 7),
		}, 7, "203.0.113.20:7300 (observed)"},
		{"a link replacing one the record does not list drops its evidence", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), record(moved, 6), // kept: the link is up
			up("203.0.113.20:50000", false, 7), // a probe from the new address replaces it
		}, 7, "203.0.113.20:7300 (observed)"},
		{"a link replacing one the record lists keeps its evidence", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), up("192.0.2.11:50000", false, 7),
		}, 7, "198.51.100.50:7300 (worked), 192.0.2.11:7300 (observed), [2001:db8::2]:7300 (record)"},
		{"a link the record does not list that drops loses its evidence", []op{
			record(pi2, 0), up("198.51.100.50:7300", true, 1), record(moved, 6), down(7),
			up("203.0.113.20:50000", false, 8),
		}, 8, "203.0.113.20:7300 (observed)"},
		{"evidence newer than the record stays when its link is replaced", []op{
			record(pi2, 0), up("203.0.113.9:7300", true, 1), up("203.0.113.20:50000", false, 7),
		}, 7, "203.0.113.9:7300 (worked), 203.0.113.20:7300 (observed), 198.51.100.50:7300 (record), [2001:db8::2]:7300 (record)"},
		{"observed without a record uses the hint's port", []op{
			hint("192.0.2.99:7400", 0), up("203.0.113.5:41234", false, 1),
		}, 1, "203.0.113.5:7400 (observed), 192.0.2.99:7400 (hint)"},
		{"observed without any port is no candidate", []op{up("203.0.113.5:41234", false, 1)}, 1, ""},
		{"loopback and link-local record addresses left out", []op{record(loop, 0), self("198.51.100.1")}, 0, ""},
		{"loopback record addresses kept on a one-host cluster", []op{record(loop, 0), self("127.0.0.1")}, 0,
			"127.0.0.1:7300 (record)"},
		{"loopback link evidence always kept", []op{up("127.0.0.1:7300", true, 0)}, 0, "127.0.0.1:7300 (worked)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBook(t, keys)
			for _, o := range tt.ops {
				o(t, b)
			}
			var parts []string
			for _, c := range b.Explain("pi2", at(tt.now)) {
				parts = append(parts, c.String())
			}
			if got := strings.Join(parts, ", "); got != tt.want {
				t.Errorf("Explain(pi2) =\n  %s\nwant\n  %s", got, tt.want)
			}
			cands := b.Candidates("pi2", at(tt.now))
			if len(cands) != len(parts) {
				t.Errorf("Candidates(pi2) = %v, want the %d addresses of Explain", cands, len(parts))
			}
			for i, c := range cands {
				if !strings.HasPrefix(parts[i], c.String()+" ") {
					t.Errorf("Candidates(pi2)[%d] = %v, want Explain's %s", i, c, parts[i])
				}
			}
		})
	}
}

func TestHintRefuses(t *testing.T) {
	b := newTestBook(t, newKeyring("pi1"))
	for _, tc := range []struct {
		peer string
		addr netip.AddrPort
	}{
		{"pi2", netip.AddrPort{}},
		{"pi2", ap("192.0.2.1:0")},
		{"pi2", ap("0.0.0.0:7300")},
		{"Pi2", ap("192.0.2.1:7300")},
	} {
		if err := b.Hint(tc.peer, tc.addr, t0); !errors.Is(err, ErrMalformed) {
			t.Errorf("Hint(%q, %v) = %v, want ErrMalformed", tc.peer, tc.addr, err)
		}
	}
	if got := b.Peers(); len(got) != 0 {
		t.Errorf("Peers() after refused hints = %v, want none", got)
	}
}

func TestWanted(t *testing.T) {
	keys := newKeyring("pi1", "pi2", "vps")
	b := newTestBook(t, keys)
	for _, name := range []string{"pi2", "vps"} {
		if err := b.Hint(name, ap("198.51.100.7:7300"), t0); err != nil {
			t.Fatal(err)
		}
	}
	b.LinkUp("vps", ap("198.51.100.7:7300"), true, t0)
	steps := []struct {
		name        string
		do          func()
		sec         int
		want        []string
		unreachable []string
	}{
		{"a new peer is due at once", nil, 0, []string{"pi2"}, []string{"pi2"}},
		{"then not before the interval", nil, 1, nil, []string{"pi2"}},
		{"then again", nil, 5, []string{"pi2"}, []string{"pi2"}},
		{"a lost link is due at once", func() { b.LinkDown("vps", at(6)) }, 6, []string{"vps"}, []string{"pi2", "vps"}},
		{"both at the next interval", nil, 11, []string{"pi2", "vps"}, []string{"pi2", "vps"}},
		{"a link up is not wanted", func() { b.LinkUp("pi2", ap("192.0.2.11:40000"), false, at(12)) }, 20, []string{"vps"}, []string{"vps"}},
		{"a record makes a peer known", func() {
			r := pi2Record(1)
			r.Node = "pi3"
			keys["pi3"] = newKeyring("pi3")["pi3"]
			if _, out, err := b.Merge(keys.sign(t, r), at(21)); out != Accepted {
				t.Fatalf("Merge(pi3) = %v, %v", out, err)
			}
		}, 21, []string{"pi3"}, []string{"pi3", "vps"}},
		{"a departed member is forgotten", func() { b.Forget("vps") }, 40, []string{"pi3"}, []string{"pi3"}},
	}
	for _, st := range steps {
		if st.do != nil {
			st.do()
		}
		if got := b.Wanted(at(st.sec)); !slices.Equal(got, st.want) {
			t.Errorf("%s: Wanted(%ds) = %v, want %v", st.name, st.sec, got, st.want)
		}
		if got := b.Unreachable(); !slices.Equal(got, st.unreachable) {
			t.Errorf("%s: Unreachable() = %v, want %v", st.name, got, st.unreachable)
		}
	}
	if !b.Up("pi2") || b.Up("vps") || b.Up("nobody") {
		t.Errorf("Up(pi2, vps, nobody) = %v, %v, %v; want true, false, false", b.Up("pi2"), b.Up("vps"), b.Up("nobody"))
	}
	if got, want := b.Peers(), []string{"pi2", "pi3"}; !slices.Equal(got, want) {
		t.Errorf("Peers() = %v, want %v", got, want)
	}
	if got := b.String(); !strings.Contains(got, "pi2 up") || !strings.Contains(got, "pi3 down inc=1") {
		t.Errorf("String() = %q, want pi2 up and pi3 down", got)
	}
}

// TestBookFeedsSelf wires a Book into a Self as the node does, for the
// home setup the vote must get right: two machines behind one router and
// a single peer outside.
func TestBookFeedsSelf(t *testing.T) {
	keys := newKeyring("pi1", "pi2", "vps")
	book := newTestBook(t, keys)
	self := NewSelf(SelfConfig{Peers: book})
	// pi2's view arrives first: pi2 sees us at our LAN address.
	pi2View := Observation{Observer: "pi2", Seen: ap(lan4), Local: ap(lan4), Remote: ap("192.0.2.11:7300"), At: at(0)}
	if _, err := self.Observe(pi2View); err != nil {
		t.Fatal(err)
	}
	if _, err := self.Observe(see("vps", pub4, 1)); err != nil {
		t.Fatal(err)
	}
	if got := self.Address(IPv4); got != ip("192.0.2.10") {
		t.Fatalf("Address(IPv4) before pi2's record = %v, want the sticky LAN address (a tie)", got)
	}
	// pi2's record says it is behind a NAT whose public address is pub4.
	if _, out, err := book.Merge(keys.sign(t, pi2Record(3)), at(2)); out != Accepted {
		t.Fatalf("Merge(pi2) = %v, %v", out, err)
	}
	if changed := self.Expire(at(2)); !changed || self.Address(IPv4) != ip(pub4) {
		t.Errorf("Expire after pi2's record = %v, Address(IPv4) = %v; want changed to %v", changed, self.Address(IPv4), pub4)
	}
	book.SetSelfAddrs(self.Addresses())
	if got := book.Candidates("pi2", at(2)); len(got) == 0 || got[0] != ap("192.0.2.11:7300") {
		t.Errorf("Candidates(pi2) = %v, want its LAN address first", got)
	}
}

func ExampleBook() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	verify := Ed25519Verifier(func(node string) (ed25519.PublicKey, error) {
		if node != "pi2" {
			return nil, fmt.Errorf("%s is not a member", node)
		}
		return key.Public().(ed25519.PublicKey), nil
	})
	book, _ := NewBook(BookConfig{Self: "pi1", Verify: verify})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := Record{Node: "pi2", Incarnation: 2, Port: 7300, NAT: NATNone, Issued: now,
		Addrs: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.2:7300")}}
	sr, _ := Sign(rec, Ed25519Signer(key))
	_, out, _ := book.Merge(sr, now)
	fmt.Println(out, book.Candidates("pi2", now))
	rec.Incarnation = 1
	old, _ := Sign(rec, Ed25519Signer(key))
	_, out, _ = book.Merge(old, now)
	fmt.Println(out)
	fmt.Println(book.Wanted(now))
	// Output:
	// accepted [198.51.100.2:7300]
	// stale
	// [pi2]
}

// TestConcurrentUse drives a Self, an Own and a Book from several
// goroutines, as the node's link handlers do; run with -race.
func TestConcurrentUse(t *testing.T) {
	keys := newKeyring("pi1", "pi2")
	book := newTestBook(t, keys)
	self := NewSelf(SelfConfig{Peers: book})
	own, _, err := NewOwn("pi1", 7300, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	signed := make([]wire.SignedRecord, n)
	for i := range signed {
		signed[i] = keys.sign(t, pi2Record(uint64(i+1)))
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				now := at(i)
				// Each worker merges the records in another order.
				if _, out, err := book.Merge(signed[(i*(w+1))%n], now); out == Refused {
					t.Errorf("Merge = %v", err)
				}
				book.LinkUp("pi2", ap("192.0.2.11:7300"), w%2 == 0, now)
				_ = book.Candidates("pi2", now)
				_ = book.Wanted(now)
				o := see(fmt.Sprintf("peer%d", w), pub4, i)
				if _, err := self.Observe(o); err != nil {
					t.Errorf("Observe = %v", err)
				}
				if _, changed := own.Update(self, now); changed {
					book.SetSelfAddrs(self.Addresses())
				}
				book.LinkDown("pi2", now)
			}
		}()
	}
	wg.Wait()
	if rec, _ := book.Record("pi2"); rec.Incarnation != n {
		t.Errorf("Record(pi2) incarnation = %d after concurrent merges, want the highest, %d", rec.Incarnation, n)
	}
	if got := self.Address(IPv4); got != ip(pub4) {
		t.Errorf("Address(IPv4) = %v, want %v", got, pub4)
	}
}

// TestKnownNAT: the Book remembers the last NAT class other than unknown
// that a peer's records showed.
func TestKnownNAT(t *testing.T) {
	keys := newKeyring("pi1", "pi2")
	b := newTestBook(t, keys)
	steps := []struct {
		nat  NAT
		want NAT
	}{
		{NATUnknown, NATUnknown},
		{NATCone, NATCone},
		{NATUnknown, NATCone}, // lost its outside links: still behind the NAT
		{NATNone, NATNone},
		{NATUnknown, NATNone},
	}
	for i, st := range steps {
		r := pi2Record(uint64(i + 1))
		r.NAT = st.nat
		if _, out, err := b.Merge(keys.sign(t, r), at(i)); out != Accepted {
			t.Fatalf("Merge(incarnation %d) = %v, %v", i+1, out, err)
		}
		if got := b.KnownNAT("pi2"); got != st.want {
			t.Errorf("after a record with NAT %q: KnownNAT(pi2) = %q, want %q", st.nat, got, st.want)
		}
	}
	if got := b.KnownNAT("vps"); got != NATUnknown {
		t.Errorf("KnownNAT(unknown peer) = %q, want %q", got, NATUnknown)
	}
}
