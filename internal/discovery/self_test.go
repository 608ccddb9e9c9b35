package discovery

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"buoy/internal/wire"
)

// t0 is the start of every test's explicit timeline.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// Addresses used below (documentation ranges only).
const (
	lan4   = "192.0.2.10:7300"       // this node's socket, behind a NAT
	pub4   = "198.51.100.50"         // the NAT's public address
	other4 = "203.0.113.9"           // what a liar, or a new ISP address, says
	lan6   = "[2001:db8:1::10]:7300" // this node's IPv6 socket (no NAT)
	pub6   = "2001:db8:1::10"
)

// see is observer's report of this node as seenIP, over a link this node
// dialed from lan4 (or lan6 for an IPv6 seenIP), at second sec.
func see(observer, seenIP string, sec int) Observation {
	seen := netip.AddrPortFrom(ip(seenIP), 40000)
	local := ap(lan4)
	if FamilyOf(seen.Addr()) == IPv6 {
		local = ap(lan6)
	}
	return Observation{Observer: observer, Seen: seen, Local: local, Outbound: true, At: at(sec)}
}

type selfStep struct {
	name        string
	do          func(s *Self) (bool, error)
	wantChanged bool
	want4       string // "" for no address
	want6       string
}

func observe(o Observation) func(s *Self) (bool, error) {
	return func(s *Self) (bool, error) { return s.Observe(o) }
}

func forget(observer string, sec int) func(s *Self) (bool, error) {
	return func(s *Self) (bool, error) { return s.Forget(observer, at(sec)), nil }
}

func expire(sec int) func(s *Self) (bool, error) {
	return func(s *Self) (bool, error) { return s.Expire(at(sec)), nil }
}

func runSelfSteps(t *testing.T, s *Self, steps []selfStep) {
	t.Helper()
	for i, st := range steps {
		changed, err := st.do(s)
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, st.name, err)
		}
		if changed != st.wantChanged {
			t.Errorf("step %d (%s): changed = %v, want %v", i, st.name, changed, st.wantChanged)
		}
		for _, c := range []struct {
			f    Family
			want string
		}{{IPv4, st.want4}, {IPv6, st.want6}} {
			got := s.Address(c.f)
			if c.want == "" && got.IsValid() || c.want != "" && got != ip(c.want) {
				t.Errorf("step %d (%s): Address(%v) = %v, want %q", i, st.name, c.f, got, c.want)
			}
		}
	}
}

