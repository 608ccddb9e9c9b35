//go:build !unix

package dnsserver

import "syscall"

// reusePortSupported says whether ListenUDP can open several sockets on one
// address: not without SO_REUSEPORT.
const reusePortSupported = false

// reusePort does nothing where SO_REUSEPORT does not exist; ListenUDP then
// opens a single socket.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
