package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const (
	testSOA    = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 60"
	testNegSOA = "example.org. 60 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 60"
)

// wantAnswer is what a query must get, in zone-file lines.
type wantAnswer struct {
	rcode  int
	noAA   bool
	tc     bool
	answer []string
	ns     []string
	extra  []string
	// slow: the fast path is expected to pass the query on; otherwise it
	// must answer it itself.
	slow bool
}

// TestQuery runs every query rule through both paths: ServeDNS through a
// recorder, and the fast path on the packed query.
func TestQuery(t *testing.T) {
	s := newTestServer(t, "")
	wwwA := []string{"www.example.org. 300 IN A 192.0.2.10", "www.example.org. 300 IN A 192.0.2.11"}
	subNS := []string{
		"sub.example.org. 300 IN NS ns1.sub.example.org.",
		"sub.example.org. 300 IN NS ns2.example.org.",
		"sub.example.org. 300 IN NS ns.elsewhere.net.",
	}
	subGlue := []string{
		"ns1.sub.example.org. 300 IN A 192.0.2.200",
		"ns2.example.org. 300 IN A 192.0.2.54",
		"ns2.example.org. 300 IN AAAA 2001:db8::54",
	}
	nxdomain := wantAnswer{rcode: dns.RcodeNameError, ns: []string{testNegSOA}}
	nodata := wantAnswer{ns: []string{testNegSOA}}
	referral := wantAnswer{noAA: true, ns: subNS, extra: subGlue}

	tests := []struct {
		rule string
		q    testQuery
		want wantAnswer
	}{
		{"rrset", testQuery{name: "www.example.org.", qtype: dns.TypeA}, wantAnswer{answer: wwwA}},
		{"case-insensitive", testQuery{name: "WwW.ExAmPlE.oRg.", qtype: dns.TypeA}, wantAnswer{answer: wwwA}},
		{"stored case", testQuery{name: "mixed.example.org.", qtype: dns.TypeA}, wantAnswer{answer: []string{"Mixed.example.org. 300 IN A 192.0.2.77"}}},
		{"nxdomain", testQuery{name: "nope.example.org.", qtype: dns.TypeA}, nxdomain},
		{"nxdomain deep", testQuery{name: "a.b.nope.example.org.", qtype: dns.TypeAAAA}, nxdomain},
		{"nodata", testQuery{name: "www.example.org.", qtype: dns.TypeTXT}, nodata},
		{"empty non-terminal", testQuery{name: "ent.example.org.", qtype: dns.TypeA}, nodata},
		{"empty non-terminal deeper", testQuery{name: "b.ent.example.org.", qtype: dns.TypeA}, nodata},
		{"below empty non-terminal", testQuery{name: "a.b.ent.example.org.", qtype: dns.TypeA}, wantAnswer{answer: []string{"a.b.ent.example.org. 300 IN A 192.0.2.3"}}},
		{"below empty non-terminal missing", testQuery{name: "c.b.ent.example.org.", qtype: dns.TypeA}, nxdomain},
		{"cname", testQuery{name: "alias.example.org.", qtype: dns.TypeA},
			wantAnswer{answer: append([]string{"alias.example.org. 300 IN CNAME www.example.org."}, wwwA...)}},
		{"cname asked", testQuery{name: "alias.example.org.", qtype: dns.TypeCNAME},
			wantAnswer{answer: []string{"alias.example.org. 300 IN CNAME www.example.org."}}},
		{"cname chain", testQuery{name: "chain1.example.org.", qtype: dns.TypeAAAA},
			wantAnswer{answer: []string{
				"chain1.example.org. 300 IN CNAME chain2.example.org.",
				"chain2.example.org. 300 IN CNAME www.example.org.",
				"www.example.org. 300 IN AAAA 2001:db8::10",
			}}},
		{"cname chain nodata", testQuery{name: "chain1.example.org.", qtype: dns.TypeMX},
			wantAnswer{answer: []string{
				"chain1.example.org. 300 IN CNAME chain2.example.org.",
				"chain2.example.org. 300 IN CNAME www.example.org.",
			}, ns: []string{testNegSOA}}},
		{"cname loop", testQuery{name: "loop1.example.org.", qtype: dns.TypeA},
			wantAnswer{answer: []string{
				"loop1.example.org. 300 IN CNAME loop2.example.org.",
				"loop2.example.org. 300 IN CNAME loop1.example.org.",
			}}},
		{"cname out of our zones", testQuery{name: "ext.example.org.", qtype: dns.TypeA},
			wantAnswer{answer: []string{"ext.example.org. 300 IN CNAME www.example.net."}}},
		{"cname to nothing", testQuery{name: "dangling.example.org.", qtype: dns.TypeA},
			wantAnswer{rcode: dns.RcodeNameError, answer: []string{"dangling.example.org. 300 IN CNAME nothere.example.org."}, ns: []string{testNegSOA}}},
		{"cname other type", testQuery{name: "alias.example.org.", qtype: dns.TypeNAPTR},
			wantAnswer{answer: []string{"alias.example.org. 300 IN CNAME www.example.org."}, ns: []string{testNegSOA}}},
		{"wildcard", testQuery{name: "x.wild.example.org.", qtype: dns.TypeA}, wantAnswer{answer: []string{"x.wild.example.org. 300 IN A 192.0.2.99"}}},
		{"wildcard two labels", testQuery{name: "x.y.wild.example.org.", qtype: dns.TypeTXT}, wantAnswer{answer: []string{`x.y.wild.example.org. 300 IN TXT "wild"`}}},
		{"wildcard long name", testQuery{name: "a-rather-long-label.and-another-one.wild.example.org.", qtype: dns.TypeA},
			wantAnswer{answer: []string{"a-rather-long-label.and-another-one.wild.example.org. 300 IN A 192.0.2.99"}}},
		{"wildcard nodata", testQuery{name: "x.wild.example.org.", qtype: dns.TypeMX}, nodata},
		{"no wildcard at existing name", testQuery{name: "exists.wild.example.org.", qtype: dns.TypeA}, nodata},
		{"no wildcard below existing name", testQuery{name: "sub.exists.wild.example.org.", qtype: dns.TypeA}, nxdomain},
		{"wildcard asked literally", testQuery{name: "*.wild.example.org.", qtype: dns.TypeA}, wantAnswer{answer: []string{"*.wild.example.org. 300 IN A 192.0.2.99"}}},
		{"wildcard cname", testQuery{name: "host.wc.example.org.", qtype: dns.TypeA},
			wantAnswer{answer: append([]string{"host.wc.example.org. 300 IN CNAME www.example.org."}, wwwA...)}},
		{"wildcard any", testQuery{name: "x.wild.example.org.", qtype: dns.TypeANY}, wantAnswer{answer: []string{"x.wild.example.org. 300 IN A 192.0.2.99"}}},
		{"referral", testQuery{name: "sub.example.org.", qtype: dns.TypeA}, referral},
		{"referral below cut", testQuery{name: "deep.host.sub.example.org.", qtype: dns.TypeMX}, referral},
		{"glue is not answered", testQuery{name: "ns1.sub.example.org.", qtype: dns.TypeA}, referral},
		{"referral for NS", testQuery{name: "sub.example.org.", qtype: dns.TypeNS}, referral},
		{"DS at the cut from the parent", testQuery{name: "sub.example.org.", qtype: dns.TypeDS}, nodata},
		{"mx additional", testQuery{name: "example.org.", qtype: dns.TypeMX},
			wantAnswer{answer: []string{"example.org. 300 IN MX 10 mail.example.org."}, extra: []string{"mail.example.org. 300 IN A 192.0.2.25"}}},
		{"ns additional", testQuery{name: "example.org.", qtype: dns.TypeNS},
			wantAnswer{answer: []string{"example.org. 300 IN NS ns1.example.org.", "example.org. 300 IN NS ns2.example.org."},
				extra: []string{"ns1.example.org. 300 IN A 192.0.2.53", "ns2.example.org. 300 IN A 192.0.2.54", "ns2.example.org. 300 IN AAAA 2001:db8::54"}}},
		{"srv additional", testQuery{name: "_sip._udp.example.org.", qtype: dns.TypeSRV},
			wantAnswer{answer: []string{"_sip._udp.example.org. 300 IN SRV 10 5 5060 sip.example.org."}, extra: []string{"sip.example.org. 300 IN A 192.0.2.60"}}},
		{"soa with the store's serial", testQuery{name: "example.org.", qtype: dns.TypeSOA}, wantAnswer{answer: []string{testSOA}}},
		{"txt", testQuery{name: "txt.example.org.", qtype: dns.TypeTXT}, wantAnswer{answer: []string{`txt.example.org. 300 IN TXT "hello" "world"`}}},
		{"caa", testQuery{name: "caa.example.org.", qtype: dns.TypeCAA}, wantAnswer{answer: []string{`caa.example.org. 300 IN CAA 0 issue "letsencrypt.org"`}}},
		{"ptr", testQuery{name: "ptr.example.org.", qtype: dns.TypePTR}, wantAnswer{answer: []string{"ptr.example.org. 300 IN PTR www.example.org."}}},
		{"unknown type served as stored", testQuery{name: "other.example.org.", qtype: 65280}, wantAnswer{answer: []string{`other.example.org. 300 IN TYPE65280 \# 3 010203`}}},
		{"minimal any", testQuery{name: "www.example.org.", qtype: dns.TypeANY}, wantAnswer{answer: wwwA}},
		{"minimal any at apex", testQuery{name: "example.org.", qtype: dns.TypeANY}, wantAnswer{answer: []string{"example.org. 300 IN A 192.0.2.1"}}},
		{"any at empty non-terminal", testQuery{name: "ent.example.org.", qtype: dns.TypeANY}, nodata},
		{"refused outside our zones", testQuery{name: "www.example.net.", qtype: dns.TypeA}, wantAnswer{rcode: dns.RcodeRefused, noAA: true}},
		{"refused above our zone", testQuery{name: "org.", qtype: dns.TypeA}, wantAnswer{rcode: dns.RcodeRefused, noAA: true}},
		{"refused axfr without handler", testQuery{name: "example.org.", qtype: dns.TypeAXFR}, wantAnswer{rcode: dns.RcodeRefused, noAA: true, slow: true}},
		{"notimp maila", testQuery{name: "example.org.", qtype: dns.TypeMAILA}, wantAnswer{rcode: dns.RcodeNotImplemented, noAA: true, slow: true}},
		{"formerr opt as qtype", testQuery{name: "example.org.", qtype: dns.TypeOPT}, wantAnswer{rcode: dns.RcodeFormatError, noAA: true, slow: true}},
		{"notimp opcode", testQuery{name: "example.org.", qtype: dns.TypeA, opcode: 3}, wantAnswer{rcode: dns.RcodeNotImplemented, noAA: true, slow: true}},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			m := tc.q.msg()
			slow := askSlow(t, s, m, tc.q.tcp)
			if slow.msg == nil {
				t.Fatalf("ServeDNS(%s %s) wrote nothing", tc.q.name, dns.TypeToString[tc.q.qtype])
			}
			checkAnswer(t, "ServeDNS", tc.q, slow.msg, tc.want)
			fast, _, res := askFast(t, s, m)
			switch {
			case tc.want.slow && res != fastSlow:
				t.Errorf("fast path (%s %s) = %v, want it passed to the slow path", tc.q.name, dns.TypeToString[tc.q.qtype], res)
			case !tc.want.slow && res != fastDone:
				t.Errorf("fast path (%s %s) = %v, want an answer", tc.q.name, dns.TypeToString[tc.q.qtype], res)
			case res == fastDone:
				checkAnswer(t, "fast path", tc.q, fast, tc.want)
			}
		})
	}
}

