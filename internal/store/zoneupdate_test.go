package store

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/miekg/dns"
)

func updateCmd(t testing.TB, o string, prereq, updates []dns.RR) Command {
	t.Helper()
	c, err := NewZoneUpdate(o, prereq, updates)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The record builders below follow RFC 2136 sections 2.4 and 2.5, as
// miekg's Msg helpers (Insert, RemoveRRset, Used, ...) build them.

func add(t testing.TB, line string) dns.RR { return mustRRs(t, line)[0] }

func delRRset(_ testing.TB, name string, typ uint16) dns.RR {
	return &dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassANY}}
}

func delName(t testing.TB, name string) dns.RR { return delRRset(t, name, dns.TypeANY) }

func delRR(t testing.TB, line string) dns.RR {
	rr := add(t, line)
	rr.Header().Class, rr.Header().Ttl = dns.ClassNONE, 0
	return rr
}

func nameUsed(t testing.TB, name string) dns.RR { return delRRset(t, name, dns.TypeANY) }

func nameNotUsed(_ testing.TB, name string) dns.RR {
	return &dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeANY, Class: dns.ClassNONE}}
}

func rrsetUsed(t testing.TB, name string, typ uint16) dns.RR { return delRRset(t, name, typ) }

func rrsetNotUsed(_ testing.TB, name string, typ uint16) dns.RR {
	return &dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassNONE}}
}

func rrsetIs(t testing.TB, line string) dns.RR {
	rr := add(t, line)
	rr.Header().Ttl = 0
	return rr
}

