package kv

import (
	"encoding/binary"
	"fmt"
	"math"
)

// CommandMagic is the first byte of every encoded command. The store's own
// commands are JSON, which starts with '{' or whitespace, so one byte tells
// a KV log entry from the others; 0xB1 is also never the first byte of a
// UTF-8 text.
const CommandMagic byte = 0xB1

// commandVersion is the codec version written by this code.
const commandVersion = 1

// The binary layout (version 1), chosen over JSON because it encodes a
// 256-byte put several times faster and with fewer allocations (see
// BenchmarkCodec):
//
//	magic 0xB1 | version 1 | varint at (unix ns, 0 = none)
//	uvarint #checks | per check: kind | bytes key | index (uvarint, modify_index) or bytes value (value)
//	uvarint #ops    | per op:    kind | bytes key | put: bytes value, varint expires | expire: uvarint index
//
// where "bytes" is a uvarint length followed by that many bytes. Nothing may
// follow the last op.

// Encode returns the log entry bytes for c. It checks c's shape (not the
// configured limits: see Validate) so that what it encodes will decode.
func (c *Command) Encode() ([]byte, error) {
	if err := c.check(MaxLimits); err != nil {
		return nil, fmt.Errorf("encode kv command: %w", err)
	}
	return c.AppendEncode(make([]byte, 0, c.encodedSize()))
}

// AppendEncode appends c's encoding to b without checking c, for callers
// that already did (and to reuse buffers).
func (c *Command) AppendEncode(b []byte) ([]byte, error) {
	at, _ := unixNanos(c.At)
	b = append(b, CommandMagic, commandVersion)
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(c.Checks)))
	for i := range c.Checks {
		ck := &c.Checks[i]
		b = append(b, byte(ck.Kind))
		b = appendBytes(b, ck.Key)
		switch ck.Kind {
		case CheckModifyIndex:
			b = binary.AppendUvarint(b, ck.Index)
		case CheckValue:
			b = appendBytes(b, ck.Value)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(c.Ops)))
	for i := range c.Ops {
		op := &c.Ops[i]
		b = append(b, byte(op.Kind))
		b = appendBytes(b, op.Key)
		switch op.Kind {
		case OpPut:
			exp, _ := unixNanos(op.Expires)
			b = appendBytes(b, op.Value)
			b = binary.AppendVarint(b, exp)
		case OpExpire:
			b = binary.AppendUvarint(b, op.Index)
		}
	}
	return b, nil
}

func (c *Command) encodedSize() int {
	n := 2 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen64
	for i := range c.Checks {
		n += 1 + 2*binary.MaxVarintLen64 + len(c.Checks[i].Key) + len(c.Checks[i].Value)
	}
	for i := range c.Ops {
		n += 1 + 3*binary.MaxVarintLen64 + len(c.Ops[i].Key) + len(c.Ops[i].Value)
	}
	return n
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeCommand parses a log entry written by Encode and checks its shape
// (MaxLimits, not the configured limits). The command does not alias b:
// Raft may reuse the buffer, and the map keeps the values.
func DecodeCommand(b []byte) (Command, error) {
	c, err := decodeCommand(b)
	if err != nil {
		return Command{}, fmt.Errorf("decode kv command: %w", err)
	}
	return c, nil
}

func decodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 2 || b[0] != CommandMagic {
		return Command{}, fmt.Errorf("%w: not a kv command", ErrInvalidCommand)
	}
	if b[1] != commandVersion {
		return Command{}, fmt.Errorf("%w: version %d, this build reads %d", ErrInvalidCommand, b[1], commandVersion)
	}
	d := decoder{b: b[2:]}
	c.At = fromNanos(d.varint())
	if n := d.count(); n > 0 {
		c.Checks = make([]Check, n)
		for i := range c.Checks {
			ck := &c.Checks[i]
			ck.Kind = CheckKind(d.byte())
			if _, ok := checkNames[ck.Kind]; !ok && d.err == nil {
				return Command{}, fmt.Errorf("%w: check %d has kind %d", ErrUnknownOp, i, ck.Kind)
			}
			ck.Key = d.str(MaxLimits.MaxKeyBytes)
			switch ck.Kind {
			case CheckModifyIndex:
				ck.Index = d.uvarint()
			case CheckValue:
				ck.Value = d.bytes(MaxLimits.MaxValueBytes)
			}
		}
	}
	if n := d.count(); n > 0 {
		c.Ops = make([]Op, n)
		for i := range c.Ops {
			op := &c.Ops[i]
			op.Kind = OpKind(d.byte())
			if _, ok := opNames[op.Kind]; !ok && d.err == nil {
				return Command{}, fmt.Errorf("%w: operation %d has kind %d", ErrUnknownOp, i, op.Kind)
			}
			op.Key = d.str(MaxLimits.MaxKeyBytes)
			switch op.Kind {
			case OpPut:
				op.Value = d.bytes(MaxLimits.MaxValueBytes)
				op.Expires = fromNanos(d.varint())
			case OpExpire:
				op.Index = d.uvarint()
			}
		}
	}
	if d.err != nil {
		return Command{}, d.err
	}
	if len(d.b) > 0 {
		return Command{}, fmt.Errorf("%w: %d bytes after the last operation", ErrInvalidCommand, len(d.b))
	}
	if err := c.check(MaxLimits); err != nil {
		return Command{}, err
	}
	return c, nil
}

// decoder reads the codec's fields, remembering the first error so the
// layout above reads straight; after an error every read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed %s", ErrInvalidCommand, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("kind")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of checks or ops, refusing more than MaxTxnOps
// before anything is allocated for them.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(MaxLimits.MaxTxnOps) {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %d entries, the ceiling is %d", ErrTooManyOps, n, MaxLimits.MaxTxnOps)
		}
		d.b = nil
		return 0
	}
	return int(n)
}

func (d *decoder) raw(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > math.MaxInt || int(n) > len(d.b) {
		d.fail("length")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(max int) string { return string(d.raw(max)) }

func (d *decoder) bytes(max int) []byte {
	v := d.raw(max)
	if v == nil {
		return nil
	}
	return append(make([]byte, 0, len(v)), v...)
}