// checkAnswer compares an answer with what the test wants. Names compare
// case-insensitively: the fast path writes owner names as pointers to the
// question, in the client's case.
func checkAnswer(t *testing.T, path string, q testQuery, got *dns.Msg, want wantAnswer) {
	t.Helper()
	what := fmt.Sprintf("%s(%s %s)", path, q.name, dns.TypeToString[q.qtype])
	if got.Id != 0x4242 || !got.Response {
		t.Errorf("%s: id %#x response %v, want id 0x4242 response true", what, got.Id, got.Response)
	}
	if got.Rcode != want.rcode {
		t.Errorf("%s: rcode %s, want %s", what, dns.RcodeToString[got.Rcode], dns.RcodeToString[want.rcode])
	}
	if got.Authoritative == want.noAA {
		t.Errorf("%s: AA %v, want %v", what, got.Authoritative, !want.noAA)
	}
	if got.Truncated != want.tc {
		t.Errorf("%s: TC %v, want %v", what, got.Truncated, want.tc)
	}
	if got.RecursionAvailable {
		t.Errorf("%s: RA set; we never recurse", what)
	}
	if got.RecursionDesired != !q.noRD {
		t.Errorf("%s: RD %v, want it copied from the query (%v)", what, got.RecursionDesired, !q.noRD)
	}
	if want.rcode != dns.RcodeFormatError {
		if len(got.Question) != 1 || got.Question[0].Name != q.name {
			t.Errorf("%s: question %v, want %q as asked", what, got.Question, q.name)
		}
	}
	for _, sec := range []struct {
		name      string
		got, want []string
	}{
		{"answer", rrStrings(got.Answer), want.answer},
		{"authority", rrStrings(got.Ns), want.ns},
		{"additional", rrStrings(got.Extra), want.extra},
	} {
		var norm []string
		for _, w := range sec.want {
			norm = append(norm, strings.ToLower(normRR(t, w)))
		}
		var g []string
		for _, s := range sec.got {
			g = append(g, strings.ToLower(s))
		}
		if !slices.Equal(g, norm) {
			t.Errorf("%s: %s section\n got %q\nwant %q", what, sec.name, g, norm)
		}
	}
}
