package api

// The JSON of the key-value API, and the decoding of a transaction.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"buoy/internal/kv"
)

// KVEntry is a key as the API shows it. The value travels as text in Value
// when it is valid UTF-8, otherwise base64-encoded in ValueBase64; answers
// that carry no value (a put's) have neither.
type KVEntry struct {
	Key         string     `json:"key"`
	Value       *string    `json:"value,omitempty"`
	ValueBase64 *string    `json:"value_base64,omitempty"`
	CreateIndex uint64     `json:"create_index"`
	ModifyIndex uint64     `json:"modify_index"`
	Expires     *time.Time `json:"expires,omitempty"`
}

// Bytes returns the entry's value, decoding ValueBase64 if need be.
func (e KVEntry) Bytes() ([]byte, error) {
	return decodeValue(e.Value, e.ValueBase64)
}

// KVRead is the answer to a read of one key: the entry, the state index it
// was read at, and whether it came from this node without asking the
// leader.
type KVRead struct {
	KVEntry
	Index uint64 `json:"index"`
	Stale bool   `json:"stale"`
}

// KVList is the answer to a read of a prefix.
type KVList struct {
	Index   uint64    `json:"index"`
	Stale   bool      `json:"stale"`
	Entries []KVEntry `json:"entries"`
}

// KVDeleted is the answer to a delete: how many keys went.
type KVDeleted struct {
	Deleted int `json:"deleted"`
}

// KVTxnRequest is the body of POST /v1/txn: every check must hold, then
// every operation applies in order at one Raft index; otherwise nothing
// changes (409).
type KVTxnRequest struct {
	Checks []KVTxnCheck `json:"checks,omitempty"`
	Ops    []KVTxnOp    `json:"ops"`
}

