package dnsserver

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// testZoneText is the zone most query tests answer from, as an operator
// would write it.
const testZoneText = `
$ORIGIN example.org.
$TTL 300
@        IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
         IN NS  ns1.example.org.
         IN NS  ns2.example.org.
         IN MX  10 mail.example.org.
         IN A   192.0.2.1
ns1      IN A   192.0.2.53
ns2      IN A   192.0.2.54
ns2      IN AAAA 2001:db8::54
mail     IN A   192.0.2.25
www      IN A   192.0.2.10
www      IN A   192.0.2.11
www      IN AAAA 2001:db8::10
Mixed    IN A   192.0.2.77
alias    IN CNAME www
chain1   IN CNAME chain2
chain2   IN CNAME www
loop1    IN CNAME loop2
loop2    IN CNAME loop1
ext      IN CNAME www.example.net.
dangling IN CNAME nothere
*.wild   IN A   192.0.2.99
*.wild   IN TXT "wild"
exists.wild IN TXT "exact"
*.wc     IN CNAME www
a.b.ent  IN A   192.0.2.3
sub      IN NS  ns1.sub
sub      IN NS  ns2
sub      IN NS  ns.elsewhere.net.
ns1.sub  IN A   192.0.2.200
_sip._udp IN SRV 10 5 5060 sip
sip      IN A   192.0.2.60
txt      IN TXT "hello" "world"
caa      IN CAA 0 issue "letsencrypt.org"
ptr      IN PTR www
other    IN TYPE65280 \# 3 010203
web      IN CNAME leader
`

// loadTestZone parses zone-file text into a Zone.
func loadTestZone(t testing.TB, origin, text string, serial uint32) *Zone {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	z := &Zone{Origin: origin, Serial: serial}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		z.Records = append(z.Records, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse zone %s: %v", origin, err)
	}
	return z
}

// testRRs parses records in zone-file text.
func testRRs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("NewRR(%q): %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

// newTestServer serves testZoneText (extended with more text).
func newTestServer(t testing.TB, more string) *Server {
	t.Helper()
	s := New(Config{})
	if err := s.SetZone(loadTestZone(t, "example.org.", testZoneText+more, 2024010101), Overlay{}); err != nil {
		t.Fatalf("SetZone: %v", err)
	}
	return s
}

// queryRecorder is a dns.ResponseWriter that keeps what would go on the
// wire, for UDP or TCP.
type queryRecorder struct {
	tcp   bool
	wire  []byte
	msg   *dns.Msg
	count int
}

func (r *queryRecorder) LocalAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (r *queryRecorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}

func (r *queryRecorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}

func (r *queryRecorder) Write(b []byte) (int, error) {
	r.count++
	r.wire = append([]byte(nil), b...)
	r.msg = new(dns.Msg)
	if err := r.msg.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (r *queryRecorder) Close() error        { return nil }
func (r *queryRecorder) TsigStatus() error   { return nil }
func (r *queryRecorder) TsigTimersOnly(bool) {}
func (r *queryRecorder) Hijack()             {}

// testQuery describes one query.
type testQuery struct {
	name   string
	qtype  uint16
	edns   uint16 // EDNS buffer size; 0: no OPT
	do     bool
	tcp    bool
	noRD   bool
	opcode int
}

func (q testQuery) msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.Id = 0x4242
	m.RecursionDesired = !q.noRD
	m.Opcode = q.opcode
	if q.edns != 0 {
		m.SetEdns0(q.edns, q.do)
	}
	return m
}

// askSlow answers m through ServeDNS.
func askSlow(t testing.TB, s *Server, m *dns.Msg, tcp bool) *queryRecorder {
	t.Helper()
	rec := &queryRecorder{tcp: tcp}
	s.ServeDNS(rec, m)
	return rec
}

// askFast answers the packed m through the fast path; msg is nil when it
// passed the query on or dropped it.
func askFast(t testing.TB, s *Server, m *dns.Msg) (*dns.Msg, []byte, fastResult) {
	t.Helper()
	req, err := m.Pack()
	if err != nil {
		t.Fatalf("pack query: %v", err)
	}
	out := make([]byte, udpSize)
	n, res := s.answerFast(req, out)
	if res != fastDone {
		return nil, nil, res
	}
	got := new(dns.Msg)
	if err := got.Unpack(out[:n]); err != nil {
		t.Fatalf("fast answer to %s does not unpack: %v", m.Question[0].String(), err)
	}
	return got, out[:n], res
}

// rrStrings returns records as zone-file lines, OPT left out.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

// normRR brings a record line to the form rrStrings produces.
func normRR(t testing.TB, s string) string {
	t.Helper()
	return rrStrings(testRRs(t, s))[0]
}
