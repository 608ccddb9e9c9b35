// Package netlab builds throwaway Linux networks out of network namespaces
// for end-to-end tests: hosts with real interfaces and addresses, L2
// switches, NAT routers with nftables masquerade and port forwards, and
// the events a home network goes through (the ISP hands out a new address,
// a cable is pulled, a router gets a new WAN address and forgets its NAT
// state). Tests run real programs inside the hosts with Host.Command or
// Lab.Start.
//
// # Safety
//
// Everything a lab makes lives in namespaces it created itself, named with
// a prefix unique to the lab ("nl<pid>-<random>-"): every veth pair is
// created directly between two of those namespaces and every bridge lives
// in a switch namespace of its own, so the root namespace's interfaces,
// routes and firewall are never touched and no packet can leave the
// machine. Hosts only get RFC 5737 documentation addresses
// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24); anything else is
// refused with ErrNotTestAddr.
//
// A lab removes what it made when its test ends, also when the test fails
// or panics: it kills the processes it started (by PID), then deletes its
// namespaces, then checks that none with its prefix is left. Sweep deletes
// a lab's leftovers by prefix.
//
// # Requirements
//
// Root (or CAP_SYS_ADMIN and CAP_NET_ADMIN), the ip command (Debian package
// iproute2) and the nft command (package nftables). Outside CI (the
// environment variable CI is not "true") New skips the test when one of
// them is missing; with CI=true it fails the test instead, so that CI can
// never pass by skipping.
//
// # Topology
//
//	lab := netlab.New(t)
//	wan, lan := lab.Switch("wan"), lab.Switch("lan")
//	pub := lab.Host("pub")
//	pub.Attach(wan, "203.0.113.50/24")
//	r := lab.Router("nat1", wan, "203.0.113.2/24", lan, "192.0.2.1/24")
//	pi := lab.Host("pi1")
//	pi.Attach(lan, "192.0.2.11/24")
//	pi.Route("default", "192.0.2.1")
//	p, err := lab.Start(pi.Command(ctx, "/path/to/buoy", "agent"))
//	r.SetWAN("203.0.113.9/24") // the ISP's new address; NAT state is lost
//
// Methods that build or change the topology fail the test on error (like
// httptest), so they must be called from the test's goroutine. Methods
// that run programs return errors, because a program failing is often what
// a test wants to see.
package netlab