// KVTxnCheck is one condition of a transaction. Check is exists,
// not_exists, modify_index (with Index, above 0) or value (with Value or
// ValueBase64).
type KVTxnCheck struct {
	Check       string  `json:"check"`
	Key         string  `json:"key"`
	Index       uint64  `json:"index,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// KVTxnOp is one operation of a transaction. Op is put (with Value or
// ValueBase64), delete, delete_prefix (Key is the prefix) or get.
type KVTxnOp struct {
	Op          string  `json:"op"`
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// KVTxnResult is the answer to a committed transaction: its index and one
// result per operation.
type KVTxnResult struct {
	Index   uint64       `json:"index"`
	Results []KVOpResult `json:"results"`
}

// KVOpResult is one operation's outcome: Entry for a put (without its
// value) and a get that found its key (with it), Found for a get, Deleted
// for the deletes.
type KVOpResult struct {
	Op      string   `json:"op"`
	Key     string   `json:"key"`
	Entry   *KVEntry `json:"entry,omitempty"`
	Found   *bool    `json:"found,omitempty"`
	Deleted *int     `json:"deleted,omitempty"`
}

// KVConflict is the body of a 409: a compare-and-set or transaction check
// that did not hold. Key, Found and ModifyIndex describe the key as it is
// now, for a retry; Check is the position of the failed check in a
// transaction, when known.
type KVConflict struct {
	Error
	Key         string `json:"key,omitempty"`
	Found       bool   `json:"found"`
	ModifyIndex uint64 `json:"modify_index"`
	Check       *int   `json:"check,omitempty"`
}

// KVEvent is the data of one Server-Sent Event of a watch: a change of one
// key. Type is put, delete or expire; a put carries the new value.
type KVEvent struct {
	Index uint64 `json:"index"`
	Type  string `json:"type"`
	KVEntry
}

// KVCompacted is the data of the "compacted" event that ends a watch that
// fell behind: re-read what it watches and watch again from Index.
type KVCompacted struct {
	Error string `json:"error"`
	Index uint64 `json:"index"`
}

// clientOps are the operations a client may send; expire is the leader's.
var clientOps = []kv.OpKind{kv.OpPut, kv.OpDelete, kv.OpDeletePrefix, kv.OpGet}

// decodeTxn reads a KVTxnRequest and turns it into a command. It checks
// the JSON's shape and the operation and check names; Command.Validate
// checks keys, values and counts.
func decodeTxn(r io.Reader) (kv.Command, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return kv.Command{}, fmt.Errorf("%w: reading the transaction: %v", ErrBadRequest, err)
	}
	// The JSON decoder would turn invalid UTF-8 into U+FFFD, writing a key
	// other than the one sent.
	if !utf8.Valid(body) {
		return kv.Command{}, fmt.Errorf("%w: the transaction is not valid UTF-8, as JSON must be (keys are UTF-8; send binary values as value_base64)", kv.ErrInvalidKey)
	}
	var req KVTxnRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return kv.Command{}, fmt.Errorf("%w: transaction: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return kv.Command{}, fmt.Errorf("%w: transaction: more than one JSON value in the body", ErrBadRequest)
	}
	if len(req.Ops) == 0 {
		return kv.Command{}, fmt.Errorf("%w: transaction has no operations (want \"ops\": [{\"op\": \"put\", \"key\": ..., \"value\": ...}, ...])", kv.ErrInvalidCommand)
	}
	var c kv.Command
	for i, ck := range req.Checks {
		kind, err := kv.ParseCheckKind(ck.Check)
		if err != nil {
			return kv.Command{}, fmt.Errorf("check %d: %w", i, err)
		}
		k := kv.Check{Kind: kind, Key: ck.Key, Index: ck.Index}
		if kind == kv.CheckValue {
			if k.Value, err = decodeValue(ck.Value, ck.ValueBase64); err != nil {
				return kv.Command{}, fmt.Errorf("check %d: %w", i, err)
			}
			if k.Value == nil {
				return kv.Command{}, fmt.Errorf("check %d: %w: a value check needs \"value\" or \"value_base64\"", i, kv.ErrInvalidCommand)
			}
		} else if ck.Value != nil || ck.ValueBase64 != nil {
			return kv.Command{}, fmt.Errorf("check %d: %w: only a value check takes a value", i, kv.ErrInvalidCommand)
		}
		c.Checks = append(c.Checks, k)
	}
	for i, op := range req.Ops {
		kind, err := kv.ParseOpKind(op.Op)
		if err != nil || !slices.Contains(clientOps, kind) {
			return kv.Command{}, fmt.Errorf("operation %d: %w: %q (want put, delete, delete_prefix or get)", i, kv.ErrUnknownOp, op.Op)
		}
		o := kv.Op{Kind: kind, Key: op.Key}
		if kind == kv.OpPut {
			if o.Value, err = decodeValue(op.Value, op.ValueBase64); err != nil {
				return kv.Command{}, fmt.Errorf("operation %d: %w", i, err)
			}
			if o.Value == nil {
				return kv.Command{}, fmt.Errorf("operation %d: %w: a put needs \"value\" or \"value_base64\"", i, kv.ErrInvalidCommand)
			}
		} else if op.Value != nil || op.ValueBase64 != nil {
			return kv.Command{}, fmt.Errorf("operation %d: %w: only a put takes a value", i, kv.ErrInvalidCommand)
		}
		c.Ops = append(c.Ops, o)
	}
	return c, nil
}

// decodeValue returns the value of a text or base64 field, nil if neither
// is set; a set value is never nil.
func decodeValue(text, b64 *string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, fmt.Errorf("%w: both \"value\" and \"value_base64\"; give one", ErrBadRequest)
	case text != nil:
		return append([]byte{}, *text...), nil
	case b64 != nil:
		v, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%w: value_base64: %v", ErrBadRequest, err)
		}
		return append([]byte{}, v...), nil
	}
	return nil, nil
}

// entryJSON converts an entry, with its value if withValue.
func entryJSON(e kv.Entry, withValue bool) KVEntry {
	out := KVEntry{Key: e.Key, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex}
	if !e.Expires.IsZero() {
		t := e.Expires.UTC()
		out.Expires = &t
	}
	if withValue {
		if utf8.Valid(e.Value) {
			v := string(e.Value)
			out.Value = &v
		} else {
			v := base64.StdEncoding.EncodeToString(e.Value)
			out.ValueBase64 = &v
		}
	}
	return out
}

// appendPutJSON appends the answer to a put (an entry without a value) as
// reply writes it, indented, but without reflection: it is the one answer
// on the write path, and encoding/json took a tenth of the CPU of an HTTP
// put.
func appendPutJSON(b []byte, e KVEntry) []byte {
	key, _ := json.Marshal(e.Key) // a string always encodes
	b = append(b, "{\n  \"key\": "...)
	b = append(b, key...)
	b = append(b, ",\n  \"create_index\": "...)
	b = strconv.AppendUint(b, e.CreateIndex, 10)
	b = append(b, ",\n  \"modify_index\": "...)
	b = strconv.AppendUint(b, e.ModifyIndex, 10)
	if e.Expires != nil {
		if t, err := e.Expires.MarshalJSON(); err == nil {
			b = append(b, ",\n  \"expires\": "...)
			b = append(b, t...)
		}
	}
	return append(b, "\n}\n"...)
}
