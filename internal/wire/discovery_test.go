package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func testRecord() SignedRecord {
	return SignedRecord{
		Record: AddressRecord{
			Node:        "pi2",
			Incarnation: 7,
			Addrs:       []string{"198.51.100.7:7300", "[2001:db8::7]:7300"},
			LAN:         []string{"192.0.2.17:7300"},
			NAT:         "cone",
			Port:        7300,
			Issued:      1_700_000_000_000_000_000,
		},
		Sig: bytes.Repeat([]byte{0xab}, 64),
	}
}

func TestControlRoundTrip(t *testing.T) {
	rec := testRecord()
	tests := []struct {
		name string
		msg  ControlMsg
	}{
		{"heartbeat", ControlMsg{Type: ControlHeartbeat, Heartbeat: &Heartbeat{Seq: 3, SentAt: 42, YouAre: "198.51.100.7:41000"}}},
		{"heartbeat with record", ControlMsg{Type: ControlHeartbeat, Heartbeat: &Heartbeat{Seq: 1, YouAre: "[2001:db8::1]:7300", Record: &rec}}},
		{"push", ControlMsg{Type: ControlRecordPush, Push: &RecordPush{Records: []SignedRecord{rec, rec}}}},
		{"empty push", ControlMsg{Type: ControlRecordPush, Push: &RecordPush{}}},
		{"query", ControlMsg{Type: ControlRecordQuery, Query: &RecordQuery{Nodes: []string{"pi1", "vps"}}}},
		{"query all", ControlMsg{Type: ControlRecordQuery, Query: &RecordQuery{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteControl(&b, tt.msg); err != nil {
				t.Fatalf("WriteControl(%+v) = %v", tt.msg, err)
			}
			got, err := ReadControl(&b)
			if err != nil {
				t.Fatalf("ReadControl after WriteControl(%+v) = %v", tt.msg, err)
			}
			// A nil and an empty list encode alike; compare the encodings.
			want, _ := json.Marshal(tt.msg)
			have, _ := json.Marshal(got)
			if !bytes.Equal(have, want) {
				t.Errorf("ReadControl = %s, want %s", have, want)
			}
		})
	}
}

func TestControlRejects(t *testing.T) {
	rec := testRecord()
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		json string
		want error
	}{
		{"no type", `{"heartbeat":{"seq":1}}`, ErrInvalidControl},
		{"unknown type", `{"type":"gossip","gossip":{}}`, ErrUnknownControl},
		{"heartbeat without body", `{"type":"heartbeat"}`, ErrInvalidControl},
		{"heartbeat with push body", `{"type":"heartbeat","push":{"records":[]}}`, ErrInvalidControl},
		{"two bodies", `{"type":"heartbeat","heartbeat":{},"query":{}}`, ErrInvalidControl},
		{"push without body", `{"type":"push"}`, ErrInvalidControl},
		{"query without body", `{"type":"query"}`, ErrInvalidControl},
		{"long you_are", `{"type":"heartbeat","heartbeat":{"you_are":"` + strings.Repeat("1", 65) + `"}}`, ErrInvalidControl},
		{"empty query node", `{"type":"query","query":{"nodes":[""]}}`, ErrInvalidControl},
		{"long query node", `{"type":"query","query":{"nodes":["` + long + `"]}}`, ErrInvalidControl},
		{"record without sig", `{"type":"push","push":{"records":[{"record":{"node":"a","inc":1}}]}}`, ErrInvalidControl},
		{"record without node", `{"type":"push","push":{"records":[{"record":{"inc":1},"sig":"AA=="}]}}`, ErrInvalidControl},
		{"record long nat", `{"type":"push","push":{"records":[{"record":{"node":"a","nat":"` + long + `"},"sig":"AA=="}]}}`, ErrInvalidControl},
		{"record too many addrs", `{"type":"push","push":{"records":[{"record":{"node":"a","addrs":["a","b","c","d","e"]},"sig":"AA=="}]}}`, ErrInvalidControl},
		{"record too many lan", `{"type":"push","push":{"records":[{"record":{"node":"a","lan":["1","2","3","4","5","6","7","8","9"]},"sig":"AA=="}]}}`, ErrInvalidControl},
		{"record long addr", `{"type":"push","push":{"records":[{"record":{"node":"a","lan":["` + long + `1"]},"sig":"AA=="}]}}`, ErrInvalidControl},
		{"heartbeat bad record", `{"type":"heartbeat","heartbeat":{"record":{"record":{"node":""},"sig":"AA=="}}}`, ErrInvalidControl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeControl([]byte(tt.json))
			if !errors.Is(err, tt.want) {
				t.Errorf("DecodeControl(%s) = %v, want %v", tt.json, err, tt.want)
			}
		})
	}
	t.Run("not json", func(t *testing.T) {
		if _, err := DecodeControl([]byte("{")); err == nil {
			t.Error("DecodeControl({) = nil error, want one")
		}
	})
	t.Run("write refuses", func(t *testing.T) {
		var b bytes.Buffer
		bad := ControlMsg{Type: ControlRecordPush, Push: &RecordPush{Records: make([]SignedRecord, MaxRecordsPerMsg+1)}}
		if err := WriteControl(&b, bad); !errors.Is(err, ErrInvalidControl) || b.Len() != 0 {
			t.Errorf("WriteControl(%d records) = %v and %d bytes, want ErrInvalidControl and nothing written", len(bad.Push.Records), err, b.Len())
		}
		rec.Sig = nil
		bad = ControlMsg{Type: ControlHeartbeat, Heartbeat: &Heartbeat{Record: &rec}}
		if err := WriteControl(&b, bad); !errors.Is(err, ErrInvalidControl) {
			t.Errorf("WriteControl(unsigned record) = %v, want ErrInvalidControl", err)
		}
	})
	t.Run("frame over limit", func(t *testing.T) {
		in := []byte{0, 0x10, 0, 1} // MaxControlFrame + 1
		if _, err := ReadControl(bytes.NewReader(in)); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("ReadControl(length %d) = %v, want ErrFrameTooLarge", MaxControlFrame+1, err)
		}
	})
}

