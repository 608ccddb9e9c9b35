package netlab

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nlmsg builds one netlink message with the given type and payload.
func nlmsg(typ uint16, payload []byte) []byte {
	size := unix.SizeofNlMsghdr + len(payload)
	b := make([]byte, (size+3)&^3)
	binary.NativeEndian.PutUint32(b[0:4], uint32(size))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	copy(b[unix.SizeofNlMsghdr:], payload)
	return b
}

func errPayload(code int32) []byte {
	b := make([]byte, 4+unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(b, uint32(code))
	return b
}

func TestParseAnswers(t *testing.T) {
	entry := nlmsg(ctMsg|ipctnlMsgCtNew, make([]byte, 20))
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	tests := []struct {
		name     string
		in       []byte
		entries  int
		done     bool
		wantErrs error // nil: no error expected
	}{
		{"ack", nlmsg(unix.NLMSG_ERROR, errPayload(0)), 0, true, nil},
		{"dump part", cat(entry, entry), 2, false, nil},
		{"dump end", cat(entry, nlmsg(unix.NLMSG_DONE, make([]byte, 4))), 1, true, nil},
		{"error", nlmsg(unix.NLMSG_ERROR, errPayload(-int32(syscall.EPERM))), 0, true, syscall.EPERM},
		{"short error", nlmsg(unix.NLMSG_ERROR, []byte{0}), 0, true, errDump},
		{"too short", []byte{1, 2, 3}, 0, false, errDump},
		{"length past the end", []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, errDump},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, done, err := parseAnswers(tt.in)
			if n != tt.entries || done != tt.done || (tt.wantErrs == nil) != (err == nil) || (tt.wantErrs != nil && !errors.Is(err, tt.wantErrs)) {
				t.Errorf("parseAnswers(%s) = %d, %v, %v; want %d, %v, %v", tt.name, n, done, err, tt.entries, tt.done, tt.wantErrs)
			}
		})
	}
}

// FuzzParseAnswers feeds arbitrary datagrams to the netlink answer parser:
// it must not panic, and must never count more entries than the datagram
// could hold.
func FuzzParseAnswers(f *testing.F) {
	f.Add(nlmsg(unix.NLMSG_ERROR, errPayload(0)))
	f.Add(append(nlmsg(ctMsg|ipctnlMsgCtNew, make([]byte, 8)), nlmsg(unix.NLMSG_DONE, nil)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, _, _ := parseAnswers(b)
		if n < 0 || n > len(b)/unix.SizeofNlMsghdr {
			t.Fatalf("parseAnswers(%x) counted %d entries in %d bytes", b, n, len(b))
		}
	})
}
