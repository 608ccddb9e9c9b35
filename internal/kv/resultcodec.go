package kv

import (
	"encoding/binary"
	"fmt"
)

// Results travel from the leader to the follower that forwarded a write.
// The binary layout (no version byte: it is framed by a versioned RPC):
//
//	uvarint index | uvarint #ops | per op:
//	kind | flags (1 found, 2 value follows) | uvarint deleted | bytes key |
//	[bytes value] | uvarint create_index | uvarint modify_index | varint expires (unix ns, 0 = none)
//
// where "bytes" is a uvarint length followed by that many bytes.
const (
	resultFound    = 1 << 0
	resultHasValue = 1 << 1
)

// AppendResult appends r's encoding to b. With omitPutValues the results
// of puts carry no value: the node that sent the put has it already, and
// it is most of the bytes (see FillPutValues).
func AppendResult(b []byte, r *Result, omitPutValues bool) []byte {
	b = binary.AppendUvarint(b, r.Index)
	b = binary.AppendUvarint(b, uint64(len(r.Ops)))
	for i := range r.Ops {
		op := &r.Ops[i]
		var flags byte
		if op.Found {
			flags |= resultFound
		}
		withValue := op.Entry.Value != nil && !(omitPutValues && op.Kind == OpPut)
		if withValue {
			flags |= resultHasValue
		}
		b = append(b, byte(op.Kind), flags)
		b = binary.AppendUvarint(b, uint64(max(op.Deleted, 0)))
		b = appendBytes(b, op.Entry.Key)
		if withValue {
			b = appendBytes(b, op.Entry.Value)
		}
		b = binary.AppendUvarint(b, op.Entry.CreateIndex)
		b = binary.AppendUvarint(b, op.Entry.ModifyIndex)
		exp, _ := unixNanos(op.Entry.Expires)
		b = binary.AppendVarint(b, exp)
	}
	return b
}

// DecodeResult reads one result written by AppendResult from the start of
// b and returns the bytes after it. Values are copied: the result does not
// alias b.
func DecodeResult(b []byte) (Result, []byte, error) {
	d := decoder{b: b}
	var r Result
	r.Index = d.uvarint()
	if n := d.count(); n > 0 {
		r.Ops = make([]OpResult, n)
		for i := range r.Ops {
			op := &r.Ops[i]
			op.Kind = OpKind(d.byte())
			if _, ok := opNames[op.Kind]; !ok && d.err == nil {
				return Result{}, nil, fmt.Errorf("decode kv result: %w: operation %d has kind %d", ErrUnknownOp, i, op.Kind)
			}
			flags := d.byte()
			op.Found = flags&resultFound != 0
			deleted := d.uvarint()
			if deleted > uint64(maxInt) && d.err == nil {
				return Result{}, nil, fmt.Errorf("decode kv result: %w: %d keys deleted", ErrInvalidCommand, deleted)
			}
			op.Deleted = int(deleted)
			op.Entry.Key = d.str(MaxLimits.MaxKeyBytes)
			if flags&resultHasValue != 0 {
				op.Entry.Value = d.bytes(MaxLimits.MaxValueBytes)
				if op.Entry.Value == nil && d.err == nil {
					op.Entry.Value = []byte{}
				}
			}
			op.Entry.CreateIndex = d.uvarint()
			op.Entry.ModifyIndex = d.uvarint()
			op.Entry.Expires = fromNanos(d.varint())
		}
	}
	if d.err != nil {
		return Result{}, nil, fmt.Errorf("decode kv result: %w", d.err)
	}
	return r, d.b, nil
}

// FillPutValues gives the put results of r that came without their value
// (AppendResult with omitPutValues) a copy of the value c put.
func FillPutValues(r *Result, c *Command) {
	for i := range r.Ops {
		if i < len(c.Ops) && r.Ops[i].Kind == OpPut && c.Ops[i].Kind == OpPut && r.Ops[i].Entry.Value == nil {
			r.Ops[i].Entry.Value = append([]byte{}, c.Ops[i].Value...)
		}
	}
}

const maxInt = int(^uint(0) >> 1)
