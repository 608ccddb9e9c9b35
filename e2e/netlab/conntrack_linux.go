package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// The router's connection tracking table is reached over ctnetlink, the
// kernel interface the conntrack program uses, so that the conntrack
// package is not needed. A netlink socket belongs to the namespace of the
// thread that creates it, so the socket is made on a thread that enters
// the router's namespace for that one call.

// ctnetlink message types (linux/netfilter/nfnetlink_conntrack.h): the
// subsystem in the high byte, the message in the low one.
const (
	nfnlSubsysCtnetlink = 1
	ipctnlMsgCtNew      = 0
	ipctnlMsgCtGet      = 1
	ipctnlMsgCtDelete   = 2
	ctMsg               = nfnlSubsysCtnetlink << 8
)

// netnsDir is where `ip netns add` keeps the namespaces it names.
const netnsDir = "/var/run/netns"

// netlinkTimeout bounds every receive on a ctnetlink socket.
const netlinkTimeout = 10 // seconds

// flushConntrack deletes every IPv4 entry of the namespace's table: a
// CT_DELETE without a tuple is a flush.
func flushConntrack(ns string) error {
	fd, err := conntrackSocket(ns)
	if err != nil {
		return fmt.Errorf("flush conntrack in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	if err := send(fd, ctMsg|ipctnlMsgCtDelete, unix.NLM_F_REQUEST|unix.NLM_F_ACK); err != nil {
		return fmt.Errorf("flush conntrack in %s: %w", ns, err)
	}
	if _, err := receive(fd); err != nil {
		return fmt.Errorf("flush conntrack in %s: %w", ns, err)
	}
	return nil
}

// countConntrack dumps the namespace's IPv4 table and counts the entries.
func countConntrack(ns string) (int, error) {
	fd, err := conntrackSocket(ns)
	if err != nil {
		return 0, fmt.Errorf("count conntrack in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	if err := send(fd, ctMsg|ipctnlMsgCtGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP); err != nil {
		return 0, fmt.Errorf("count conntrack in %s: %w", ns, err)
	}
	n, err := receive(fd)
	if err != nil {
		return 0, fmt.Errorf("count conntrack in %s: %w", ns, err)
	}
	return n, nil
}

// send writes one ctnetlink request for the IPv4 family.
func send(fd int, typ, flags uint16) error {
	const size = unix.SizeofNlMsghdr + 4 // nfgenmsg: family, version, res_id
	msg := make([]byte, size)
	binary.NativeEndian.PutUint32(msg[0:4], size)
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], flags)
	binary.NativeEndian.PutUint32(msg[8:12], 1) // sequence number
	msg[16] = unix.AF_INET
	msg[17] = unix.NFNETLINK_V0
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send netlink request: %w", err)
	}
	return nil
}

// receive reads answers until an acknowledgement, an error or the end of a
// dump, and returns the number of conntrack entries seen.
func receive(fd int) (int, error) {
	buf := make([]byte, 1<<16)
	entries := 0
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return entries, fmt.Errorf("receive netlink answer: %w", err)
		}
		got, done, err := parseAnswers(buf[:n])
		entries += got
		if err != nil || done {
			return entries, err
		}
	}
}

// errDump is returned for a netlink answer that cannot be parsed.
var errDump = errors.New("malformed netlink answer")

// parseAnswers reads one datagram of netlink messages: it counts conntrack
// entries and reports whether the exchange is over (an acknowledgement, an
// error or the end of a dump).
func parseAnswers(b []byte) (entries int, done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", errDump, err)
	}
	if len(msgs) == 0 {
		// The kernel sends whole messages; an empty read would only make
		// the caller wait for the receive timeout.
		return 0, false, fmt.Errorf("%w: %d bytes, no message", errDump, len(b))
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_DONE:
			return entries, true, nil
		case unix.NLMSG_ERROR:
			if len(m.Data) < 4 {
				return entries, true, fmt.Errorf("%w: short error message", errDump)
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				return entries, true, fmt.Errorf("netlink: %w", syscall.Errno(-code))
			}
			return entries, true, nil // an acknowledgement
		case ctMsg | ipctnlMsgCtNew:
			entries++
		}
	}
	return entries, false, nil
}

// conntrackSocket returns a netfilter netlink socket in namespace ns, with
// a receive timeout.
func conntrackSocket(ns string) (int, error) {
	fd := -1
	err := inNetns(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, err
	}
	tv := unix.Timeval{Sec: netlinkTimeout}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind netlink socket: %w", err)
	}
	return fd, nil
}

// inNetns runs fn on an OS thread that has entered namespace ns. The
// thread is locked to a goroutine of its own for the call; if it cannot
// return to its original namespace, the goroutine exits still locked and
// the Go runtime ends the thread rather than reuse it.
func inNetns(ns string, fn func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return fmt.Errorf("open namespace: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	// Exits when fn has returned.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("leave namespace %s: %w", ns, err))
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
