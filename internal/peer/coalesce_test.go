package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// writeRecorder is a net.Conn whose Writes are kept one by one; Write
// fails with err when set.
type writeRecorder struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	err    error
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	w.writes = append(w.writes, bytes.Clone(p))
	if w.Conn != nil {
		return w.Conn.Write(p)
	}
	return len(p), nil
}

func (w *writeRecorder) recorded() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.writes...)
}

// hdr builds a yamux frame header.
func hdr(typ uint8, flags uint16, stream, length uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[0] = yamuxVersion
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], stream)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestCoalesceConnWrites(t *testing.T) {
	const (
		typeWindowUpdate = 1
		typePing         = 2
		typeGoAway       = 3
		flagSYN          = 1
		flagFIN          = 4
	)
	body := func(n int) []byte { return bytes.Repeat([]byte{'b'}, n) }
	big := maxCoalescedBody + 1
	tests := []struct {
		name string
		in   [][]byte // the Writes made to coalesceConn
		want [][]byte // the Writes it makes to the conn below
	}{
		{
			name: "data frame in one write",
			in:   [][]byte{hdr(0, 0, 1, 5), body(5)},
			want: [][]byte{cat(hdr(0, 0, 1, 5), body(5))},
		},
		{
			name: "SYN with data, then a FIN alone",
			in:   [][]byte{hdr(0, flagSYN, 3, 2), body(2), hdr(0, flagFIN, 3, 0)},
			want: [][]byte{cat(hdr(0, flagSYN, 3, 2), body(2)), hdr(0, flagFIN, 3, 0)},
		},
		{
			name: "frames without body go out at once",
			in:   [][]byte{hdr(typeWindowUpdate, 0, 1, 4096), hdr(typePing, flagSYN, 0, 7), hdr(typeGoAway, 0, 0, 0)},
			want: [][]byte{hdr(typeWindowUpdate, 0, 1, 4096), hdr(typePing, flagSYN, 0, 7), hdr(typeGoAway, 0, 0, 0)},
		},
		{
			name: "largest coalesced body",
			in:   [][]byte{hdr(0, 0, 1, maxCoalescedBody), body(maxCoalescedBody)},
			want: [][]byte{cat(hdr(0, 0, 1, maxCoalescedBody), body(maxCoalescedBody))},
		},
		{
			name: "large body passes through, framing is kept",
			in:   [][]byte{hdr(0, 0, 1, uint32(big)), body(big), hdr(0, 0, 1, 3), body(3)},
			want: [][]byte{hdr(0, 0, 1, uint32(big)), body(big), cat(hdr(0, 0, 1, 3), body(3))},
		},
		{
			// A 12-byte body that looks like a header must not be taken for one.
			name: "large body in pieces, the last one header-sized",
			in:   [][]byte{hdr(0, 0, 1, uint32(big)), body(big - 12), hdr(0, 0, 9, 9), hdr(0, 0, 1, 1), body(1)},
			want: [][]byte{hdr(0, 0, 1, uint32(big)), body(big - 12), hdr(0, 0, 9, 9), cat(hdr(0, 0, 1, 1), body(1))},
		},
		{
			name: "body of another length: header flushed, then pass-through",
			in:   [][]byte{hdr(0, 0, 1, 5), body(4), hdr(0, 0, 1, 1), body(1)},
			want: [][]byte{hdr(0, 0, 1, 5), body(4), hdr(0, 0, 1, 1), body(1)},
		},
		{
			name: "split header: pass-through",
			in:   [][]byte{hdr(0, 0, 1, 1)[:5], hdr(0, 0, 1, 1)[5:], body(1)},
			want: [][]byte{hdr(0, 0, 1, 1)[:5], hdr(0, 0, 1, 1)[5:], body(1)},
		},
		{
			name: "unknown version: pass-through",
			in:   [][]byte{append([]byte{1}, hdr(0, 0, 1, 1)[1:]...), body(1)},
			want: [][]byte{append([]byte{1}, hdr(0, 0, 1, 1)[1:]...), body(1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &writeRecorder{}
			c := newCoalesceConn(rec)
			for i, p := range tt.in {
				if n, err := c.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write #%d (%d bytes) = %d, %v, want %d, nil", i, len(p), n, err, len(p))
				}
			}
			got := rec.recorded()
			if len(got) != len(tt.want) {
				t.Fatalf("conn got %d writes %v, want %d", len(got), lens(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("write #%d = % x, want % x", i, head(got[i]), head(tt.want[i]))
				}
			}
		})
	}
}

func TestCoalesceConnWriteError(t *testing.T) {
	errBroken := errors.New("broken pipe")
	rec := &writeRecorder{err: errBroken}
	c := newCoalesceConn(rec)
	// The header is held, so its Write cannot fail yet.
	if n, err := c.Write(hdr(0, 0, 1, 5)); n != yamuxHeaderSize || err != nil {
		t.Fatalf("Write(header) = %d, %v, want %d, nil", n, err, yamuxHeaderSize)
	}
	if n, err := c.Write([]byte("hello")); n != 0 || !errors.Is(err, errBroken) {
		t.Fatalf("Write(body) = %d, %v, want 0, %v", n, err, errBroken)
	}
}

func lens(ws [][]byte) []int {
	var n []int
	for _, w := range ws {
		n = append(n, len(w))
	}
	return n
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// TestCoalesceConnYamux runs real yamux sessions over the wrapper: streams
// are opened, echo payloads of many sizes (over the coalescing limit too),
// and are closed, with keep-alive pings and a final go-away. Every byte
// must arrive, and every data frame with a small body must have gone out
// in one Write with its header.
func TestCoalesceConnYamux(t *testing.T) {
	a, b := net.Pipe()
	recA := &writeRecorder{Conn: a}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.KeepAliveInterval = 10 * time.Millisecond
	client, err := yamux.Client(newCoalesceConn(recA), cfg)
	if err != nil {
		t.Fatal(err)
	}
	server, err := yamux.Server(newCoalesceConn(b), cfg)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			st, err := server.AcceptStream()
			if err != nil {
				return // session closed
			}
			wg.Go(func() {
				defer st.Close()
				_, _ = io.Copy(st, st)
			})
		}
	})

	sizes := []int{1, 11, 12, 13, 100, 4096, maxCoalescedBody, maxCoalescedBody + 1, 70_000, 300_000}
	var cw sync.WaitGroup
	errs := make(chan error, len(sizes))
	for i, size := range sizes {
		cw.Go(func() {
			errs <- echo(client, size, byte(i))
		})
	}
	cw.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if _, err := client.Ping(); err != nil {
		t.Errorf("Ping() = %v, want nil", err)
	}
	client.Close()
	server.Close()
	wg.Wait()

	// Parse what the client side wrote, frame by frame.
	var stream []byte
	var starts []bool // for each byte: did a Write begin here
	for _, w := range recA.recorded() {
		for i := range w {
			starts = append(starts, i == 0)
		}
		stream = append(stream, w...)
	}
	frames, coalesced := 0, 0
	for off := 0; off < len(stream); {
		if len(stream)-off < yamuxHeaderSize {
			t.Fatalf("%d stray bytes at the end of the stream", len(stream)-off)
		}
		h := stream[off : off+yamuxHeaderSize]
		if !starts[off] {
			t.Fatalf("frame header at offset %d does not start a Write", off)
		}
		n := 0
		if h[1] == yamuxTypeData {
			n = int(binary.BigEndian.Uint32(h[8:]))
		}
		if n > 0 && n <= maxCoalescedBody {
			if starts[off+yamuxHeaderSize] {
				t.Errorf("data frame at offset %d with a %d-byte body: header and body in separate Writes", off, n)
			} else {
				coalesced++
			}
		}
		frames++
		off += yamuxHeaderSize + n
	}
	if coalesced == 0 {
		t.Errorf("no coalesced data frame among %d frames", frames)
	}
}

