package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// packetRecorder is a net.PacketConn that keeps what is written to it.
type packetRecorder struct {
	mu  sync.Mutex
	out [][]byte
}

func (p *packetRecorder) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (p *packetRecorder) WriteTo(b []byte, _ net.Addr) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, append([]byte(nil), b...))
	return len(b), nil
}
func (p *packetRecorder) Close() error { return nil }
func (p *packetRecorder) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (p *packetRecorder) SetDeadline(time.Time) error      { return nil }
func (p *packetRecorder) SetReadDeadline(time.Time) error  { return nil }
func (p *packetRecorder) SetWriteDeadline(time.Time) error { return nil }

// udpExchange runs one packet through what ServeUDP does with it and
// returns the answers written (none, or one).
func udpExchange(s *Server, raw []byte) [][]byte {
	conn := &packetRecorder{}
	out := make([]byte, udpSize)
	n, res := s.answerFast(raw, out)
	switch res {
	case fastDone:
		return [][]byte{append([]byte(nil), out[:n]...)}
	case fastDrop:
		return nil
	}
	var wg sync.WaitGroup
	peer := udpPeer{conn: conn, addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
	s.serveSlowUDP(context.Background(), peer, raw, &wg, make(chan struct{}, 1))
	wg.Wait()
	return conn.out
}

func TestEDNS(t *testing.T) {
	s := newTestServer(t, "")
	t.Run("buffer size and DO", func(t *testing.T) {
		for _, do := range []bool{false, true} {
			m := testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 4096, do: do}.msg()
			for _, got := range answersBothWays(t, s, m) {
				opt := got.IsEdns0()
				if opt == nil {
					t.Fatalf("answer to an EDNS query has no OPT")
				}
				if opt.UDPSize() != udpSize || opt.Do() != do || opt.Version() != 0 {
					t.Errorf("OPT size %d DO %v version %d, want %d %v 0", opt.UDPSize(), opt.Do(), opt.Version(), udpSize, do)
				}
				if len(got.Answer) != 2 {
					t.Errorf("answer %v, want the two www A records", got.Answer)
				}
			}
		}
	})
	t.Run("no OPT without EDNS", func(t *testing.T) {
		m := testQuery{name: "www.example.org.", qtype: dns.TypeA}.msg()
		for _, got := range answersBothWays(t, s, m) {
			if got.IsEdns0() != nil {
				t.Errorf("answer to a query without EDNS has an OPT")
			}
		}
	})
	t.Run("unknown options ignored", func(t *testing.T) {
		m := testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 1232}.msg()
		opt := m.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte("hello")},
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		for _, got := range answersBothWays(t, s, m) {
			if got.Rcode != dns.RcodeSuccess || len(got.Answer) != 2 {
				t.Errorf("rcode %s answer %v, want NOERROR and two records", dns.RcodeToString[got.Rcode], got.Answer)
			}
			if o := got.IsEdns0(); o == nil || len(o.Option) != 0 {
				t.Errorf("OPT %v, want one without options", o)
			}
		}
	})
	t.Run("BADVERS", func(t *testing.T) {
		m := testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 1232}.msg()
		m.IsEdns0().SetVersion(1)
		if _, _, res := askFast(t, s, m); res != fastSlow {
			t.Fatalf("fast path = %v for EDNS version 1, want the slow path", res)
		}
		got := askSlow(t, s, m, false).msg
		if got.Rcode != dns.RcodeBadVers {
			t.Errorf("rcode %s, want BADVERS", dns.RcodeToString[got.Rcode])
		}
		if o := got.IsEdns0(); o == nil || o.Version() != 0 {
			t.Errorf("OPT %v, want version 0", o)
		}
		if len(got.Answer) != 0 {
			t.Errorf("answer %v, want none", got.Answer)
		}
	})
	t.Run("two OPT records", func(t *testing.T) {
		m := testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 1232}.msg()
		m.Extra = append(m.Extra, m.Extra[0])
		if _, _, res := askFast(t, s, m); res != fastSlow {
			t.Fatalf("fast path = %v for two OPTs, want the slow path", res)
		}
		if got := askSlow(t, s, m, false).msg; got.Rcode != dns.RcodeFormatError {
			t.Errorf("rcode %s, want FORMERR", dns.RcodeToString[got.Rcode])
		}
	})
}

// answersBothWays returns the slow path's answer and, if it answers, the
// fast path's.
func answersBothWays(t *testing.T, s *Server, m *dns.Msg) []*dns.Msg {
	t.Helper()
	out := []*dns.Msg{askSlow(t, s, m, false).msg}
	if f, _, res := askFast(t, s, m); res == fastDone {
		out = append(out, f)
	} else {
		t.Errorf("fast path = %v, want an answer", res)
	}
	return out
}

