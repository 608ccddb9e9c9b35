package main

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// parseZone reads a generated zone back with miekg/dns, as Buoy does, and
// returns its records.
func parseZone(t *testing.T, text string) []dns.RR {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), "", "gen.zone")
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse generated zone: %v", err)
	}
	return rrs
}

func TestGenZone(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec zoneSpec
	}{
		{"names", zoneSpec{origin: "bench.test.", minNames: 1000, serial: 7, changeAddr: "198.51.100.1"}},
		{"records", zoneSpec{origin: "example.", minRecords: 5000, serial: 1, changeAddr: "192.0.2.9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := genZone(tc.spec)
			if z.names < tc.spec.minNames || z.records < tc.spec.minRecords {
				t.Fatalf("genZone(%+v): %d names, %d records, want at least %d and %d", tc.spec, z.names, z.records, tc.spec.minNames, tc.spec.minRecords)
			}
			rrs := parseZone(t, z.text)
			if len(rrs) != z.records {
				t.Errorf("genZone(%+v) parses to %d records, says %d", tc.spec, len(rrs), z.records)
			}
			owners := map[string]bool{}
			types := map[string]int{}
			byName := map[string][]dns.RR{}
			for _, rr := range rrs {
				name := dns.CanonicalName(rr.Header().Name)
				owners[name] = true
				types[dns.TypeToString[rr.Header().Rrtype]]++
				byName[name] = append(byName[name], rr)
			}
			if len(owners) != z.names {
				t.Errorf("genZone(%+v) has %d owner names, says %d", tc.spec, len(owners), z.names)
			}
			for typ, n := range z.types {
				if types[typ] != n {
					t.Errorf("genZone(%+v) has %d %s records, says %d", tc.spec, types[typ], typ, n)
				}
			}
			for _, typ := range []string{"SOA", "NS", "A", "AAAA", "CNAME", "MX", "TXT", "SRV"} {
				if types[typ] == 0 {
					t.Errorf("genZone(%+v) has no %s record", tc.spec, typ)
				}
			}
			soa, ok := byName[tc.spec.origin][0].(*dns.SOA)
			if !ok || soa.Serial != tc.spec.serial {
				t.Errorf("genZone(%+v) apex starts with %v, want the SOA with serial %d", tc.spec, byName[tc.spec.origin][0], tc.spec.serial)
			}
			change := byName["change."+tc.spec.origin]
			if len(change) != 1 || change[0].(*dns.A).A.String() != tc.spec.changeAddr {
				t.Errorf("genZone(%+v) change record = %v, want one A %s", tc.spec, change, tc.spec.changeAddr)
			}
			// Every question has an owner; a CNAME target exists.
			for _, q := range append(z.positive, z.probe) {
				if !owners[q.name] {
					t.Errorf("genZone(%+v): question %v has no owner in the zone", tc.spec, q)
				}
			}
			for _, rr := range rrs {
				if c, ok := rr.(*dns.CNAME); ok && !owners[c.Target] {
					t.Errorf("genZone(%+v): %v points outside the zone", tc.spec, c)
				}
			}
			if again := genZone(tc.spec); again.text != z.text {
				t.Errorf("genZone(%+v) differs between two calls", tc.spec)
			}
		})
	}
}

func TestWriteQueries(t *testing.T) {
	z := genZone(zoneSpec{origin: "bench.test.", minNames: 1000, serial: 1, changeAddr: "198.51.100.1"})
	owners := map[string]bool{}
	for _, rr := range parseZone(t, z.text) {
		owners[dns.CanonicalName(rr.Header().Name)] = true
	}
	for _, nx := range []float64{0, 0.15, 0.5} {
		var b strings.Builder
		if err := writeQueries(&b, z, "bench.test.", 10000, nx, 1); err != nil {
			t.Fatalf("writeQueries: %v", err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 10000 {
			t.Fatalf("writeQueries(nx %v) wrote %d lines, want 10000", nx, len(lines))
		}
		missing := 0
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 2 || dns.StringToType[f[1]] == 0 || !dns.IsFqdn(f[0]) {
				t.Fatalf("writeQueries(nx %v) line %q, want NAME. TYPE", nx, l)
			}
			if !owners[f[0]] {
				missing++
			}
		}
		got := float64(missing) / float64(len(lines))
		if got < nx-0.02 || got > nx+0.02 {
			t.Errorf("writeQueries(nx %v): %.3f of the names do not exist, want %v ± 0.02", nx, got, nx)
		}
	}
}
