package kv

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

var resultSamples = map[string]Result{
	"empty": {Index: 1},
	"put":   {Index: 42, Ops: []OpResult{{Kind: OpPut, Entry: Entry{Key: "app/config", Value: []byte("hello"), CreateIndex: 7, ModifyIndex: 42}}}},
	"put ttl": {Index: 1 << 40, Ops: []OpResult{{Kind: OpPut, Entry: Entry{Key: "s/1", Value: []byte{}, CreateIndex: 1 << 40, ModifyIndex: 1 << 40,
		Expires: time.Unix(1_800_000_000, 123).UTC()}}}},
	"get found":     {Index: 9, Ops: []OpResult{{Kind: OpGet, Found: true, Entry: Entry{Key: "k", Value: []byte{0, 0xff}, CreateIndex: 3, ModifyIndex: 8}}}},
	"get missing":   {Index: 9, Ops: []OpResult{{Kind: OpGet}}},
	"delete prefix": {Index: 10, Ops: []OpResult{{Kind: OpDeletePrefix, Deleted: 1_000_000}}},
	"txn": {Index: 11, Ops: []OpResult{
		{Kind: OpPut, Entry: Entry{Key: "a", Value: []byte("1"), CreateIndex: 11, ModifyIndex: 11}},
		{Kind: OpDelete, Deleted: 1, Entry: Entry{Key: "b", Value: []byte("old"), CreateIndex: 2, ModifyIndex: 5}},
		{Kind: OpGet, Found: true, Entry: Entry{Key: "c", Value: []byte("x"), CreateIndex: 4, ModifyIndex: 4}},
	}},
}

func TestResultRoundTrip(t *testing.T) {
	for name, r := range resultSamples {
		t.Run(name, func(t *testing.T) {
			b := AppendResult([]byte("prefix"), &r, false)
			got, rest, err := DecodeResult(append(b[len("prefix"):], "tail"...))
			if err != nil || string(rest) != "tail" {
				t.Fatalf("DecodeResult = %v, rest %q; want no error and rest \"tail\"", err, rest)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("DecodeResult(AppendResult(%+v)) = %+v", r, got)
			}
		})
	}
}

// TestResultOmitPutValues: a put's value stays home, a get's and a
// delete's travel, and FillPutValues gives the put back the value it put.
func TestResultOmitPutValues(t *testing.T) {
	r := resultSamples["txn"]
	full := AppendResult(nil, &r, false)
	short := AppendResult(nil, &r, true)
	if len(short) != len(full)-2 { // "1" and its length byte
		t.Errorf("omitting the put value saved %d bytes, want 2", len(full)-len(short))
	}
	got, _, err := DecodeResult(short)
	if err != nil {
		t.Fatal(err)
	}
	if got.Ops[0].Entry.Value != nil || string(got.Ops[1].Entry.Value) != "old" || string(got.Ops[2].Entry.Value) != "x" {
		t.Fatalf("decoded values %q %q %q, want none, old, x", got.Ops[0].Entry.Value, got.Ops[1].Entry.Value, got.Ops[2].Entry.Value)
	}
	c := Command{Ops: []Op{{Kind: OpPut, Key: "a", Value: []byte("1")}, {Kind: OpDelete, Key: "b"}, {Kind: OpGet, Key: "c"}}}
	FillPutValues(&got, &c)
	if !reflect.DeepEqual(got, r) {
		t.Errorf("after FillPutValues = %+v, want %+v", got, r)
	}
	c.Ops[0].Value[0] = '9'
	if string(got.Ops[0].Entry.Value) != "1" {
		t.Error("FillPutValues aliases the command's value")
	}
}

// TestDecodeResultErrors: what a lying or broken leader could send.
func TestDecodeResultErrors(t *testing.T) {
	good := AppendResult(nil, &Result{Index: 3, Ops: []OpResult{{Kind: OpPut, Entry: Entry{Key: "k", Value: []byte("v")}}}}, false)
	tests := map[string][]byte{
		"empty":        nil,
		"truncated":    good[:len(good)-2],
		"unknown kind": {3, 1, 99, 0, 0, 0, 0, 0, 0},
		"too many ops": {3, 0xff, 0xff, 0xff, 0x7f},
		"long key":     append([]byte{3, 1, byte(OpPut), 0, 0}, bytes.Repeat([]byte{0xff}, 9)...),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := DecodeResult(in); err == nil {
				t.Errorf("DecodeResult(%q) succeeded", in)
			} else if !errors.Is(err, ErrInvalidCommand) && !errors.Is(err, ErrUnknownOp) && !errors.Is(err, ErrTooManyOps) {
				t.Errorf("DecodeResult(%q) = %v, want one of the codec's errors", in, err)
			}
		})
	}
}

func FuzzDecodeResult(f *testing.F) {
	for _, r := range resultSamples {
		f.Add(AppendResult(nil, &r, false))
		f.Add(AppendResult(nil, &r, true))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, rest, err := DecodeResult(in)
		if err != nil {
			return
		}
		// What decodes re-encodes to the bytes it came from.
		if got := AppendResult(nil, &r, false); !bytes.Equal(got, in[:len(in)-len(rest)]) {
			// Varints and nanosecond times have one encoding each, so
			// only a non-canonical input (a padded varint) may differ:
			// it must still decode to the same result.
			again, _, err := DecodeResult(got)
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("re-encoding %+v gives %q, which decodes to %+v, %v", r, got, again, err)
			}
		}
	})
}
