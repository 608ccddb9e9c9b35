package dnsserver

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// equivalenceQueries returns queries for every name of the test zone, some
// variants of them (other case, names below them), and many types.
func equivalenceQueries(s *Server) []*dns.Msg {
	var names []string
	for _, z := range s.cat.Load().zones {
		for k := range z.base.nodes {
			n := keyName(k)
			names = append(names, n, strings.ToUpper(n), "nx-"+n, "a.b."+n, "x.*."+n)
		}
	}
	names = append(names, "www.example.net.", "org.", ".")
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA,
		dns.TypeCNAME, dns.TypeSRV, dns.TypePTR, dns.TypeCAA, dns.TypeANY, dns.TypeDS, dns.TypeNAPTR, 65280}
	var out []*dns.Msg
	for _, n := range names {
		for _, qt := range types {
			for _, e := range []struct {
				size uint16
				do   bool
			}{{0, false}, {1232, true}, {700, false}} {
				out = append(out, testQuery{name: n, qtype: qt, edns: e.size, do: e.do}.msg())
			}
		}
	}
	return out
}

// TestFastSlowEquivalence checks that whenever the fast path answers, it
// answers what ServeDNS answers over UDP. Decoded messages are compared
// with names lowercased: the fast path writes owner names as pointers to
// the question, in the client's case, and compresses differently.
func TestFastSlowEquivalence(t *testing.T) {
	s := newTestServer(t, bigZoneText())
	ov := Overlay{TTL: 5, Records: testRRs(t, "leader.example.org. 0 IN A 192.0.2.5", "pi2.nodes.example.org. 0 IN A 192.0.2.7")}
	if err := s.SetOverlay("example.org.", ov); err != nil {
		t.Fatalf("SetOverlay: %v", err)
	}
	fast, total := 0, 0
	for _, m := range equivalenceQueries(s) {
		total++
		f, wire, res := askFast(t, s, m)
		if res != fastDone {
			continue
		}
		fast++
		rec := askSlow(t, s, m, false)
		if got, want := strings.ToLower(f.String()), strings.ToLower(rec.msg.String()); got != want {
			t.Errorf("%s: fast path\n%s\nServeDNS\n%s", m.Question[0].String(), got, want)
		}
		if limit := udpLimit(m.IsEdns0()); len(wire) > limit {
			t.Errorf("%s: fast answer of %d bytes, client allows %d", m.Question[0].String(), len(wire), limit)
		}
	}
	// Nearly everything in this zone has a compiled answer: the rest are
	// CNAME names asked for types not compiled, and names below "*" labels.
	if fast < total*9/10 {
		t.Errorf("fast path answered %d of %d queries, want at least 90%%", fast, total)
	}
	t.Logf("fast path answered %d of %d queries", fast, total)
}

// TestFastPathAllocs proves the fast path does not allocate, for each kind
// of compiled answer.
func TestFastPathAllocs(t *testing.T) {
	s := newTestServer(t, "")
	if err := s.SetOverlay("example.org.", Overlay{TTL: 5, Records: testRRs(t, "leader.example.org. 0 IN A 192.0.2.5")}); err != nil {
		t.Fatalf("SetOverlay: %v", err)
	}
	for _, q := range []testQuery{
		{name: "www.example.org.", qtype: dns.TypeA},
		{name: "WWW.Example.org.", qtype: dns.TypeAAAA, edns: 1232, do: true},
		{name: "nope.example.org.", qtype: dns.TypeA},
		{name: "www.example.org.", qtype: dns.TypeTXT},
		{name: "some.thing.wild.example.org.", qtype: dns.TypeA},
		{name: "host.sub.example.org.", qtype: dns.TypeA},
		{name: "alias.example.org.", qtype: dns.TypeA},
		{name: "web.example.org.", qtype: dns.TypeA},
		{name: "leader.example.org.", qtype: dns.TypeA},
		{name: "example.org.", qtype: dns.TypeMX},
		{name: "www.example.net.", qtype: dns.TypeA},
	} {
		req, err := q.msg().Pack()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, udpSize)
		if _, res := s.answerFast(req, out); res != fastDone {
			t.Fatalf("fast path (%s %s) = %v, want an answer", q.name, dns.TypeToString[q.qtype], res)
		}
		allocs := testing.AllocsPerRun(200, func() { s.answerFast(req, out) })
		if allocs != 0 {
			t.Errorf("fast path (%s %s): %v allocations per query, want 0", q.name, dns.TypeToString[q.qtype], allocs)
		}
	}
}
