//go:build unix

package buoy

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets the peer listener and outgoing peer connections share
// the listening port. Dialing from the port we listen on makes the NAT in
// front of us show peers one mapping for all our links, which is what
// tells a cone NAT from a symmetric one.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
