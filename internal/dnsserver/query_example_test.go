package dnsserver_test

import (
	"context"
	"fmt"
	"net"
	"strings"

	"buoy/internal/dnsserver"

	"github.com/miekg/dns"
)

// A zone from master-file text, a live name from the overlay, and a query
// over UDP on loopback.
func ExampleServer_ServeUDP() {
	zp := dns.NewZoneParser(strings.NewReader(`
@    3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 60
@    3600 IN NS  ns1
ns1  3600 IN A   192.0.2.53
www  300  IN CNAME leader
`), "example.org.", "")
	z := &dnsserver.Zone{Origin: "example.org.", Serial: 42}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		z.Records = append(z.Records, rr)
	}
	leader, _ := dns.NewRR("leader.example.org. 0 IN A 192.0.2.7")

	s := dnsserver.New(dnsserver.Config{})
	if err := s.SetZone(z, dnsserver.Overlay{TTL: 5, Records: []dns.RR{leader}}); err != nil {
		fmt.Println(err)
		return
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(ctx, pc) }()
	defer func() { cancel(); <-done }()

	m := new(dns.Msg)
	m.SetQuestion("WWW.example.org.", dns.TypeA)
	r, err := dns.Exchange(m, pc.LocalAddr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(dns.RcodeToString[r.Rcode], r.Authoritative)
	for _, rr := range r.Answer {
		fmt.Println(strings.ToLower(strings.ReplaceAll(rr.String(), "\t", " ")))
	}
	// Output:
	// NOERROR true
	// www.example.org. 300 in cname leader.example.org.
	// leader.example.org. 5 in a 192.0.2.7
}
