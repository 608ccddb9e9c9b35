//go:build linux

package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Why this file exists. At a moderate load (20k queries per second, a
// packet every 50 µs) the server goes idle between packets, and profiles of
// the plain loop (serveUDPLoop) showed that most of its CPU time was then
// not DNS at all but the Go runtime's idle and wake-up path. Each
// recvfrom/sendto made through package net (syscall.Syscall) enters the
// runtime's syscall bookkeeping, which wakes the sysmon thread whenever it
// sleeps because every P was idle; sysmon then polls with 20 µs sleeps
// until it finds the process idle again, once per packet: 25-30% of the
// server's CPU time. This loop makes its non-blocking system calls with
// RawSyscall6, which leaves the runtime (and sysmon) alone, and parks in
// the netpoller only when the socket is empty. It reads and writes with
// recvmmsg and sendmmsg: under dnsperf at 20k qps a wake-up found 2 to 4
// queries waiting, and at full load a batch of 16 costs two system calls
// instead of 32. golang.org/x/net/ipv4's ReadBatch batches too, but through
// syscall.Syscall6, and turns every sender's address into a net.Addr (an
// allocation per datagram).

// udpBatchLen is the most datagrams one recvmmsg or sendmmsg moves (Knot
// reads 10 at a time, NSD 100). Each takes a buffer of the largest
// datagram, 1 MiB in all per socket; the kernel writes only what arrives,
// so little of it is ever resident.
const udpBatchLen = 16

// busyReads is the number of reads in a row that find data waiting after
// which one read goes through syscall.Syscall6 after all. Under sustained
// load the loop never parks, and a sysmon that went to sleep while the
// process was idle must be woken (by the runtime's syscall entry) to
// preempt it and poll the network for the node's other goroutines, as it
// does for any busy goroutine. The cost is one ordinary system call in
// busyReads, and only under load.
const busyReads = 8

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2), which
// golang.org/x/sys/unix does not define. Go lays it out as C does (64 bytes
// on 64-bit systems, 32 on 32-bit ones); TestMmsghdrLayout checks it.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // bytes received or sent
}

// udpBatch holds the buffers and message headers of one socket's batched
// loop, allocated once. The headers point into the buffers; all of it is on
// the heap, where the garbage collector does not move it, and referenced
// from here, so it stays alive while the kernel uses it.
type udpBatch struct {
	rc syscall.RawConn

	in            [udpBatchLen][]byte // queries, dns.MaxMsgSize each: never truncated
	out           [udpBatchLen][]byte // fast-path answers, udpSize each
	peer          [udpBatchLen]unix.RawSockaddrInet6
	inIov, outIov [udpBatchLen]unix.Iovec
	rmsg, smsg    [udpBatchLen]mmsghdr

	// pktinfo is pktinfoOff on a socket bound to one address. On a
	// wildcard socket each query's destination address arrives in rctl,
	// and each answer carries it as its source address in sctl.
	pktinfo    pktinfoFamily
	rctl, sctl [udpBatchLen][pktinfoSpace]byte

	// What readFn and writeFn work on and return. The two functions are
	// built once: a closure made per call would escape to the heap (RawConn
	// is an interface) and allocate for every batch.
	nread       int
	nsend, sent int
	errno       syscall.Errno
	busy        int // reads in a row that found data
	readFn      func(fd uintptr) bool
	writeFn     func(fd uintptr) bool
}

// newUDPBatch prepares batched reading and writing on uc, with the
// control messages of family fam (see enablePktinfo).
func newUDPBatch(uc *net.UDPConn, fam pktinfoFamily) (*udpBatch, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw udp socket %s: %w", uc.LocalAddr(), err)
	}
	b := &udpBatch{rc: rc, pktinfo: fam}
	in := make([]byte, udpBatchLen*dns.MaxMsgSize)
	out := make([]byte, udpBatchLen*udpSize)
	for i := range udpBatchLen {
		b.in[i] = in[i*dns.MaxMsgSize : (i+1)*dns.MaxMsgSize : (i+1)*dns.MaxMsgSize]
		b.out[i] = out[i*udpSize : (i+1)*udpSize : (i+1)*udpSize]
		b.inIov[i].Base = &b.in[i][0]
		b.inIov[i].SetLen(dns.MaxMsgSize)
		b.rmsg[i].hdr.Name = (*byte)(unsafe.Pointer(&b.peer[i]))
		b.rmsg[i].hdr.Iov = &b.inIov[i]
		b.rmsg[i].hdr.SetIovlen(1)
		if fam != pktinfoOff {
			b.rmsg[i].hdr.Control = &b.rctl[i][0]
		}
		b.outIov[i].Base = &b.out[i][0]
		b.smsg[i].hdr.Iov = &b.outIov[i]
		b.smsg[i].hdr.SetIovlen(1)
	}
	b.readFn = b.recv
	b.writeFn = b.send
	return b, nil
}

// recv is the RawConn.Read function: it reads what is waiting, or reports
// that there is nothing so that RawConn.Read parks until there is.
func (b *udpBatch) recv(fd uintptr) bool {
	for {
		var (
			r uintptr
			e syscall.Errno
		)
		if b.busy < busyReads {
			r, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rmsg[0])), udpBatchLen, unix.MSG_DONTWAIT, 0, 0)
		} else {
			b.busy = 0
			r, _, e = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rmsg[0])), udpBatchLen, unix.MSG_DONTWAIT, 0, 0)
		}
		switch e {
		case 0:
			b.nread = int(r)
			b.busy++
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			b.busy = 0
			return false
		default:
			b.errno = e
			return true
		}
	}
}