// echo sends size bytes on a new stream and checks they come back.
func echo(s *yamux.Session, size int, fill byte) error {
	st, err := s.OpenStream()
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	defer st.Close()
	msg := bytes.Repeat([]byte{fill}, size)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(msg)
		werr <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(st, got); err != nil {
		return fmt.Errorf("echo of %d bytes: read: %w", size, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("echo of %d bytes: write: %w", size, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of %d bytes came back changed", size)
	}
	return nil
}

// FuzzCoalesceConn checks that the wrapper never changes the byte stream,
// whatever the Writes: what reaches the conn below, followed by a header
// still held, is exactly what was written.
func FuzzCoalesceConn(f *testing.F) {
	f.Add(cat(hdr(0, 0, 1, 5), []byte("hello"), hdr(1, 0, 1, 99)), []byte{12, 5, 12})
	f.Add(cat(hdr(0, 0, 1, 20000), make([]byte, 20000)), []byte{12, 100, 255, 255})
	f.Add([]byte("not yamux at all"), []byte{3, 3, 3})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		rec := &writeRecorder{}
		c := newCoalesceConn(rec)
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i])*int(cuts[i]/16+1))
			}
			if w, err := c.Write(rest[:n]); w != n || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", n, w, err)
			}
			rest = rest[n:]
		}
		got := cat(append(rec.recorded(), c.buf)...)
		if !bytes.Equal(got, data) {
			t.Fatalf("bytes below = % x, want % x", head(got), head(data))
		}
	})
}
