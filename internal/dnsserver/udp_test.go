package dnsserver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// udpLoops are the two ways ServeUDP serves a *net.UDPConn: batched (on
// Linux; elsewhere the same as the plain loop) and the plain loop that
// other connections and other systems get.
var udpLoops = []struct {
	name  string
	serve func(s *Server, ctx context.Context, uc *net.UDPConn, wg *sync.WaitGroup, sem chan struct{}) error
}{
	{"batch", (*Server).serveUDPBatch},
	{"loop", func(s *Server, ctx context.Context, uc *net.UDPConn, wg *sync.WaitGroup, sem chan struct{}) error {
		return s.serveUDPLoop(ctx, uc, wg, sem)
	}},
}

// runLoop runs one of udpLoops on uc and returns the function that stops
// it as ServeUDP does (cancel, and a read deadline in the past) and checks
// that it returned nil and left no goroutine behind; defer it before the
// socket's Close runs.
func runLoop(t *testing.T, name string, serve func(*Server, context.Context, *net.UDPConn, *sync.WaitGroup, chan struct{}) error, s *Server, uc *net.UDPConn) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wake := context.AfterFunc(ctx, func() { _ = uc.SetReadDeadline(time.Unix(1, 0)) })
	var wg sync.WaitGroup
	done := make(chan error, 1)
	go func() { done <- serve(s, ctx, uc, &wg, make(chan struct{}, 1)) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s returned %v after its context ended, want nil", name, err)
		}
		wg.Wait()
		wake()
	}
}

// TestServeUDPQueued sends a burst of queries before the server reads any,
// so that they wait in the socket together and are read in batches, and
// checks that each is answered once, correctly, over IPv4 and IPv6: fast
// answers, slow-path answers (sent back to the address the batch decoded)
// and no answer at all to garbage.
func TestServeUDPQueued(t *testing.T) {
	type query struct {
		raw   []byte
		rcode int // -1: no answer
		an    int
	}
	var queries []query
	for i := range 53 { // three batches of 16 and some
		var q query
		id := uint16(1000 + i)
		switch i % 5 {
		case 0, 1:
			m := testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 1232}.msg()
			m.Id = id
			q = query{raw: mustPack(t, m), rcode: dns.RcodeSuccess, an: 2}
		case 2:
			m := testQuery{name: "nope.example.org.", qtype: dns.TypeA}.msg()
			m.Id = id
			q = query{raw: mustPack(t, m), rcode: dns.RcodeNameError}
		case 3: // slow path: a meta type
			m := testQuery{name: "www.example.org.", qtype: dns.TypeMAILA}.msg()
			m.Id = id
			q = query{raw: mustPack(t, m), rcode: dns.RcodeNotImplemented}
		case 4: // garbage, too short for a header
			q = query{raw: []byte{byte(id >> 8), byte(id), 0}, rcode: -1}
		}
		queries = append(queries, q)
	}
	s := newTestServer(t, "")
	for _, network := range []struct{ net, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		for _, loop := range udpLoops {
			t.Run(network.net+"/"+loop.name, func(t *testing.T) {
				pc, err := net.ListenPacket(network.net, network.addr)
				if err != nil {
					t.Fatalf("listen %s: %v", network.addr, err)
				}
				defer pc.Close()
				uc := pc.(*net.UDPConn)
				c, err := net.DialUDP(network.net, nil, uc.LocalAddr().(*net.UDPAddr))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				want := map[uint16]query{}
				for _, q := range queries {
					if _, err := c.Write(q.raw); err != nil {
						t.Fatalf("send query: %v", err)
					}
					if q.rcode >= 0 {
						want[uint16(q.raw[0])<<8|uint16(q.raw[1])] = q
					}
				}

				defer runLoop(t, loop.name, loop.serve, s, uc)()

				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 2048)
				for len(want) > 0 {
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("read answer (%d missing): %v", len(want), err)
					}
					m := new(dns.Msg)
					if err := m.Unpack(buf[:n]); err != nil {
						t.Fatalf("unpack answer: %v", err)
					}
					q, ok := want[m.Id]
					if !ok {
						t.Fatalf("answer with ID %d: not asked, or answered twice", m.Id)
					}
					delete(want, m.Id)
					if m.Rcode != q.rcode || len(m.Answer) != q.an {
						t.Errorf("answer %d: rcode %s with %d records, want %s with %d",
							m.Id, dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[q.rcode], q.an)
					}
				}
				// Nothing more: garbage is not answered.
				_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := c.Read(buf); err == nil {
					t.Errorf("unexpected datagram of %d bytes after all answers", n)
				}
			})
		}
	}
}

func mustPack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack %v: %v", m.Question, err)
	}
	return b
}

// TestNameCaseUDPAndTCP asks in mixed case over real UDP and TCP sockets:
// both keep the question as the client wrote it (resolvers using the 0x20
// bits check it) and give the same records. The names in the records may
// differ in case only: UDP's fast path compresses them into the question,
// so they come back in the client's case, as NSD's and Knot's do; TCP and
// the slow path write them as stored.
func TestNameCaseUDPAndTCP(t *testing.T) {
	env := startServer(t, Config{}, TCPLimits{})
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"WwW.ExAmPlE.oRg.", dns.TypeA},     // fast path, answer
		{"NoPe.ExAmPlE.oRg.", dns.TypeA},    // fast path, NXDOMAIN with the SOA
		{"EXAMPLE.ORG.", dns.TypeSOA},       // fast path, the apex
		{"wWw.example.ORG.", dns.TypeMAILA}, // slow path over UDP too
		{"WWW.EXAMPLE.NET.", dns.TypeA},     // REFUSED
	} {
		for _, edns := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/edns=%v", q.name, dns.TypeToString[q.qtype], edns), func(t *testing.T) {
				var got [2]*dns.Msg
				for i, netw := range []string{"udp", "tcp"} {
					m := new(dns.Msg).SetQuestion(q.name, q.qtype)
					if edns {
						m.SetEdns0(1232, false)
					}
					r, _, err := (&dns.Client{Net: netw, Timeout: 5 * time.Second}).Exchange(m, env.addr)
					if err != nil {
						t.Fatalf("%s exchange: %v", netw, err)
					}
					if len(r.Question) != 1 || r.Question[0].Name != q.name {
						t.Errorf("%s question %v, want %q as asked", netw, r.Question, q.name)
					}
					got[i] = r
				}
				udp, tcp := got[0], got[1]
				if udp.Rcode != tcp.Rcode {
					t.Errorf("rcode %s over UDP, %s over TCP", dns.RcodeToString[udp.Rcode], dns.RcodeToString[tcp.Rcode])
				}
				for _, sec := range []struct {
					name     string
					udp, tcp []dns.RR
				}{{"answer", udp.Answer, tcp.Answer}, {"authority", udp.Ns, tcp.Ns}, {"additional", udp.Extra, tcp.Extra}} {
					u := strings.ToLower(strings.Join(rrStrings(sec.udp), "\n"))
					c := strings.ToLower(strings.Join(rrStrings(sec.tcp), "\n"))
					if u != c {
						t.Errorf("%s section over UDP:\n%s\nover TCP:\n%s", sec.name, u, c)
					}
				}
			})
		}
	}
}