// send is the RawConn.Write function: it sends the queued answers,
// or reports that the socket's buffer is full so that RawConn.Write parks
// until it is not.
func (b *udpBatch) send(fd uintptr) bool {
	for b.sent < b.nsend {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.smsg[b.sent])), uintptr(b.nsend-b.sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == 0 && r > 0:
			b.sent += int(r)
		case e == unix.EINTR:
		case e == unix.EAGAIN:
			return false
		default:
			// The first datagram left could not be sent (sendmmsg
			// reports the error of the first one it fails on, and
			// nothing after it was sent): like a lost packet, the
			// client asks again.
			b.sent++
		}
	}
	return true
}

// read waits for queries and reads up to udpBatchLen of them; it returns
// how many.
func (b *udpBatch) read() (int, error) {
	for i := range b.rmsg {
		// The kernel overwrote them with the sizes of what it wrote.
		b.rmsg[i].hdr.Namelen = unix.SizeofSockaddrInet6
		if b.pktinfo != pktinfoOff {
			b.rmsg[i].hdr.SetControllen(pktinfoSpace)
		}
	}
	b.nread, b.errno = 0, 0
	if err := b.rc.Read(b.readFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", b.errno)
	}
	return b.nread, nil
}

// query returns the i-th query of the last read, or nil for one that did
// not fit its buffer (not possible with buffers of the largest datagram
// size, checked all the same).
func (b *udpBatch) query(i int) []byte {
	if b.rmsg[i].hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil
	}
	return b.in[i][:b.rmsg[i].n]
}

// next returns the buffer for the next answer to queue.
func (b *udpBatch) next() []byte { return b.out[b.nsend] }

// queue sends the n bytes written into next() to the sender of the i-th
// query, at the next flush.
func (b *udpBatch) queue(i, n int) {
	k := b.nsend
	b.outIov[k].SetLen(n)
	b.smsg[k].hdr.Name = (*byte)(unsafe.Pointer(&b.peer[i]))
	b.smsg[k].hdr.Namelen = b.rmsg[i].hdr.Namelen
	if b.pktinfo != pktinfoOff {
		n := 0
		if src, ok := b.source(i); ok {
			n = putPktinfo(b.sctl[k][:], b.pktinfo, src)
		}
		if n > 0 {
			b.smsg[k].hdr.Control = &b.sctl[k][0]
		} else {
			b.smsg[k].hdr.Control = nil
		}
		b.smsg[k].hdr.SetControllen(n)
	}
	b.nsend++
}

// source returns the address the answer to the i-th query should come
// from: the address the query was sent to, on a wildcard socket.
func (b *udpBatch) source(i int) (netip.Addr, bool) {
	if b.pktinfo == pktinfoOff {
		return netip.Addr{}, false
	}
	n := min(int(b.rmsg[i].hdr.Controllen), pktinfoSpace)
	return replySource(parsePktinfo(b.rctl[i][:n]))
}

// flush sends the queued answers.
func (b *udpBatch) flush() error {
	if b.nsend == 0 {
		return nil
	}
	b.sent = 0
	err := b.rc.Write(b.writeFn)
	b.nsend = 0
	return err
}

// peerAddr returns the sender of the i-th query.
func (b *udpBatch) peerAddr(i int) (netip.AddrPort, bool) {
	return sockaddrAddrPort(&b.peer[i], b.rmsg[i].hdr.Namelen)
}

// sockaddrAddrPort converts a socket address filled in by the kernel, n
// bytes of it, as net does: an IPv6 socket's IPv4-mapped addresses stay
// mapped, and a scope becomes a numeric zone.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch {
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), netPort(&sa4.Port)), true
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, netPort(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// netPort reads a port stored in network byte order.
func netPort(p *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:])
}

// serveUDPBatch is ServeUDP for a *net.UDPConn: batches of queries read
// with recvmmsg, their fast-path answers sent with one sendmmsg, and no
// allocation for either. Packets for the slow path are handled as
// serveUDPLoop does, answered through uc's own methods.
func (s *Server) serveUDPBatch(ctx context.Context, uc *net.UDPConn, wg *sync.WaitGroup, sem chan struct{}) error {
	b, err := newUDPBatch(uc, s.servePktinfo(uc))
	if err != nil {
		s.log.Debug("dns udp without batches", "err", err)
		return s.serveUDPLoop(ctx, uc, wg, sem)
	}
	for {
		n, err := b.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve udp %s: %w", uc.LocalAddr(), err)
		}
		for i := range n {
			req := b.query(i)
			if req == nil {
				continue
			}
			m, res := s.answerFast(req, b.next())
			switch res {
			case fastDone:
				b.queue(i, m)
			case fastSlow:
				if ap, ok := b.peerAddr(i); ok {
					peer := udpPeer{conn: uc, addr: net.UDPAddrFromAddrPort(ap)}
					if src, ok := b.source(i); ok {
						peer.setSource(b.pktinfo, src)
					}
					s.serveSlowUDP(ctx, peer, req, wg, sem)
				}
			}
		}
		// A failed send is like a lost packet, except that the socket is
		// gone: then reading fails too, and says so.
		_ = b.flush()
	}
}

// setRecvBuffer sets uc's receive buffer to n bytes: with SO_RCVBUFFORCE
// when the process may (CAP_NET_ADMIN), which ignores net.core.rmem_max,
// else with SO_RCVBUF, which the kernel caps at rmem_max. It is best
// effort: a smaller buffer only means losing queries sooner under bursts.
func setRecvBuffer(uc *net.UDPConn, n int) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
}
