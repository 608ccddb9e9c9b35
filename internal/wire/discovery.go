package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Control stream messages: heartbeats that tell a peer how we see it, and
// the signed address records that let every node follow every other
// node's address.
//
// The codec is the same length-prefixed JSON as the rest of the wire
// package, not a compact binary one. A heartbeat is about 150 bytes of JSON
// once a second per link, which costs microseconds to encode; JSON keeps a
// single codec to fuzz, stays readable in a packet dump, and lets a newer
// node add fields an older one ignores during a rolling upgrade. Records
// are signed over SigningBytes, a canonical binary form, so nothing about
// the JSON encoding (field order, spacing, escaping) affects signatures.

// ControlType names the body a ControlMsg carries.
type ControlType string

// Control message types. Values are part of the wire format.
const (
	ControlHeartbeat   ControlType = "heartbeat" // body in ControlMsg.Heartbeat
	ControlRecordPush  ControlType = "push"      // body in ControlMsg.Push
	ControlRecordQuery ControlType = "query"     // body in ControlMsg.Query
)

// Bounds on control messages. They keep what one peer can make us hold or
// verify small; a cluster of a few hundred nodes fits in one message.
const (
	// MaxControlFrame is the largest control frame ReadControl accepts.
	MaxControlFrame = 1 << 20
	// MaxRecordsPerMsg bounds RecordPush.Records.
	MaxRecordsPerMsg = 512
	// MaxQueryNodes bounds RecordQuery.Nodes.
	MaxQueryNodes = 512
	// MaxRecordAddrs bounds AddressRecord.Addrs (one voted address per
	// family, with room to grow).
	MaxRecordAddrs = 4
	// MaxRecordLAN bounds AddressRecord.LAN.
	MaxRecordLAN = 8
	// MaxAddrLen bounds one "IP:port" string; the longest IPv6 form with
	// brackets and port is 47 bytes.
	MaxAddrLen = 64
	// MaxNodeLen is the longest node name: one DNS label.
	MaxNodeLen = 63
	// MaxNATLen bounds AddressRecord.NAT.
	MaxNATLen = 16
	// MaxSigLen bounds SignedRecord.Sig; Ed25519 signatures are 64 bytes.
	MaxSigLen = 128
)

// Errors from DecodeControl, ReadControl and ControlMsg.Validate.
var (
	// ErrUnknownControl marks a message of a type this node does not know.
	// The frame was well formed, so a caller may skip it and keep the
	// stream: a newer peer may speak types we do not.
	ErrUnknownControl = errors.New("unknown control message type")
	// ErrInvalidControl marks a message that breaks the format: a missing
	// or mismatched body, or a field over its bound.
	ErrInvalidControl = errors.New("invalid control message")
)

// ControlMsg is the envelope of every frame on a control stream. Exactly
// the body named by Type is set.
type ControlMsg struct {
	Type      ControlType  `json:"type"`
	Heartbeat *Heartbeat   `json:"heartbeat,omitempty"`
	Push      *RecordPush  `json:"push,omitempty"`
	Query     *RecordQuery `json:"query,omitempty"`
}

// Heartbeat is sent on every link's control stream at the heartbeat
// interval (default 1 s), by both sides.
type Heartbeat struct {
	// Seq counts the sender's heartbeats on this link, from 1.
	Seq uint64 `json:"seq"`
	// SentAt is the sender's clock at sending, in Unix nanoseconds. It is
	// informational: clocks of different nodes are never compared.
	SentAt int64 `json:"sent_at"`
	// YouAre is the receiver's address as the sender sees it on this
	// link ("IP:port", the remote address of the sender's socket). This
	// is how a node learns its own public address. Empty where the sender
	// cannot see it (a relayed link, a WebSocket behind a proxy).
	YouAre string `json:"you_are,omitempty"`
	// Record is the sender's own signed address record. It is optional:
	// a sender includes it when it changed or on a new link.
	Record *SignedRecord `json:"record,omitempty"`
}