// bigZoneText adds names whose answers do not fit 512 bytes.
func bigZoneText() string {
	var b strings.Builder
	for i := range 12 {
		fmt.Fprintf(&b, "big IN TXT \"%02d-%s\"\n", i, strings.Repeat("x", 60))
	}
	for i := range 30 {
		fmt.Fprintf(&b, "huge IN TXT \"%02d-%s\"\n", i, strings.Repeat("y", 60))
	}
	for i := range 8 {
		fmt.Fprintf(&b, "manymx IN MX %d mx%d.manymx\n", i, i)
		for j := range 4 {
			fmt.Fprintf(&b, "mx%d.manymx IN AAAA 2001:db8::%d:%d\n", i, i, j)
		}
	}
	for i := range 13 {
		fmt.Fprintf(&b, "bigdeleg IN NS ns%d.bigdeleg\n", i)
		fmt.Fprintf(&b, "ns%d.bigdeleg IN A 192.0.2.%d\n", i, 100+i)
		fmt.Fprintf(&b, "ns%d.bigdeleg IN AAAA 2001:db8::%d\n", i, 100+i)
	}
	return b.String()
}

func TestTruncation(t *testing.T) {
	s := newTestServer(t, bigZoneText())
	tests := []struct {
		rule             string
		q                testQuery
		tc               bool
		answer, ns, xtra int
	}{
		{"udp 512 too small", testQuery{name: "big.example.org.", qtype: dns.TypeTXT}, true, 0, 0, 0},
		{"edns size fits", testQuery{name: "big.example.org.", qtype: dns.TypeTXT, edns: 1232}, false, 12, 0, 0},
		{"edns size too small", testQuery{name: "big.example.org.", qtype: dns.TypeTXT, edns: 600}, true, 0, 0, 0},
		{"edns size below 512 counts as 512", testQuery{name: "big.example.org.", qtype: dns.TypeTXT, edns: 100}, true, 0, 0, 0},
		{"edns size above ours capped", testQuery{name: "huge.example.org.", qtype: dns.TypeTXT, edns: 4096}, true, 0, 0, 0},
		{"tcp has it all", testQuery{name: "huge.example.org.", qtype: dns.TypeTXT, tcp: true}, false, 30, 0, 0},
		{"optional additional dropped without TC", testQuery{name: "manymx.example.org.", qtype: dns.TypeMX}, false, 8, 0, 0},
		{"optional additional kept when it fits", testQuery{name: "manymx.example.org.", qtype: dns.TypeMX, edns: 1232}, false, 8, 0, 32},
		{"required glue does not fit", testQuery{name: "www.bigdeleg.example.org.", qtype: dns.TypeA}, true, 0, 0, 0},
		{"required glue fits", testQuery{name: "www.bigdeleg.example.org.", qtype: dns.TypeA, edns: 1232}, false, 0, 13, 26},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			m := tc.q.msg()
			limit := dns.MaxMsgSize
			if !tc.q.tcp {
				limit = udpLimit(m.IsEdns0())
			}
			rec := askSlow(t, s, m, tc.q.tcp)
			answers := []*dns.Msg{rec.msg}
			sizes := []int{len(rec.wire)}
			if !tc.q.tcp {
				f, wire, res := askFast(t, s, m)
				if res != fastDone {
					t.Fatalf("fast path = %v, want an answer", res)
				}
				answers = append(answers, f)
				sizes = append(sizes, len(wire))
			}
			for i, got := range answers {
				path := []string{"ServeDNS", "fast path"}[i]
				if sizes[i] > limit {
					t.Errorf("%s: %d bytes, more than the client's %d", path, sizes[i], limit)
				}
				extra := len(got.Extra)
				if got.IsEdns0() != nil {
					extra--
				}
				if got.Truncated != tc.tc || len(got.Answer) != tc.answer || len(got.Ns) != tc.ns || extra != tc.xtra {
					t.Errorf("%s: TC %v answer %d authority %d additional %d, want %v %d %d %d",
						path, got.Truncated, len(got.Answer), len(got.Ns), extra, tc.tc, tc.answer, tc.ns, tc.xtra)
				}
			}
		})
	}
}

// rawQuery builds a query header and question by hand, for what miekg
// would refuse to pack.
func rawQuery(id uint16, flags uint16, qd, an, ns, ar uint16, rest ...byte) []byte {
	b := make([]byte, 12, 12+len(rest))
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	binary.BigEndian.PutUint16(b[10:], ar)
	return append(b, rest...)
}

