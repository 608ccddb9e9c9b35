//go:build unix

package dnsserver

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported says whether ListenUDP can open several sockets on one
// address.
const reusePortSupported = true

// reusePort sets SO_REUSEPORT on a socket before it is bound, so that several
// sockets share the address and the kernel balances datagrams over them.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return fmt.Errorf("set SO_REUSEPORT on %s %s: %w", network, address, err)
	}
	if serr != nil {
		return fmt.Errorf("set SO_REUSEPORT on %s %s: %w", network, address, serr)
	}
	return nil
}