// RecordPush carries signed address records, the sender's own or ones it
// holds for other nodes: sent on change to every link, and in answer to
// a RecordQuery.
type RecordPush struct {
	Records []SignedRecord `json:"records"`
}

// RecordQuery asks the receiver for its freshest records of the named
// nodes, which the sender cannot reach. An empty list asks for all.
type RecordQuery struct {
	Nodes []string `json:"nodes,omitempty"`
}

// AddressRecord is a node's statement about where it can be reached. Only
// the node it describes (Node) signs it; others forward it unchanged.
// Addresses travel as strings so that one malformed entry makes its record
// refused, not the whole frame.
type AddressRecord struct {
	Node        string   `json:"node"`
	Incarnation uint64   `json:"inc"`             // bumped on every change and restart; newer wins
	Addrs       []string `json:"addrs,omitempty"` // public "IP:port": voted IP + listening port
	LAN         []string `json:"lan,omitempty"`   // local socket IPs of its links + listening port
	NAT         string   `json:"nat,omitempty"`   // none, cone, symmetric, cgnat or unknown
	Port        uint16   `json:"port"`            // listening port; 0: accepts no links
	Issued      int64    `json:"issued"`          // the subject's clock, Unix nanoseconds
}

// SignedRecord is an AddressRecord with the subject node's signature over
// Record.SigningBytes().
type SignedRecord struct {
	Record AddressRecord `json:"record"`
	Sig    []byte        `json:"sig"`
}

// recordDomain separates record signatures from anything else a node key
// may ever sign.
const recordDomain = "buoy address record v1\x00"

