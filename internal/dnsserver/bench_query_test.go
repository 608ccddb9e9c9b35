package dnsserver

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// benchQueries are the query kinds the benchmarks run.
var benchQueries = []testQuery{
	{name: "www.example.org.", qtype: dns.TypeA, edns: 1232},
	{name: "nope.example.org.", qtype: dns.TypeA, edns: 1232},
	{name: "host.wild.example.org.", qtype: dns.TypeA, edns: 1232},
	{name: "host.sub.example.org.", qtype: dns.TypeA, edns: 1232},
	{name: "alias.example.org.", qtype: dns.TypeA},
}

func benchName(q testQuery) string {
	return strings.TrimSuffix(q.name, ".example.org.") + "/" + dns.TypeToString[q.qtype]
}

// BenchmarkFastPath measures the fast path from raw query to raw answer.
func BenchmarkFastPath(b *testing.B) {
	s := newTestServer(b, "")
	for _, q := range benchQueries {
		b.Run(benchName(q), func(b *testing.B) {
			req, err := q.msg().Pack()
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, udpSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, res := s.answerFast(req, out); res != fastDone {
					b.Fatalf("fast path = %v", res)
				}
			}
		})
	}
}

// packWriter is a ResponseWriter that packs into a reused buffer, as a
// miekg server does before writing to its socket.
type packWriter struct {
	queryRecorder
	buf []byte
}

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	w.buf = b
	return err
}

// BenchmarkServeDNS measures the slow path the same way: unpack the raw
// query, ServeDNS, pack the answer.
func BenchmarkServeDNS(b *testing.B) {
	s := newTestServer(b, "")
	for _, q := range benchQueries {
		b.Run(benchName(q), func(b *testing.B) {
			req, err := q.msg().Pack()
			if err != nil {
				b.Fatal(err)
			}
			w := &packWriter{buf: make([]byte, dns.MaxMsgSize)}
			b.ReportAllocs()
			for b.Loop() {
				m := new(dns.Msg)
				if err := m.Unpack(req); err != nil {
					b.Fatal(err)
				}
				s.ServeDNS(w, m)
			}
		})
	}
}

// BenchmarkServeUDP measures a round trip over loopback through ServeUDP:
// the client's send and receive and the server's loop. Its allocations
// count both sides.
func BenchmarkServeUDP(b *testing.B) { benchServeUDP(b, "127.0.0.1:0") }

// BenchmarkServeUDPWildcard is BenchmarkServeUDP with the server bound to
// the wildcard address, as "--dns-addr :53" binds it: a dual-stack socket
// that reads each query's destination address and answers from it.
func BenchmarkServeUDPWildcard(b *testing.B) { benchServeUDP(b, "0.0.0.0:0") }

// benchServeUDP is BenchmarkServeUDP with the server listening on laddr
// and the client sending to 127.0.0.1.
func benchServeUDP(b *testing.B, laddr string) {
	c := serveUDPClient(b, laddr, nil)
	req, err := benchQueries[0].msg().Pack()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 2048)
	// One exchange first, so that ServeUDP's buffers (allocated once per
	// socket) are not counted as the queries' allocations.
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Read(buf); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeUDPBurst measures ServeUDP's throughput when queries wait
// in the socket together, as under load: each iteration sends a burst of
// 32 queries and then reads the 32 answers. ns/query is the round trip of
// the burst divided by its queries.
func BenchmarkServeUDPBurst(b *testing.B) { benchServeUDPBurst(b, "127.0.0.1:0") }

// BenchmarkServeUDPBurstWildcard is BenchmarkServeUDPBurst with the server
// bound to the wildcard address (see BenchmarkServeUDPWildcard).
func BenchmarkServeUDPBurstWildcard(b *testing.B) { benchServeUDPBurst(b, "0.0.0.0:0") }

