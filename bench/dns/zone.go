package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// zoneSpec says what zone to generate.
type zoneSpec struct {
	origin     string // with the final dot
	minNames   int    // at least this many owner names
	minRecords int    // and at least this many records
	serial     uint32
	// changeAddr is the address of change.<origin> A, the record the
	// change test rewrites.
	changeAddr string
}

// query is one line of a dnsperf query file.
type query struct {
	name, qtype string
}

// zone is a generated zone: its text, its size and the questions that
// have an answer in it.
type zone struct {
	text     string
	names    int // owner names
	records  int
	types    map[string]int // records per type
	positive []query        // every (name, type) that has an answer or NODATA
	probe    query          // a question that only a fully loaded zone answers
}

// genZone builds a zone of mixed types, the same for the same spec. Names
// come in a fixed cycle of ten kinds, so every type is spread over the
// whole zone: hosts with one or two A and an AAAA, CNAMEs to hosts, MX,
// TXT, SRV, names with several types, and AAAA-only names (asked for A
// too: NODATA).
func genZone(spec zoneSpec) zone {
	o := spec.origin
	z := zone{types: map[string]int{}}
	var b strings.Builder
	rr := func(owner string, ttl int, typ, rdata string) {
		fmt.Fprintf(&b, "%s\t%d\tIN\t%s\t%s\n", owner, ttl, typ, rdata)
		z.records++
		z.types[typ]++
	}
	ask := func(owner, typ string) {
		name := owner + "." + o
		if owner == "@" {
			name = o
		}
		z.positive = append(z.positive, query{name, typ})
	}
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 3600\n", o)
	rr("@", 3600, "SOA", fmt.Sprintf("ns1 hostmaster %d 3600 600 86400 300", spec.serial))
	rr("@", 3600, "NS", "ns1")
	rr("@", 3600, "NS", "ns2")
	rr("@", 3600, "MX", "10 mx1")
	rr("@", 3600, "MX", "20 mx2")
	rr("@", 3600, "TXT", `"v=spf1 mx -all"`)
	rr("ns1", 3600, "A", "192.0.2.1")
	rr("ns2", 3600, "A", "192.0.2.2")
	rr("mx1", 3600, "A", "192.0.2.3")
	rr("mx2", 3600, "A", "192.0.2.4")
	rr("change", 60, "A", spec.changeAddr)
	for _, q := range []query{{"@", "SOA"}, {"@", "NS"}, {"@", "MX"}, {"@", "TXT"}, {"ns1", "A"}, {"mx1", "A"}} {
		ask(q.name, q.qtype)
	}
	z.names = 6
	host := func(i int) string { return fmt.Sprintf("host-%d", i-i%10) }
	v4 := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	v6 := func(i int) string { return fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff) }
	last := ""
	for i := 0; z.names < spec.minNames || z.records < spec.minRecords; i++ {
		switch i % 10 {
		case 0, 1, 2, 3:
			n := fmt.Sprintf("host-%d", i)
			rr(n, 300, "A", v4(i))
			if i%2 == 0 {
				rr(n, 300, "A", v4(i+1<<20))
			}
			rr(n, 300, "AAAA", v6(i))
			ask(n, "A")
			ask(n, "AAAA")
			last = n
		case 4:
			n := fmt.Sprintf("www-%d", i)
			rr(n, 300, "CNAME", host(i))
			ask(n, "A") // answered through the CNAME
			ask(n, "CNAME")
			last = n
		case 5:
			n := fmt.Sprintf("mail-%d", i)
			rr(n, 300, "MX", "10 "+host(i))
			rr(n, 300, "MX", "20 mx1")
			ask(n, "MX")
			last = n
		case 6:
			n := fmt.Sprintf("txt-%d", i)
			rr(n, 300, "TXT", fmt.Sprintf(`"site-verification=%08x" "k=%d"`, uint32(i)*2654435761, i))
			ask(n, "TXT")
			last = n
		case 7:
			n := fmt.Sprintf("_svc-%d._tcp", i)
			rr(n, 300, "SRV", fmt.Sprintf("10 5 %d %s", 1024+i%60000, host(i)))
			ask(n, "SRV")
			last = n
		case 8:
			n := fmt.Sprintf("multi-%d", i)
			rr(n, 300, "A", v4(i))
			rr(n, 300, "TXT", fmt.Sprintf(`"id=%d"`, i))
			rr(n, 300, "MX", "10 mx2")
			ask(n, "A")
			ask(n, "TXT")
			ask(n, "MX")
			last = n
		case 9:
			n := fmt.Sprintf("v6-%d", i)
			rr(n, 300, "AAAA", v6(i))
			ask(n, "AAAA")
			ask(n, "A") // NODATA
			last = n
		}
		z.names++
	}
	z.text = b.String()
	z.probe = query{last + "." + o, "ANY"}
	for _, q := range z.positive {
		if q.name == last+"."+o {
			z.probe = q
			break
		}
	}
	return z
}

// writeQueries writes n lines of a dnsperf query file: questions drawn at
// random from the zone's, and a share nx of names that do not exist
// (NXDOMAIN), in a fixed order for a given seed.
func writeQueries(w io.Writer, z zone, origin string, n int, nx float64, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b strings.Builder
	types := []string{"A", "AAAA", "MX", "TXT"}
	for i := range n {
		if r.Float64() < nx {
			// Half under the apex, half below an existing name.
			if i%2 == 0 {
				fmt.Fprintf(&b, "nx-%x.%s %s\n", r.Uint32(), origin, types[r.IntN(len(types))])
			} else {
				q := z.positive[r.IntN(len(z.positive))]
				fmt.Fprintf(&b, "nx-%x.%s %s\n", r.Uint32()&0xffff, q.name, types[r.IntN(len(types))])
			}
			continue
		}
		q := z.positive[r.IntN(len(z.positive))]
		fmt.Fprintf(&b, "%s %s\n", q.name, q.qtype)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
