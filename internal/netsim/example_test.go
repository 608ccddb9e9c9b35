package netsim_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"buoy/internal/netsim"
)

// Two hosts talk; the server sees the client's source address as it would
// on a real network.
func Example() {
	n := netsim.New()
	home := n.AddHost("pi", netip.MustParseAddr("192.0.2.10"))
	vps := n.AddHost("vps", netip.MustParseAddr("198.51.100.7"))

	ln, err := vps.Listen("tcp", ":7300")
	if err != nil {
		panic(err)
	}
	defer ln.Close()

	c, err := home.DialContext(context.Background(), "tcp", "198.51.100.7:7300")
	if err != nil {
		panic(err)
	}
	s, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	fmt.Fprint(c, "hello")
	c.Close()
	msg, _ := io.ReadAll(s)
	fmt.Printf("%s from %s\n", msg, s.RemoteAddr())

	// An IP change on the home link: new connections come from the new address.
	home.SetAddrs(netip.MustParseAddr("192.0.2.99"))
	c2, err := home.DialContext(context.Background(), "tcp", "198.51.100.7:7300")
	if err != nil {
		panic(err)
	}
	defer c2.Close()
	s2, _ := ln.Accept()
	defer s2.Close()
	fmt.Println("now from", s2.RemoteAddr())
	// Output:
	// hello from 192.0.2.10:49152
	// now from 192.0.2.99:49153
}
