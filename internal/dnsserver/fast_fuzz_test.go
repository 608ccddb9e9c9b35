package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzQuery feeds raw packets to what ServeUDP does with them (fast path,
// then the slow path) and to ServeDNS over TCP: never a panic, no answer
// without a header or to a response, and never a UDP answer larger than the
// client allowed (512 bytes, or its EDNS size).
func FuzzQuery(f *testing.F) {
	s := New(Config{TSIG: map[string]string{"xfr-key.": testTSIGSecret}})
	if err := s.SetZone(loadTestZone(f, "example.org.", testZoneText+bigZoneText(), 1), Overlay{}); err != nil {
		f.Fatal(err)
	}
	for i, m := range equivalenceQueries(s) {
		if i%17 != 0 {
			continue
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(rawQuery(7, 0, 2, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1))
	f.Add(rawQuery(7, 0, 1, 0, 0, 1, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 1, 0, 0, 0, 4, 0, 10, 0, 0))

	f.Fuzz(func(t *testing.T, raw []byte) {
		limit := dns.MinMsgSize
		req := new(dns.Msg)
		parsed := req.Unpack(raw) == nil
		if parsed {
			if opt := req.IsEdns0(); opt != nil {
				limit = max(limit, int(opt.UDPSize()))
			}
		}
		for _, out := range udpExchange(s, raw) {
			if len(raw) < 12 || raw[2]&0x80 != 0 {
				t.Fatalf("answered %x to a packet without a query header", raw)
			}
			if len(out) > limit {
				t.Fatalf("UDP answer of %d bytes to a client allowing %d", len(out), limit)
			}
			if len(out) < 12 || out[0] != raw[0] || out[1] != raw[1] || out[2]&0x80 == 0 {
				t.Fatalf("answer %x does not answer the query's ID", out)
			}
		}
		if parsed {
			s.ServeDNS(&queryRecorder{tcp: true}, req)
		}
	})
}

// fuzzNames and fuzzRData are the building blocks FuzzCompile assembles
// zones from, so that the fuzzer explores zone structure (wildcards,
// delegations, chains, empty non-terminals, case) rather than the master
// file syntax, which the zonefile package fuzzes.
var (
	fuzzNames = [...]string{"@", "a", "b.a", "*.a", "*", "c.*", "x.b.a", "d", "ns.d", "*.d", "E.a", "e.a", "f.ns.d", "*.b.a"}
	fuzzRData = [...]func(target string, n byte) string{
		func(_ string, n byte) string { return fmt.Sprintf("A 192.0.2.%d", n) },
		func(_ string, n byte) string { return fmt.Sprintf("AAAA 2001:db8::%d", n) },
		func(t string, _ byte) string { return "CNAME " + t },
		func(t string, _ byte) string { return "NS " + t },
		func(t string, n byte) string { return fmt.Sprintf("MX %d %s", n, t) },
		func(t string, n byte) string { return fmt.Sprintf("SRV 0 0 %d %s", n, t) },
		func(_ string, n byte) string { return fmt.Sprintf("TXT \"%s\"", strings.Repeat("t", int(n))) },
		func(t string, _ byte) string { return "PTR " + t },
		func(_ string, n byte) string { return fmt.Sprintf("DS %d 8 2 %064x", n, n) },
	}
)

// fuzzZone builds zone-file text from shape, three bytes a record.
func fuzzZone(shape []byte) string {
	var b strings.Builder
	b.WriteString("$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns.d hostmaster 1 2 3 4 60\n")
	for i := 0; i+2 < len(shape) && i < 3*64; i += 3 {
		owner := fuzzNames[int(shape[i])%len(fuzzNames)]
		target := fuzzNames[int(shape[i+2])%len(fuzzNames)]
		rdata := fuzzRData[int(shape[i+1])%len(fuzzRData)](target, shape[i+2])
		fmt.Fprintf(&b, "%s IN %s\n", owner, rdata)
	}
	return b.String()
}

// FuzzCompile compiles zones (zone-file text plus records assembled from
// shape), with the same records again as the overlay, and asks every name
// for a few types: never a panic, and the fast path always agrees with
// ServeDNS.
func FuzzCompile(f *testing.F) {
	f.Add(testZoneText, []byte{})
	f.Add(bigZoneText(), []byte{})
	f.Add("", []byte{4, 2, 1, 1, 2, 6, 6, 0, 0, 7, 3, 8, 8, 0, 1, 2, 2, 3})
	f.Add("", []byte{1, 3, 8, 9, 0, 1, 3, 2, 0, 0, 2, 5, 5, 2, 0, 2, 2, 2})
	f.Add("* IN CNAME x\nx IN CNAME *.y\n*.y IN A 192.0.2.1\n", []byte{})
	f.Add("d IN NS ns.d\nns.d IN A 192.0.2.1\n*.d IN A 192.0.2.2\n* IN NS d\n", []byte{})
	f.Add("@ IN CNAME @\nq\\.r IN A 192.0.2.1\nQ IN MX 0 .\n", []byte{})

	f.Fuzz(checkCompile)
}

// checkCompile is FuzzCompile's check of one input.
func checkCompile(t *testing.T, text string, shape []byte) {
	text = fuzzZone(shape) + text
	zp := dns.NewZoneParser(strings.NewReader(text), "example.org.", "")
	z := &Zone{Origin: "example.org.", Serial: 9}
	for rr, ok := zp.Next(); ok && len(z.Records) < 64; rr, ok = zp.Next() {
		z.Records = append(z.Records, rr)
	}
	if zp.Err() != nil {
		return
	}
	for _, ov := range []Overlay{{}, {TTL: 5, Records: z.Records}} {
		s := New(Config{})
		if err := s.SetZone(z, ov); err != nil {
			return
		}
		var names []string
		for _, rr := range z.Records {
			n := rr.Header().Name
			if !slices.Contains(names, n) {
				names = append(names, n, "zz."+n)
			}
		}
		for _, n := range names {
			for _, qt := range []uint16{dns.TypeA, dns.TypeANY, dns.TypeMX, dns.TypeDS} {
				m := testQuery{name: n, qtype: qt, edns: 1232}.msg()
				rec := askSlow(t, s, m, false)
				f, wire, res := askFast(t, s, m)
				if res != fastDone {
					continue
				}
				if len(wire) > udpSize {
					t.Fatalf("%s: fast answer of %d bytes", m.Question[0].String(), len(wire))
				}
				if got, want := strings.ToLower(f.String()), strings.ToLower(rec.msg.String()); got != want {
					t.Fatalf("%s: fast path\n%s\nServeDNS\n%s", m.Question[0].String(), got, want)
				}
			}
		}
	}
}