func TestSigningBytes(t *testing.T) {
	base := testRecord().Record
	if !bytes.Equal(base.SigningBytes(), testRecord().Record.SigningBytes()) {
		t.Fatal("SigningBytes differs for equal records")
	}
	if !bytes.HasPrefix(base.SigningBytes(), []byte(recordDomain)) {
		t.Errorf("SigningBytes does not start with the domain %q", recordDomain)
	}
	// Every change of any field, including moves across list and string
	// boundaries, must change the signed bytes.
	tests := []struct {
		name   string
		modify func(r *AddressRecord)
	}{
		{"node", func(r *AddressRecord) { r.Node = "pi3" }},
		{"incarnation", func(r *AddressRecord) { r.Incarnation++ }},
		{"issued", func(r *AddressRecord) { r.Issued++ }},
		{"port", func(r *AddressRecord) { r.Port = 7301 }},
		{"nat", func(r *AddressRecord) { r.NAT = "symmetric" }},
		{"addr order", func(r *AddressRecord) { r.Addrs[0], r.Addrs[1] = r.Addrs[1], r.Addrs[0] }},
		{"addr moved to lan", func(r *AddressRecord) { r.LAN = append(r.LAN, r.Addrs[1]); r.Addrs = r.Addrs[:1] }},
		{"lan dropped", func(r *AddressRecord) { r.LAN = nil }},
		{"string boundary", func(r *AddressRecord) { r.Node = "pi"; r.NAT = "2cone" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRecord().Record
			tt.modify(&r)
			if reflect.DeepEqual(r, base) {
				t.Fatal("modify did not change the record")
			}
			if bytes.Equal(r.SigningBytes(), base.SigningBytes()) {
				t.Errorf("SigningBytes(%+v) equals SigningBytes(%+v)", r, base)
			}
		})
	}
}

func FuzzDecodeControl(f *testing.F) {
	rec := testRecord()
	for _, m := range []ControlMsg{
		{Type: ControlHeartbeat, Heartbeat: &Heartbeat{Seq: 3, SentAt: 42, YouAre: "198.51.100.7:41000", Record: &rec}},
		{Type: ControlRecordPush, Push: &RecordPush{Records: []SignedRecord{rec}}},
		{Type: ControlRecordQuery, Query: &RecordQuery{Nodes: []string{"pi1"}}},
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"heartbeat","heartbeat":{"you_are":"[::1]:0","seq":-1}}`))
	f.Add([]byte(`{"type":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeControl(body)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("DecodeControl accepted a message Validate refuses: %v", err)
		}
		if m.Heartbeat != nil && m.Heartbeat.Record != nil {
			_ = m.Heartbeat.Record.Record.SigningBytes()
		}
		var b bytes.Buffer
		if err := WriteControl(&b, m); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		again, err := ReadControl(&b)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		x, _ := json.Marshal(m)
		y, _ := json.Marshal(again)
		if !bytes.Equal(x, y) {
			t.Fatalf("round trip changed the message: %s != %s", x, y)
		}
	})
}

func FuzzReadControl(f *testing.F) {
	var b bytes.Buffer
	rec := testRecord()
	_ = WriteControl(&b, ControlMsg{Type: ControlRecordPush, Push: &RecordPush{Records: []SignedRecord{rec}}})
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ReadControl(bytes.NewReader(in))
		if err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("ReadControl accepted a message Validate refuses: %v", err)
			}
		}
	})
}