// SigningBytes returns the canonical bytes a record's signature covers: a
// domain string, then every field in a fixed order, strings and lists with
// a length prefix so that no two different records encode alike.
func (r AddressRecord) SigningBytes() []byte {
	b := make([]byte, 0, 128)
	b = append(b, recordDomain...)
	b = appendString(b, r.Node)
	b = binary.BigEndian.AppendUint64(b, r.Incarnation)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Issued))
	b = binary.BigEndian.AppendUint16(b, r.Port)
	b = appendString(b, r.NAT)
	b = binary.AppendUvarint(b, uint64(len(r.Addrs)))
	for _, a := range r.Addrs {
		b = appendString(b, a)
	}
	b = binary.AppendUvarint(b, uint64(len(r.LAN)))
	for _, a := range r.LAN {
		b = appendString(b, a)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Validate checks the envelope and the bounds of every field. It does not
// parse addresses or check signatures: that is the discovery package's job,
// record by record.
func (m ControlMsg) Validate() error {
	set := 0
	for _, p := range []bool{m.Heartbeat != nil, m.Push != nil, m.Query != nil} {
		if p {
			set++
		}
	}
	switch m.Type {
	case ControlHeartbeat:
		if set != 1 || m.Heartbeat == nil {
			return fmt.Errorf("%w: %s needs exactly its heartbeat body", ErrInvalidControl, m.Type)
		}
		return m.Heartbeat.validate()
	case ControlRecordPush:
		if set != 1 || m.Push == nil {
			return fmt.Errorf("%w: %s needs exactly its push body", ErrInvalidControl, m.Type)
		}
		return m.Push.validate()
	case ControlRecordQuery:
		if set != 1 || m.Query == nil {
			return fmt.Errorf("%w: %s needs exactly its query body", ErrInvalidControl, m.Type)
		}
		return m.Query.validate()
	case "":
		return fmt.Errorf("%w: no type", ErrInvalidControl)
	}
	return fmt.Errorf("%w: %.32q", ErrUnknownControl, string(m.Type))
}

func (h *Heartbeat) validate() error {
	if len(h.YouAre) > MaxAddrLen {
		return fmt.Errorf("%w: heartbeat you_are has %d bytes, at most %d", ErrInvalidControl, len(h.YouAre), MaxAddrLen)
	}
	if h.Record != nil {
		if err := h.Record.validate(); err != nil {
			return fmt.Errorf("heartbeat record: %w", err)
		}
	}
	return nil
}

func (p *RecordPush) validate() error {
	if len(p.Records) > MaxRecordsPerMsg {
		return fmt.Errorf("%w: push has %d records, at most %d", ErrInvalidControl, len(p.Records), MaxRecordsPerMsg)
	}
	for i := range p.Records {
		if err := p.Records[i].validate(); err != nil {
			return fmt.Errorf("push record %d: %w", i, err)
		}
	}
	return nil
}

func (q *RecordQuery) validate() error {
	if len(q.Nodes) > MaxQueryNodes {
		return fmt.Errorf("%w: query names %d nodes, at most %d", ErrInvalidControl, len(q.Nodes), MaxQueryNodes)
	}
	for i, n := range q.Nodes {
		if n == "" || len(n) > MaxNodeLen {
			return fmt.Errorf("%w: query node %d has %d bytes, want 1 to %d", ErrInvalidControl, i, len(n), MaxNodeLen)
		}
	}
	return nil
}

func (s *SignedRecord) validate() error {
	r := &s.Record
	switch {
	case r.Node == "" || len(r.Node) > MaxNodeLen:
		return fmt.Errorf("%w: record node has %d bytes, want 1 to %d", ErrInvalidControl, len(r.Node), MaxNodeLen)
	case len(s.Sig) == 0 || len(s.Sig) > MaxSigLen:
		return fmt.Errorf("%w: record signature has %d bytes, want 1 to %d", ErrInvalidControl, len(s.Sig), MaxSigLen)
	case len(r.NAT) > MaxNATLen:
		return fmt.Errorf("%w: record nat has %d bytes, at most %d", ErrInvalidControl, len(r.NAT), MaxNATLen)
	case len(r.Addrs) > MaxRecordAddrs:
		return fmt.Errorf("%w: record has %d addrs, at most %d", ErrInvalidControl, len(r.Addrs), MaxRecordAddrs)
	case len(r.LAN) > MaxRecordLAN:
		return fmt.Errorf("%w: record has %d lan addrs, at most %d", ErrInvalidControl, len(r.LAN), MaxRecordLAN)
	}
	for _, list := range [][]string{r.Addrs, r.LAN} {
		for _, a := range list {
			if len(a) > MaxAddrLen {
				return fmt.Errorf("%w: record address has %d bytes, at most %d", ErrInvalidControl, len(a), MaxAddrLen)
			}
		}
	}
	return nil
}

// DecodeControl decodes and validates one control frame body (the JSON
// after the length prefix). For a message of an unknown type it returns the
// envelope and an error wrapping ErrUnknownControl.
func DecodeControl(body []byte) (ControlMsg, error) {
	var m ControlMsg
	if err := json.Unmarshal(body, &m); err != nil {
		return ControlMsg{}, fmt.Errorf("decode control message: %w", err)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("decode control message: %w", err)
	}
	return m, nil
}

// ReadControl reads one control frame (at most MaxControlFrame bytes) and
// validates it as DecodeControl does. Any error but one wrapping
// ErrUnknownControl leaves the stream unusable.
func ReadControl(r io.Reader) (ControlMsg, error) {
	var m ControlMsg
	if err := ReadFrame(r, &m, MaxControlFrame); err != nil {
		return ControlMsg{}, fmt.Errorf("read control message: %w", err)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("read control message: %w", err)
	}
	return m, nil
}

// WriteControl validates m and writes it as one frame, so that a node
// never sends what its peers would refuse.
func WriteControl(w io.Writer, m ControlMsg) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("write control message: %w", err)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, m); err != nil {
		return fmt.Errorf("write control message: %w", err)
	}
	if buf.Len()-4 > MaxControlFrame {
		return fmt.Errorf("write control message: %w: %d bytes, limit %d", ErrFrameTooLarge, buf.Len()-4, MaxControlFrame)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
