//go:build !linux

package dnsserver

import (
	"context"
	"net"
	"sync"
)

// serveUDPBatch is ServeUDP for a *net.UDPConn. Batched system calls
// (udp_linux.go) are Linux only; elsewhere it is the plain loop.
func (s *Server) serveUDPBatch(ctx context.Context, uc *net.UDPConn, wg *sync.WaitGroup, sem chan struct{}) error {
	return s.serveUDPLoop(ctx, uc, wg, sem)
}

// setRecvBuffer sets uc's receive buffer to n bytes, or what the system
// allows; it is best effort.
func setRecvBuffer(uc *net.UDPConn, n int) { _ = uc.SetReadBuffer(n) }