func TestMalformed(t *testing.T) {
	s := newTestServer(t, "")
	question := []byte{3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0, 0, 1, 0, 1}
	tests := []struct {
		rule  string
		raw   []byte
		rcode int // -1: no answer at all
	}{
		{"empty", nil, -1},
		{"shorter than a header", []byte{1, 2, 3, 4, 5}, -1},
		{"a response", rawQuery(1, flagQR, 1, 0, 0, 0, question...), -1},
		{"header only, one question promised", rawQuery(1, flagRD, 1, 0, 0, 0), dns.RcodeFormatError},
		{"no question", rawQuery(1, flagRD, 0, 0, 0, 0), dns.RcodeFormatError},
		{"two questions", rawQuery(1, flagRD, 2, 0, 0, 0, append(append([]byte(nil), question...), question...)...), dns.RcodeFormatError},
		{"answer section in a query", rawQuery(1, flagRD, 1, 1, 0, 0, append(append([]byte(nil), question...),
			0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1)...), dns.RcodeFormatError},
		{"truncated question", rawQuery(1, flagRD, 1, 0, 0, 0, question[:10]...), dns.RcodeFormatError},
		{"label too long", rawQuery(1, flagRD, 1, 0, 0, 0, append([]byte{64}, make([]byte, 70)...)...), dns.RcodeFormatError},
		{"opcode status", rawQuery(1, 2<<11, 1, 0, 0, 0, question...), dns.RcodeNotImplemented},
		{"class chaos", rawQuery(1, 0, 1, 0, 0, 0, append(append([]byte(nil), question[:17]...), 0, 16, 0, 3)...), dns.RcodeRefused},
		{"well-formed", rawQuery(1, 0, 1, 0, 0, 0, question...), dns.RcodeSuccess},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			out := udpExchange(s, tc.raw)
			if tc.rcode < 0 {
				if len(out) != 0 {
					t.Fatalf("answered %x, want no answer", out)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("%d answers, want one", len(out))
			}
			b := out[0]
			if len(b) < 12 {
				t.Fatalf("answer %x shorter than a header", b)
			}
			if id := binary.BigEndian.Uint16(b); id != 1 {
				t.Errorf("answer ID %d, want 1", id)
			}
			if b[2]&0x80 == 0 {
				t.Errorf("answer without QR")
			}
			if rcode := int(b[3] & 0xF); rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[rcode], dns.RcodeToString[tc.rcode])
			}
		})
	}
}

func TestHeaderFlags(t *testing.T) {
	s := newTestServer(t, "")
	for _, rd := range []bool{false, true} {
		for _, cd := range []bool{false, true} {
			m := testQuery{name: "WWW.example.ORG.", qtype: dns.TypeA, noRD: !rd}.msg()
			m.CheckingDisabled = cd
			for _, got := range answersBothWays(t, s, m) {
				if got.RecursionDesired != rd || got.CheckingDisabled != cd || got.RecursionAvailable {
					t.Errorf("RD %v CD %v RA %v, want %v %v false", got.RecursionDesired, got.CheckingDisabled, got.RecursionAvailable, rd, cd)
				}
				if got.Question[0].Name != "WWW.example.ORG." {
					t.Errorf("question %q, want the client's case kept", got.Question[0].Name)
				}
			}
		}
	}
}

// TestCNAMEChainBound checks that a long chain inside the zone stops after
// maxChain CNAMEs have been followed.
func TestCNAMEChainBound(t *testing.T) {
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "c%d IN CNAME c%d\n", i, i+1)
	}
	b.WriteString("c20 IN A 192.0.2.20\n")
	s := newTestServer(t, b.String())
	for _, c := range []struct {
		name   string
		cnames int
		final  bool
	}{
		{"c0.example.org.", maxChain + 1, false},
		{"c12.example.org.", 8, true},
	} {
		m := testQuery{name: c.name, qtype: dns.TypeA}.msg()
		for _, got := range answersBothWays(t, s, m) {
			n, a := 0, 0
			for _, rr := range got.Answer {
				switch rr.Header().Rrtype {
				case dns.TypeCNAME:
					n++
				case dns.TypeA:
					a++
				}
			}
			if n != c.cnames || (a == 1) != c.final || got.Rcode != dns.RcodeSuccess {
				t.Errorf("%s A: %d CNAMEs, %d A, %s; want %d CNAMEs, final address %v, NOERROR",
					c.name, n, a, dns.RcodeToString[got.Rcode], c.cnames, c.final)
			}
		}
	}
}
