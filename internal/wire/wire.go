// Package wire defines what travels on peer links: the one-byte kind that
// opens every stream, the length-prefixed frames that carry messages, and
// the message types themselves. It holds no logic beyond encoding and
// decoding, so every decoder here can be fuzzed on its own.
package wire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Kind is the first byte of every stream opened on a peer link. It tells
// the accepting side which subsystem the stream belongs to.
type Kind byte

// Stream kinds. Values are part of the wire format: never renumber them.
const (
	KindControl Kind = 1 // heartbeats and address records
	KindRaft    Kind = 2 // hashicorp/raft transport
	KindRPC     Kind = 3 // request/response calls between members
	KindRelay   Kind = 4 // relayed links between nodes with no direct path
)

// ErrUnknownKind is returned by ReadKind for a byte that is not a known kind.
var ErrUnknownKind = errors.New("unknown stream kind")

// String names the kind for logs and errors.
func (k Kind) String() string {
	switch k {
	case KindControl:
		return "control"
	case KindRaft:
		return "raft"
	case KindRPC:
		return "rpc"
	case KindRelay:
		return "relay"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k >= KindControl && k <= KindRelay }

// WriteKind writes the stream header.
func WriteKind(w io.Writer, k Kind) error {
	if !k.Valid() {
		return fmt.Errorf("write stream header: %w: %d", ErrUnknownKind, byte(k))
	}
	_, err := w.Write([]byte{byte(k)})
	return err
}

// ReadKind reads and validates the stream header.
func ReadKind(r io.Reader) (Kind, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("read stream header: %w", err)
	}
	k := Kind(b[0])
	if !k.Valid() {
		return 0, fmt.Errorf("read stream header: %w: %d", ErrUnknownKind, b[0])
	}
	return k, nil
}

// MaxFrame is the largest frame body ReadFrame accepts by default. It
// bounds what a peer can make us allocate with one length prefix.
const MaxFrame = 8 << 20

// ErrFrameTooLarge is returned for a frame whose declared length exceeds
// the reader's limit.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame writes v as a 4-byte big-endian length followed by its JSON
// encoding.
func WriteFrame(w io.Writer, v any) error {
	buf, err := AppendFrame(nil, v)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// AppendFrame appends the frame WriteFrame would write to b, so that
// several frames can go out in one write.
func AppendFrame(b []byte, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("encode frame: %w", err)
	}
	return AppendRawFrame(b, body)
}

// AppendRawFrame appends a frame holding body as it is: a 4-byte
// big-endian length and the bytes. It is how a raw Request or Response
// carries its body.
func AppendRawFrame(b, body []byte) ([]byte, error) {
	if len(body) > MaxFrame {
		return b, fmt.Errorf("encode frame: %w: %d bytes", ErrFrameTooLarge, len(body))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...), nil
}

// ReadRawFrame reads one frame's body without decoding it, refusing
// bodies larger than max bytes (MaxFrame if max <= 0).
func ReadRawFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxFrame
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("read frame: %w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return body, nil
}

// ReadFrame reads one frame written by WriteFrame into v, refusing bodies
// larger than max bytes (MaxFrame if max <= 0).
func ReadFrame(r io.Reader, v any, max int) error {
	body, err := ReadRawFrame(r, max)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}