func TestZoneUpdate(t *testing.T) {
	type rrs = []dns.RR
	with := func(extra ...string) []string { return append(slices.Clone(baseZone), extra...) }
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(baseZone), func(l string) bool { return slices.Contains(drop, l) })
	}
	const (
		www10 = "www.example.org. 300 IN A 192.0.2.10"
		www11 = "www.example.org. 300 IN A 192.0.2.11"
		mx    = "example.org. 300 IN MX 10 mail.example.org."
		ns1   = "example.org. 3600 IN NS ns1.example.org."
		ns2   = "example.org. 3600 IN NS ns2.example.org."
		alias = "alias.example.org. 300 IN CNAME www.example.org."
	)
	tests := []struct {
		name       string
		prereq     func(t testing.TB) rrs
		updates    func(t testing.TB) rrs
		wantRcode  int
		wantZone   []string // records other than the SOA; nil: unchanged
		wantSerial uint32   // 0: 11 if wantZone is set, else 10
	}{
		// Additions.
		{name: "add a new name",
			updates:  func(t testing.TB) rrs { return rrs{add(t, "new.example.org. 300 IN A 192.0.2.50")} },
			wantZone: with("new.example.org. 300 IN A 192.0.2.50")},
		{name: "add to an RRset",
			updates:  func(t testing.TB) rrs { return rrs{add(t, "www.example.org. 300 IN A 192.0.2.12")} },
			wantZone: with("www.example.org. 300 IN A 192.0.2.12")},
		{name: "add a duplicate changes nothing",
			updates: func(t testing.TB) rrs { return rrs{add(t, www10)} }},
		{name: "add a duplicate in other case changes nothing",
			updates: func(t testing.TB) rrs { return rrs{add(t, "WWW.Example.ORG. 300 IN A 192.0.2.10")} }},
		{name: "add with another TTL sets the RRset's TTL",
			updates: func(t testing.TB) rrs { return rrs{add(t, "www.example.org. 60 IN A 192.0.2.12")} },
			wantZone: append(without(www10, www11),
				"www.example.org. 60 IN A 192.0.2.10", "www.example.org. 60 IN A 192.0.2.11", "www.example.org. 60 IN A 192.0.2.12")},
		{name: "add a CNAME beside other data is ignored",
			updates: func(t testing.TB) rrs { return rrs{add(t, "www.example.org. 300 IN CNAME elsewhere.example.org.")} }},
		{name: "add other data beside a CNAME is ignored",
			updates: func(t testing.TB) rrs { return rrs{add(t, "alias.example.org. 300 IN TXT \"x\"")} }},
		{name: "add a CNAME replaces the CNAME",
			updates:  func(t testing.TB) rrs { return rrs{add(t, "alias.example.org. 300 IN CNAME ns1.example.org.")} },
			wantZone: append(without(alias), "alias.example.org. 300 IN CNAME ns1.example.org.")},
		{name: "add an SOA with a higher serial replaces it",
			updates:    func(t testing.TB) rrs { return rrs{add(t, soa(50))} },
			wantZone:   baseZone,
			wantSerial: 50},
		{name: "add an SOA with a lower serial is ignored",
			updates: func(t testing.TB) rrs { return rrs{add(t, soa(9))} }},
		{name: "add an SOA below the apex is ignored",
			updates: func(t testing.TB) rrs {
				return rrs{add(t, "sub.example.org. 3600 IN SOA ns1.example.org. h.example.org. 99 1 1 1 1")}
			}},
		{name: "an SOA raised and a record added: serial is the SOA's, once",
			updates:    func(t testing.TB) rrs { return rrs{add(t, "n.example.org. 300 IN A 192.0.2.9"), add(t, soa(40))} },
			wantZone:   with("n.example.org. 300 IN A 192.0.2.9"),
			wantSerial: 40},

		// Deletions.
		{name: "delete an RRset",
			updates:  func(t testing.TB) rrs { return rrs{delRRset(t, "www.example.org.", dns.TypeA)} },
			wantZone: without(www10, www11)},
		{name: "delete a missing RRset changes nothing",
			updates: func(t testing.TB) rrs { return rrs{delRRset(t, "www.example.org.", dns.TypeAAAA)} }},
		{name: "delete the apex NS RRset is ignored",
			updates: func(t testing.TB) rrs { return rrs{delRRset(t, origin, dns.TypeNS)} }},
		{name: "delete the apex SOA RRset is ignored",
			updates: func(t testing.TB) rrs { return rrs{delRRset(t, origin, dns.TypeSOA)} }},
		{name: "delete all at a name",
			updates:  func(t testing.TB) rrs { return rrs{delName(t, "www.example.org.")} },
			wantZone: without(www10, www11)},
		{name: "delete all at the apex keeps SOA and NS",
			updates:  func(t testing.TB) rrs { return rrs{delName(t, origin)} },
			wantZone: without(mx)},
		{name: "delete one record",
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantZone: without(www10)},
		{name: "delete one record, name in other case",
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, "WWW.EXAMPLE.ORG. 300 IN A 192.0.2.10")} },
			wantZone: without(www10)},
		{name: "delete a record that is not there changes nothing",
			updates: func(t testing.TB) rrs { return rrs{delRR(t, "www.example.org. 300 IN A 192.0.2.99")} }},
		{name: "delete the SOA record is ignored",
			updates: func(t testing.TB) rrs { return rrs{delRR(t, soa(10))} }},
		{name: "delete one of two apex NS",
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, ns2)} },
			wantZone: without(ns2)},
		{name: "delete the last apex NS is ignored",
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, ns2), delRR(t, ns1)} },
			wantZone: without(ns2)},
		{name: "several operations, one serial step",
			updates: func(t testing.TB) rrs {
				return rrs{delRRset(t, "www.example.org.", dns.TypeA), add(t, "www.example.org. 300 IN AAAA 2001:db8::10"), delName(t, "alias.example.org.")}
			},
			wantZone: append(without(www10, www11, alias), "www.example.org. 300 IN AAAA 2001:db8::10")},
		{name: "add then delete in one update changes nothing",
			updates: func(t testing.TB) rrs {
				return rrs{add(t, "tmp.example.org. 300 IN A 192.0.2.1"), delName(t, "tmp.example.org.")}
			}},

		// Prerequisites.
		{name: "name in use: holds",
			prereq:   func(t testing.TB) rrs { return rrs{nameUsed(t, "www.example.org.")} },
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantZone: without(www10)},
		{name: "name in use: fails",
			prereq:    func(t testing.TB) rrs { return rrs{nameUsed(t, "nope.example.org.")} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeNameError},
		{name: "name not in use: holds",
			prereq:   func(t testing.TB) rrs { return rrs{nameNotUsed(t, "nope.example.org.")} },
			updates:  func(t testing.TB) rrs { return rrs{add(t, "nope.example.org. 300 IN A 192.0.2.1")} },
			wantZone: with("nope.example.org. 300 IN A 192.0.2.1")},
		{name: "name not in use: fails",
			prereq:    func(t testing.TB) rrs { return rrs{nameNotUsed(t, "WWW.example.org.")} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeYXDomain},
		{name: "RRset exists: holds",
			prereq:   func(t testing.TB) rrs { return rrs{rrsetUsed(t, "www.example.org.", dns.TypeA)} },
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantZone: without(www10)},
		{name: "RRset exists: fails",
			prereq:    func(t testing.TB) rrs { return rrs{rrsetUsed(t, "www.example.org.", dns.TypeAAAA)} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeNXRrset},
		{name: "RRset does not exist: holds",
			prereq:   func(t testing.TB) rrs { return rrs{rrsetNotUsed(t, "www.example.org.", dns.TypeAAAA)} },
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantZone: without(www10)},
		{name: "RRset does not exist: fails",
			prereq:    func(t testing.TB) rrs { return rrs{rrsetNotUsed(t, "www.example.org.", dns.TypeA)} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeYXRrset},
		{name: "RRset equals: holds",
			prereq: func(t testing.TB) rrs {
				return rrs{rrsetIs(t, www11), rrsetIs(t, "WWW.example.org. 0 IN A 192.0.2.10")}
			},
			updates:  func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantZone: without(www10)},
		{name: "RRset equals: subset fails",
			prereq:    func(t testing.TB) rrs { return rrs{rrsetIs(t, www10)} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeNXRrset},
		{name: "RRset equals: superset fails",
			prereq: func(t testing.TB) rrs {
				return rrs{rrsetIs(t, www10), rrsetIs(t, www11), rrsetIs(t, "www.example.org. 0 IN A 192.0.2.12")}
			},
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeNXRrset},
		{name: "a failed prerequisite after a good one changes nothing",
			prereq: func(t testing.TB) rrs {
				return rrs{nameUsed(t, "www.example.org."), rrsetNotUsed(t, "alias.example.org.", dns.TypeCNAME)}
			},
			updates:   func(t testing.TB) rrs { return rrs{delName(t, "www.example.org.")} },
			wantRcode: dns.RcodeYXRrset},

		// Refusals.
		{name: "update outside the zone",
			updates:   func(t testing.TB) rrs { return rrs{add(t, "www.example.com. 300 IN A 192.0.2.1")} },
			wantRcode: dns.RcodeNotZone},
		{name: "prerequisite outside the zone",
			prereq:    func(t testing.TB) rrs { return rrs{nameUsed(t, "example.com.")} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeNotZone},
		{name: "a NOTZONE record after a good one changes nothing",
			updates: func(t testing.TB) rrs {
				return rrs{add(t, "ok.example.org. 300 IN A 192.0.2.1"), add(t, "org. 300 IN A 192.0.2.1")}
			},
			wantRcode: dns.RcodeNotZone},
		{name: "prerequisite with a TTL",
			prereq:    func(t testing.TB) rrs { return rrs{add(t, www10)} },
			updates:   func(t testing.TB) rrs { return rrs{delRR(t, www10)} },
			wantRcode: dns.RcodeFormatError},
		{name: "deletion with a TTL",
			updates: func(t testing.TB) rrs {
				rr := delRRset(t, "www.example.org.", dns.TypeA)
				rr.Header().Ttl = 5
				return rrs{rr}
			},
			wantRcode: dns.RcodeFormatError},
		{name: "add of class CH",
			updates: func(t testing.TB) rrs {
				rr := add(t, "x.example.org. 300 IN A 192.0.2.1")
				rr.Header().Class = dns.ClassCHAOS
				return rrs{rr}
			},
			wantRcode: dns.RcodeFormatError},
		{name: "add of type ANY",
			updates: func(t testing.TB) rrs {
				return rrs{&dns.ANY{Hdr: dns.RR_Header{Name: "x.example.org.", Rrtype: dns.TypeANY, Class: dns.ClassINET, Ttl: 300}}}
			},
			wantRcode: dns.RcodeFormatError},
		{name: "delete of type AXFR",
			updates:   func(t testing.TB) rrs { return rrs{delRRset(t, "x.example.org.", dns.TypeAXFR)} },
			wantRcode: dns.RcodeFormatError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFSM(nil)
			must(t, f, putCmd(t, origin, 10, baseZone...))
			before := f.View().Zone(origin)
			var prereq, updates []dns.RR
			if tt.prereq != nil {
				prereq = tt.prereq(t)
			}
			if tt.updates != nil {
				updates = tt.updates(t)
			}
			res := applyAll(t, f, updateCmd(t, origin, prereq, updates))
			err, _ := res[0].(error)
			if got := Rcode(err); got != tt.wantRcode {
				t.Fatalf("update = %v (%s), want %s", err, dns.RcodeToString[got], dns.RcodeToString[tt.wantRcode])
			}
			z := f.View().Zone(origin)
			if tt.wantZone == nil {
				if z != before {
					t.Errorf("zone changed: %q", withoutSOA(z))
				}
				return
			}
			wantSerial := tt.wantSerial
			if wantSerial == 0 {
				wantSerial = 11
			}
			if z.Serial != wantSerial || z.SOA().Serial != wantSerial {
				t.Errorf("serial = %d (SOA %d), want %d", z.Serial, z.SOA().Serial, wantSerial)
			}
			if got, want := withoutSOA(z), canon(t, tt.wantZone...); !slices.Equal(got, want) {
				t.Errorf("records = %q\nwant %q", got, want)
			}
			if err := checkZone(z.Origin, z.recs); err != nil {
				t.Errorf("updated zone breaks an invariant: %v", err)
			}
			if !slices.IsSortedFunc(z.recs, cmpRec) {
				t.Error("updated zone is not sorted")
			}
			// The diff leads from the old content to the new one.
			diffs, ok := z.Changes(10)
			if !ok || len(diffs) != 1 {
				t.Fatalf("Changes(10) = %d diffs, %v", len(diffs), ok)
			}
			got := withoutSOA(before)
			got = slices.DeleteFunc(got, func(s string) bool { return slices.Contains(rrTexts(diffs[0].Deleted), s) })
			got = append(got, rrTexts(diffs[0].Added)...)
			slices.SortFunc(got, func(a, b string) int { return cmpRec(rec{text: a}, rec{text: b}) })
			if want := withoutSOA(z); !slices.Equal(got, want) {
				t.Errorf("old records + diff = %q\nwant %q", got, want)
			}
		})
	}
}

func TestZoneUpdateUnknownZone(t *testing.T) {
	f := NewFSM(nil)
	res := applyAll(t, f, updateCmd(t, "example.com.", nil, []dns.RR{add(t, "a.example.com. 1 IN A 192.0.2.1")}))
	if err, _ := res[0].(error); !errors.Is(err, ErrZoneUnknown) || Rcode(err) != dns.RcodeNotAuth {
		t.Errorf("update of an unknown zone = %v, want ErrZoneUnknown (NOTAUTH)", res[0])
	}
}

func TestZoneUpdateTooLarge(t *testing.T) {
	// A zone at the limit, built directly: parsing 200,000 records takes
	// too long under the race detector. The A records share one parsed
	// record; only their text (owner) differs, which is what the update
	// path looks at.
	a := add(t, "h.example.org. 300 IN A 192.0.2.1")
	recs := []rec{newRec(add(t, soa(10)))}
	for i := range MaxZoneRecords - 1 {
		recs = append(recs, rec{text: "h" + strconv.Itoa(i) + ".example.org.\t300\tIN\tA\t192.0.2.1", rr: a})
	}
	slices.SortFunc(recs, cmpRec)
	s := emptyState()
	s.Zones[origin] = &ZoneState{Origin: origin, Serial: 10, recs: recs}
	up := updateCmd(t, origin, nil, []dns.RR{add(t, "one.example.org. 300 IN A 192.0.2.1")})
	b, err := up.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.apply(2, c); !errors.Is(err, ErrZoneTooLarge) {
		t.Errorf("update past the limit = %v, want ErrZoneTooLarge", err)
	}
	if n := s.Zones[origin].Len(); n != MaxZoneRecords {
		t.Errorf("zone holds %d records, want %d", n, MaxZoneRecords)
	}
	// Deleting one and adding one stays within the limit.
	up = updateCmd(t, origin, nil, []dns.RR{delName(t, "h7.example.org."), add(t, "one.example.org. 300 IN A 192.0.2.1")})
	b, _ = up.Encode()
	c, _ = DecodeCommand(b)
	if err := s.apply(3, c); err != nil {
		t.Errorf("update keeping the size = %v", err)
	}
}

// BenchmarkZoneUpdate100k measures one committed one-record change to a
// 100,000-record zone: decode, prerequisites, apply, publish.
func BenchmarkZoneUpdate100k(b *testing.B) {
	lines := make([]string, 0, 100_000)
	for i := range 100_000 - 1 {
		lines = append(lines, "h"+strconv.Itoa(i)+".example.org. 300 IN A 192.0.2.1")
	}
	f := NewFSM(nil)
	put, _ := putCmd(b, origin, 1, lines...).Encode()
	if res := f.ApplyBatch(entryBytes(1, put)); res[0] != nil {
		b.Fatal(res[0])
	}
	addB, _ := updateCmd(b, origin, nil, []dns.RR{add(b, "bench.example.org. 300 IN A 192.0.2.1")}).Encode()
	delB, _ := updateCmd(b, origin, nil, []dns.RR{delName(b, "bench.example.org.")}).Encode()
	b.ReportAllocs()
	i := uint64(1)
	for b.Loop() {
		i++
		cmd := addB
		if i%2 == 1 {
			cmd = delB
		}
		if res := f.ApplyBatch(entryBytes(i, cmd)); res[0] != nil {
			b.Fatal(res[0])
		}
	}
}

func entryBytes(index uint64, b []byte) []*raft.Log {
	return []*raft.Log{{Index: index, Type: raft.LogCommand, Data: b}}
}

func FuzzDecodeZoneCommand(f *testing.F) {
	seed := func(c Command) {
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(putCmd(f, origin, 10, baseZone...))
	seed(putCmd(f, origin, 12, baseZone[:3]...))
	seed(NewZoneDrop(origin))
	seed(updateCmd(f, origin, []dns.RR{nameUsed(f, "www.example.org."), rrsetIs(f, "www.example.org. 0 IN A 192.0.2.10")},
		[]dns.RR{add(f, "x.example.org. 300 IN A 192.0.2.1"), delRRset(f, "www.example.org.", dns.TypeA), delName(f, "alias.example.org."), delRR(f, "example.org. 3600 IN NS ns1.example.org.")}))
	seed(updateCmd(f, origin, nil, []dns.RR{add(f, soa(99)), add(f, "alias.example.org. 300 IN CNAME x.example.org.")}))
	f.Add([]byte(`{"v":1,"op":"zone.put","zone":{"origin":"example.org.","records":["example.org. 1 IN SOA a. b. 1 2 3 4 5"]}}`))
	f.Add([]byte(`{"v":1,"op":"zone.update","update":{"origin":"example.org.","updates":["AAAAAQABAAAAAAAA"]}}`))

	base := NewFSM(nil)
	b, _ := putCmd(f, origin, 10, baseZone...).Encode()
	base.ApplyBatch(entryBytes(1, b))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// Whatever decodes must apply without panicking and leave every
		// zone whole.
		s := base.View().clone()
		_ = s.apply(2, c)
		for o, z := range s.Zones {
			if o != z.Origin {
				t.Fatalf("zone %s stored under %s", z.Origin, o)
			}
			if err := checkZone(z.Origin, z.recs); err != nil {
				t.Fatalf("zone %s after %s: %v", o, c.Op, err)
			}
			for i := 1; i < len(z.recs); i++ {
				if cmpRec(z.recs[i-1], z.recs[i]) >= 0 {
					t.Fatalf("zone %s after %s: records %d and %d out of order or duplicate", o, c.Op, i-1, i)
				}
			}
			if z.SOA().Serial != z.Serial {
				t.Fatalf("zone %s after %s: serial %d != SOA %d", o, c.Op, z.Serial, z.SOA().Serial)
			}
		}
		if _, err := c.Encode(); err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
	})
}
