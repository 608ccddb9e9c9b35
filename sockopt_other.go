//go:build !unix

package buoy

import "syscall"

// reusePort is a no-op where SO_REUSEPORT does not exist: outgoing peer
// connections then use ephemeral ports.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