func TestVote(t *testing.T) {
	tests := []struct {
		name  string
		steps []selfStep
	}{
		{"one peer", []selfStep{
			{"a sees pub", observe(see("a", pub4, 0)), true, pub4, ""},
			{"a again", observe(see("a", pub4, 1)), false, pub4, ""},
		}},
		{"one peer follows its view", []selfStep{
			{"a sees pub", observe(see("a", pub4, 0)), true, pub4, ""},
			{"a sees new", observe(see("a", other4, 1)), true, other4, ""},
		}},
		{"three agree", []selfStep{
			{"a", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b", observe(see("b", pub4, 0)), false, pub4, ""},
			{"c", observe(see("c", pub4, 0)), false, pub4, ""},
		}},
		{"one liar among three", []selfStep{
			{"a", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b", observe(see("b", pub4, 0)), false, pub4, ""},
			{"liar", observe(see("liar", other4, 1)), false, pub4, ""},
			{"liar insists", observe(see("liar", other4, 2)), false, pub4, ""},
		}},
		{"liar first is outvoted", []selfStep{
			{"liar", observe(see("liar", other4, 0)), true, other4, ""},
			{"a ties", observe(see("a", pub4, 1)), false, other4, ""},
			{"b makes a majority", observe(see("b", pub4, 1)), true, pub4, ""},
		}},
		{"majority moves at once", []selfStep{
			{"a", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b", observe(see("b", pub4, 0)), false, pub4, ""},
			{"c", observe(see("c", pub4, 0)), false, pub4, ""},
			{"a sees new", observe(see("a", other4, 5)), false, pub4, ""},
			{"b sees new", observe(see("b", other4, 5)), true, other4, ""},
			{"c still old", observe(see("c", pub4, 6)), false, other4, ""},
		}},
		{"tie keeps current", []selfStep{
			{"a", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b disagrees", observe(see("b", other4, 1)), false, pub4, ""},
			{"b again", observe(see("b", other4, 2)), false, pub4, ""},
		}},
		{"families apart", []selfStep{
			{"a v4", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b v6", observe(see("b", pub6, 0)), true, pub4, pub6},
			{"c v4 ties", observe(see("c", other4, 1)), false, pub4, pub6},
			{"b moves to v4", observe(see("b", other4, 2)), true, other4, pub6},
		}},
		{"stale observations expire", []selfStep{
			{"a at 0", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b at 20 ties", observe(see("b", other4, 20)), false, pub4, ""},
			{"before a's window ends", expire(29), false, pub4, ""},
			{"a expired", expire(30), true, other4, ""},
			{"all expired keeps the last vote", expire(100), false, other4, ""},
		}},
		{"forget on link close", []selfStep{
			{"a", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b ties", observe(see("b", other4, 0)), false, pub4, ""},
			{"a's link closes", forget("a", 1), true, other4, ""},
			{"forget unknown", forget("x", 1), false, other4, ""},
		}},
		{"older observation ignored", []selfStep{
			{"a at 10", observe(see("a", other4, 10)), true, other4, ""},
			{"a at 5 arrives late", observe(see("a", pub4, 5)), false, other4, ""},
		}},
		{"ties without current go to the freshest", []selfStep{
			{"a at 0", observe(see("a", pub4, 0)), true, pub4, ""},
			{"b at 1 ties", observe(see("b", other4, 1)), false, pub4, ""},
			{"a gone", forget("a", 2), true, other4, ""},
			{"c at 3 ties with b", observe(see("c", "192.0.2.200", 3)), false, other4, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSelfSteps(t, NewSelf(SelfConfig{}), tt.steps)
		})
	}
}

// records is a RecordSource for tests: the records held, and the NAT
// class earlier records showed (that of the record held if not given).
type records struct {
	recs  map[string]Record
	known map[string]NAT
}

func holding(recs ...Record) records {
	r := records{recs: map[string]Record{}, known: map[string]NAT{}}
	for _, rec := range recs {
		r.recs[rec.Node] = rec
	}
	return r
}

// before says the node's earlier records showed class nat.
func (r records) before(node string, nat NAT) records { r.known[node] = nat; return r }

func (r records) Record(node string) (Record, bool) { rec, ok := r.recs[node]; return rec, ok }

func (r records) KnownNAT(node string) NAT {
	if nat, ok := r.known[node]; ok {
		return nat
	}
	if rec, ok := r.recs[node]; ok {
		return rec.NAT
	}
	return NATUnknown
}

func TestVoteBehindSameNAT(t *testing.T) {
	// pi1 (this node, 192.0.2.10) and pi2 (192.0.2.11) sit behind one
	// router whose public address is pub4; a VPS outside sees pi1 as pub4.
	pi2View := Observation{Observer: "pi2", Seen: ap(lan4), Local: ap(lan4), Remote: ap("192.0.2.11:7300"), At: at(0)}
	vpsView := see("vps", pub4, 1)
	pi2 := Record{Node: "pi2", Incarnation: 1, NAT: NATCone, Port: 7300, Issued: t0,
		Addrs: []netip.AddrPort{netip.AddrPortFrom(ip(pub4), 7300)}, LAN: []netip.AddrPort{ap("192.0.2.11:7300")}}
	pi2Wrong := pi2.clone()
	pi2Wrong.Addrs = pi2.LAN // pi2 voted its LAN address
	pi2Public := pi2.clone()
	pi2Public.NAT = NATNone // pi2 claims no NAT: its view counts as seen
	pi2Unknown := pi2.clone()
	pi2Unknown.NAT = NATUnknown
	tests := []struct {
		name  string
		peers RecordSource
		vps   string // what the VPS sees; pub4 if empty
		want  string
	}{
		{"no records: a LAN view ties and sticks", nil, "", "192.0.2.10"},
		{"pi2 votes its public address", holding(pi2), "", pub4},
		{"pi2 without a public address abstains", holding(pi2Wrong), "", pub4},
		{"pi2 not behind NAT counts as seen", holding(pi2Public), "", "192.0.2.10"},
		// The router's address changed: the VPS sees the new one (other4),
		// pi2 still believes the old one, or has lost its outside links
		// and knows no class; the one that saw wins.
		{"router moved: the VPS outweighs pi2's old view", holding(pi2), other4, other4},
		{"router moved: pi2 with unknown NAT passes on its view", holding(pi2Unknown).before("pi2", NATCone), other4, other4},
		// pi2 is a public node that just moved: its record still has
		// its old address, its new one is local, its class unknown. It
		// was never behind a NAT, so it is no neighbour: what it sees
		// counts (a tie, which keeps our address), not its old address.
		{"public pi2 just moved: its view counts as seen", holding(pi2Unknown).before("pi2", NATNone), other4, "192.0.2.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSelf(SelfConfig{Peers: tt.peers})
			vpsView := vpsView
			if tt.vps != "" {
				vpsView = see("vps", tt.vps, 1)
			}
			for _, o := range []Observation{pi2View, vpsView} {
				if _, err := s.Observe(o); err != nil {
					t.Fatalf("Observe(%+v) = %v", o, err)
				}
			}
			if got := s.Address(IPv4); got != ip(tt.want) {
				t.Errorf("Address(IPv4) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestObserveRefuses(t *testing.T) {
	good := see("a", pub4, 0)
	tests := []struct {
		name   string
		modify func(o *Observation)
		want   error
	}{
		{"no observer", func(o *Observation) { o.Observer = "" }, ErrMalformed},
		{"bad observer", func(o *Observation) { o.Observer = "A B" }, ErrMalformed},
		{"no time", func(o *Observation) { o.At = time.Time{} }, ErrMalformed},
		{"no seen", func(o *Observation) { o.Seen = netip.AddrPort{} }, ErrMalformed},
		{"port 0", func(o *Observation) { o.Seen = ap(pub4 + ":0") }, ErrMalformed},
		{"unspecified local", func(o *Observation) { o.Local = ap("0.0.0.0:7300") }, ErrMalformed},
		{"unspecified", func(o *Observation) { o.Seen = ap("0.0.0.0:1") }, ErrImplausible},
		{"unspecified v6", func(o *Observation) { o.Seen = ap("[::]:1") }, ErrImplausible},
		{"multicast", func(o *Observation) { o.Seen = ap("224.0.0.1:1") }, ErrImplausible},
		{"multicast v6", func(o *Observation) { o.Seen = ap("[ff02::1]:1") }, ErrImplausible},
		{"broadcast", func(o *Observation) { o.Seen = ap("255.255.255.255:1") }, ErrImplausible},
		{"loopback from a non-loopback link", func(o *Observation) { o.Seen = ap("127.0.0.1:7300") }, ErrImplausible},
		{"loopback, local unknown", func(o *Observation) { o.Seen = ap("127.0.0.1:7300"); o.Local = netip.AddrPort{} }, ErrImplausible},
		{"v6 loopback", func(o *Observation) { o.Seen = ap("[::1]:7300") }, ErrImplausible},
		{"mapped loopback", func(o *Observation) { o.Seen = ap("[::ffff:127.0.0.1]:7300") }, ErrImplausible},
		{"link-local from a global link", func(o *Observation) { o.Seen = ap("[fe80::1]:7300"); o.Local = ap(lan6) }, ErrImplausible},
		{"loopback over loopback is fine", func(o *Observation) { o.Seen = ap("127.0.0.1:50000"); o.Local = ap("127.0.0.1:50000") }, nil},
		{"link-local over link-local is fine", func(o *Observation) { o.Seen = ap("[fe80::1%eth0]:1"); o.Local = ap("[fe80::1%eth0]:1") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.modify(&o)
			s := NewSelf(SelfConfig{})
			changed, err := s.Observe(o)
			if !errors.Is(err, tt.want) || tt.want == nil && err != nil {
				t.Fatalf("Observe(%+v) = %v, want %v", o, err, tt.want)
			}
			if tt.want != nil && (changed || len(s.Addresses()) != 0 || len(s.Observations(o.At)) != 0) {
				t.Errorf("refused Observe(%+v) changed state: changed=%v, addresses %v", o, changed, s.Addresses())
			}
		})
	}
}

func TestObservationCanonical(t *testing.T) {
	s := NewSelf(SelfConfig{})
	o := Observation{Observer: "a", Seen: ap("[::ffff:198.51.100.50]:40000"), Local: ap("[::ffff:192.0.2.10]:7300"), At: t0}
	if _, err := s.Observe(o); err != nil {
		t.Fatal(err)
	}
	if got := s.Address(IPv4); got != ip(pub4) {
		t.Errorf("Address(IPv4) after a mapped observation = %v, want %v", got, pub4)
	}
	if got := s.Observations(t0)[0].Local; got != ap(lan4) {
		t.Errorf("Observations()[0].Local = %v, want %v", got, lan4)
	}
}

func TestObservationFromHeartbeat(t *testing.T) {
	local, remote := ap(lan4), ap("203.0.113.1:7300")
	tests := []struct {
		youAre   string
		wantSeen string
		wantErr  error
	}{
		{"198.51.100.50:40000", "198.51.100.50:40000", nil},
		{"[::ffff:198.51.100.50]:40000", "198.51.100.50:40000", nil},
		{"[2001:db8::1]:40000", "[2001:db8::1]:40000", nil},
		{"", "", ErrMalformed},
		{"198.51.100.50", "", ErrMalformed},
		{"pi1:7300", "", ErrMalformed},
		{"198.51.100.50:99999", "", ErrMalformed},
		{"198.51.100.50:0", "", ErrMalformed},
		{"127.0.0.1:7300", "", ErrImplausible},
		{"[ff02::1]:7300", "", ErrImplausible},
	}
	for _, tt := range tests {
		t.Run(tt.youAre, func(t *testing.T) {
			hb := wire.Heartbeat{Seq: 1, YouAre: tt.youAre}
			o, err := ObservationFromHeartbeat("vps", hb, local, remote, true, t0)
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && err != nil {
				t.Fatalf("ObservationFromHeartbeat(you_are %q) = %v, want %v", tt.youAre, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			want := Observation{Observer: "vps", Seen: ap(tt.wantSeen), Local: local, Remote: remote, Outbound: true, At: t0}
			if o != want {
				t.Errorf("ObservationFromHeartbeat(you_are %q) = %+v, want %+v", tt.youAre, o, want)
			}
		})
	}
}

func TestNAT(t *testing.T) {
	obs := func(observer, seen, local string, outbound bool) Observation {
		o := Observation{Observer: observer, Seen: ap(seen), Outbound: outbound, At: t0}
		if local != "" {
			o.Local = ap(local)
		}
		return o
	}
	tests := []struct {
		name   string
		obs    []Observation
		want   NAT // NAT(now)
		want4  NAT
		want6  NAT
		voted4 string
	}{
		{"no observations", nil, NATUnknown, NATUnknown, NATUnknown, ""},
		{"no local address", []Observation{obs("a", pub4+":7300", "", true)}, NATUnknown, NATUnknown, NATUnknown, pub4},
		{"seen is local", []Observation{
			obs("a", pub4+":7300", pub4+":7300", true),
			obs("b", pub4+":7300", pub4+":7300", false),
		}, NATNone, NATNone, NATUnknown, pub4},
		{"one translated view", []Observation{obs("a", pub4+":7300", lan4, true)}, NATCone, NATCone, NATUnknown, pub4},
		{"same external port from one local port", []Observation{
			obs("a", pub4+":41000", lan4, true),
			obs("b", pub4+":41000", lan4, true),
		}, NATCone, NATCone, NATUnknown, pub4},
		{"different external ports from one local port", []Observation{
			obs("a", pub4+":41000", lan4, true),
			obs("b", pub4+":41001", lan4, true),
		}, NATSymmetric, NATSymmetric, NATUnknown, pub4},
		{"different local ports may map differently", []Observation{
			obs("a", pub4+":41000", lan4, true),
			obs("b", pub4+":41001", "192.0.2.10:7301", true),
		}, NATCone, NATCone, NATUnknown, pub4},
		{"inbound links do not show the mapping", []Observation{
			obs("a", pub4+":7300", lan4, false),
			obs("b", pub4+":8300", lan4, false),
		}, NATCone, NATCone, NATUnknown, pub4},
		{"a liar does not make it symmetric", []Observation{
			obs("a", pub4+":41000", lan4, true),
			obs("b", pub4+":41000", lan4, true),
			obs("liar", other4+":9", lan4, true),
		}, NATCone, NATCone, NATUnknown, pub4},
		{"LAN peer and outside peer", []Observation{
			obs("pi2", lan4, lan4, false),
			obs("vps", pub4+":41000", lan4, true),
		}, NATCone, NATCone, NATUnknown, ""},
		{"local address in 100.64/10", []Observation{obs("a", pub4+":41000", "100.64.3.4:7300", true)}, NATCGNAT, NATCGNAT, NATUnknown, pub4},
		{"seen address in 100.64/10", []Observation{obs("a", "100.127.0.9:41000", lan4, true)}, NATCGNAT, NATCGNAT, NATUnknown, "100.127.0.9"},
		{"just outside 100.64/10", []Observation{obs("a", "100.128.0.9:41000", lan4, true)}, NATCone, NATCone, NATUnknown, "100.128.0.9"},
		{"dual stack: IPv4 behind NAT, IPv6 direct", []Observation{
			obs("a", pub4+":41000", lan4, true),
			obs("b", lan6, lan6, true),
		}, NATCone, NATCone, NATNone, pub4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSelf(SelfConfig{})
			for _, o := range tt.obs {
				if _, err := s.Observe(o); err != nil {
					t.Fatalf("Observe(%+v) = %v", o, err)
				}
			}
			if tt.voted4 != "" && s.Address(IPv4) != ip(tt.voted4) {
				t.Fatalf("Address(IPv4) = %v, want %v", s.Address(IPv4), tt.voted4)
			}
			if got := s.NAT(t0); got != tt.want {
				t.Errorf("NAT() = %q, want %q", got, tt.want)
			}
			if got := s.NATFor(IPv4, t0); got != tt.want4 {
				t.Errorf("NATFor(IPv4) = %q, want %q", got, tt.want4)
			}
			if got := s.NATFor(IPv6, t0); got != tt.want6 {
				t.Errorf("NATFor(IPv6) = %q, want %q", got, tt.want6)
			}
			if got := s.NAT(at(31)); len(tt.obs) > 0 && got != NATUnknown {
				t.Errorf("NAT() after every observation expired = %q, want %q", got, NATUnknown)
			}
		})
	}
}

// TestOutsideLinksDrop: pi1 and pi2 share a router, the VPS is outside.
// When the router's address changes, pi1 loses its link to the VPS and
// keeps only pi2's untranslated view: it keeps its public address (pi2
// passes it on) and does not take itself for a node without NAT, which
// would make pi2 count its LAN address as seen.
func TestOutsideLinksDrop(t *testing.T) {
	pi2 := Record{Node: "pi2", Incarnation: 1, NAT: NATUnknown, Port: 7300, Issued: t0,
		Addrs: []netip.AddrPort{netip.AddrPortFrom(ip(pub4), 7300)}, LAN: []netip.AddrPort{ap("192.0.2.11:7300")}}
	// pi2's records showed it behind the NAT before its outside links
	// dropped too.
	s := NewSelf(SelfConfig{Peers: holding(pi2).before("pi2", NATCone)})
	for _, o := range []Observation{
		{Observer: "vps", Seen: ap(pub4 + ":41000"), Local: ap(lan4), Outbound: true, At: at(0)},
		{Observer: "pi2", Seen: ap(lan4), Local: ap(lan4), Remote: ap("192.0.2.11:7300"), At: at(0)},
	} {
		if _, err := s.Observe(o); err != nil {
			t.Fatalf("Observe(%+v) = %v", o, err)
		}
	}
	if got := s.NATFor(IPv4, at(0)); got != NATCone {
		t.Fatalf("NATFor(IPv4) with the VPS = %q, want %q", got, NATCone)
	}
	s.Forget("vps", at(1))
	if got := s.Address(IPv4); got != ip(pub4) {
		t.Errorf("Address(IPv4) without the VPS = %v, want %v", got, pub4)
	}
	if got := s.NATFor(IPv4, at(1)); got != NATUnknown {
		t.Errorf("NATFor(IPv4) without the VPS = %q, want %q", got, NATUnknown)
	}
}

func TestObservationsAndLocalAddrs(t *testing.T) {
	s := NewSelf(SelfConfig{Window: 10 * time.Second})
	for _, o := range []Observation{
		see("b", pub4, 0),
		see("a", pub4, 5),
		{Observer: "c", Seen: ap(lan6), Local: ap(lan6), At: at(5)},
	} {
		if _, err := s.Observe(o); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, o := range s.Observations(at(5)) {
		names = append(names, o.Observer)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(names, want) {
		t.Errorf("Observations() observers = %v, want %v", names, want)
	}
	wantLocal := []netip.Addr{ip("192.0.2.10"), ip(pub6)}
	if got := s.LocalAddrs(); !slices.Equal(got, wantLocal) {
		t.Errorf("LocalAddrs() = %v, want %v", got, wantLocal)
	}
	if got := s.Observations(at(12)); len(got) != 2 {
		t.Errorf("Observations(12s) = %d observations, want 2 (b expired)", len(got))
	}
	s.Expire(at(60))
	if got := s.LocalAddrs(); !slices.Equal(got, wantLocal) {
		t.Errorf("LocalAddrs() after expiry = %v, want the last known %v", got, wantLocal)
	}
	if got, want := s.Addresses(), []netip.Addr{ip(pub4), ip(pub6)}; !slices.Equal(got, want) {
		t.Errorf("Addresses() = %v, want %v", got, want)
	}
}

func ExampleSelf() {
	s := NewSelf(SelfConfig{})
	local := netip.MustParseAddrPort("192.0.2.10:7300")
	for i, v := range []struct{ peer, seen string }{
		{"vps1", "198.51.100.50:7300"},
		{"vps2", "198.51.100.50:7300"},
		{"liar", "203.0.113.66:7300"},
	} {
		now := t0.Add(time.Duration(i) * time.Second)
		hb := wire.Heartbeat{Seq: 1, YouAre: v.seen}
		o, _ := ObservationFromHeartbeat(v.peer, hb, local, netip.AddrPort{}, true, now)
		changed, _ := s.Observe(o)
		fmt.Println(v.peer, changed, s.Address(IPv4))
	}
	fmt.Println(s.NAT(t0.Add(3 * time.Second)))
	// Output:
	// vps1 true 198.51.100.50
	// vps2 false 198.51.100.50
	// liar false 198.51.100.50
	// cone
}