// benchServeUDPBurst is BenchmarkServeUDPBurst with the server listening on
// laddr and the client sending to 127.0.0.1.
func benchServeUDPBurst(b *testing.B, laddr string) {
	const burst = 32
	c := serveUDPClient(b, laddr, nil)
	req, err := benchQueries[0].msg().Pack()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 2048)
	exchange := func() {
		for range burst {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
		}
		for range burst {
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	exchange() // ServeUDP's buffers are allocated once, not per query
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burst), "ns/query")
}

// loopbackTo returns 127.0.0.1 with pc's port: where a client reaches a
// server bound to 127.0.0.1 or to the wildcard address.
// serveUDPClient serves the test zone over UDP on laddr until the test
// ends (it then checks that ServeUDP ended cleanly) and returns a client
// connected to it through dst (127.0.0.1 if nil). A connected socket also
// checks the source: the kernel drops datagrams from any other address
// than the one it is connected to.
func serveUDPClient(tb testing.TB, laddr string, dst net.IP) *net.UDPConn {
	tb.Helper()
	s := newTestServer(tb, "")
	pc, err := net.ListenPacket("udp", laddr)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(ctx, pc) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("ServeUDP: %v", err)
		}
		pc.Close()
	})
	to := loopbackTo(pc)
	if dst != nil {
		to.IP = dst
	}
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func loopbackTo(pc net.PacketConn) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pc.LocalAddr().(*net.UDPAddr).Port}
}

// largeZone returns a zone of about n records of mixed types.
func largeZone(tb testing.TB, n int) *Zone {
	tb.Helper()
	var b strings.Builder
	b.WriteString("$ORIGIN big.example.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n")
	for i := 0; b.Len() > 0 && i < n/4; i++ {
		fmt.Fprintf(&b, "h%d IN A 192.0.2.%d\n", i, i%250)
		fmt.Fprintf(&b, "h%d IN AAAA 2001:db8::%x\n", i, i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "h%d IN MX 10 h%d\n", i, i+1)
		case 1:
			fmt.Fprintf(&b, "c%d IN CNAME h%d\n", i, i)
		case 2:
			fmt.Fprintf(&b, "h%d IN TXT \"v=spf1 -all %d\"\n", i, i)
		case 3:
			fmt.Fprintf(&b, "_s%d._tcp IN SRV 0 0 443 h%d\n", i, i)
		}
		fmt.Fprintf(&b, "n%d.sub%d IN A 192.0.2.%d\n", i, i%100, i%250)
	}
	return loadTestZone(tb, "big.example.", b.String(), 1)
}

// BenchmarkCompile measures compiling a 100,000-record zone, and reports
// the heap it keeps.
func BenchmarkCompile(b *testing.B) {
	z := largeZone(b, 100_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := compile(z, Overlay{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v, _ := compile(z, Overlay{})
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-view")
	b.ReportMetric(float64(len(z.Records)), "records")
	runtime.KeepAlive(v)
}

// BenchmarkSetOverlay measures an overlay change (a node's address) on a
// 100,000-record zone whose records depend on the overlay in a few places,
// and BenchmarkSetZone a one-record change to the same zone.
func BenchmarkSetOverlay(b *testing.B) {
	z := largeZone(b, 100_000)
	z.Records = append(z.Records, testRRs(b, "www.big.example. 300 IN CNAME leader.big.example.", "big.example. 300 IN MX 10 pi1.nodes.big.example.")...)
	s := New(Config{})
	ov := func(i int) Overlay {
		return Overlay{TTL: 5, Records: testRRs(b,
			fmt.Sprintf("leader.big.example. 0 IN A 192.0.2.%d", i%250),
			fmt.Sprintf("pi1.nodes.big.example. 0 IN A 192.0.2.%d", i%250),
			"pi2.nodes.big.example. 0 IN A 192.0.2.2")}
	}
	if err := s.SetZone(z, ov(0)); err != nil {
		b.Fatal(err)
	}
	b.Run("overlay", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := s.SetOverlay("big.example.", ov(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("zone", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			z.Records[len(z.Records)-1] = testRRs(b, fmt.Sprintf("x.big.example. 300 IN A 192.0.2.%d", i%250))[0]
			if err := s.SetZone(z, ov(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
