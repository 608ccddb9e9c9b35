package netsim_test

import (
	"context"
	"fmt"
	"net/netip"

	"buoy/internal/netsim"
)

// Two machines behind a home router reach a server; the server sees the
// router's public address, and after the ISP changes it, the new one.
func ExampleNetwork_AddNAT() {
	n := netsim.New()
	router := n.AddNAT("home", netsim.Cone, netip.MustParseAddr("203.0.113.5"))
	pi := router.AddHost("pi", netip.MustParseAddr("192.0.2.10"))
	router.AddHost("laptop", netip.MustParseAddr("192.0.2.11"))
	vps := n.AddHost("vps", netip.MustParseAddr("198.51.100.7"))

	ln, err := vps.Listen("tcp", ":7300")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	if _, err := pi.Listen("tcp", ":7300"); err != nil {
		panic(err)
	}

	// The node dials from its listening port, so the mapping is for that
	// socket and the vps learns where the pi can be reached.
	c, err := pi.Dialer(7300)(context.Background(), "tcp", "198.51.100.7:7300")
	if err != nil {
		panic(err)
	}
	s, _ := ln.Accept()
	fmt.Println("vps sees pi as", s.RemoteAddr())
	fmt.Println("router maps", router.Mappings()[0].Inside, "to", router.Mappings()[0].Public)

	router.SetPublic(netip.MustParseAddr("203.0.113.99"))
	_, err = c.Read(make([]byte, 1))
	fmt.Println("after the change:", err)
	s.Close()
	c.Close()

	c, err = pi.Dialer(7300)(context.Background(), "tcp", "198.51.100.7:7300")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	s, _ = ln.Accept()
	defer s.Close()
	fmt.Println("vps now sees pi as", s.RemoteAddr())
	// Output:
	// vps sees pi as 203.0.113.5:20000
	// router maps 192.0.2.10:7300 to 203.0.113.5:20000
	// after the change: read tcp 192.0.2.10:7300->198.51.100.7:7300: read: connection reset by peer
	// vps now sees pi as 203.0.113.99:20001
}
