package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestKindRoundTrip(t *testing.T) {
	for _, k := range []Kind{KindControl, KindRaft, KindRPC, KindRelay} {
		var b bytes.Buffer
		if err := WriteKind(&b, k); err != nil {
			t.Fatalf("WriteKind(%v) = %v", k, err)
		}
		got, err := ReadKind(&b)
		if err != nil || got != k {
			t.Errorf("ReadKind after WriteKind(%v) = %v, %v", k, got, err)
		}
	}
}

func TestReadKindRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"zero", []byte{0}, ErrUnknownKind},
		{"too large", []byte{5}, ErrUnknownKind},
		{"http", []byte("GET / HTTP/1.1"), ErrUnknownKind},
		{"empty", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadKind(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadKind(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if err := WriteKind(io.Discard, Kind(9)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("WriteKind(9) = %v, want ErrUnknownKind", err)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	in := JoinRequest{Token: "t", Name: "pi2", CSR: []byte{1, 2, 3}, PeerPort: 7300, Dialed: "192.0.2.1:7300"}
	if err := WriteFrame(&b, in); err != nil {
		t.Fatal(err)
	}
	var out JoinRequest
	if err := ReadFrame(&b, &out, 0); err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || !bytes.Equal(out.CSR, in.CSR) || out.PeerPort != in.PeerPort || out.Dialed != in.Dialed {
		t.Errorf("frame round trip = %+v, want %+v", out, in)
	}
}

func TestReadFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, 0, "too large"},
		{"over caller limit", append([]byte{0, 0, 0, 10}, []byte(`{"op":"x"}`)...), 5, "too large"},
		{"short body", []byte{0, 0, 0, 10, '{'}, 0, "read frame body"},
		{"not json", append([]byte{0, 0, 0, 3}, []byte("abc")...), 0, "decode frame"},
		{"short header", []byte{0, 0}, 0, "read frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := ReadFrame(bytes.NewReader(tt.in), &r, tt.max)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadFrame(%q) = %v, want error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzReadKind(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ReadKind(bytes.NewReader(b))
		if err == nil && !k.Valid() {
			t.Fatalf("ReadKind accepted invalid kind %d", k)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	_ = WriteFrame(&b, Request{Op: "apply", Body: []byte(`{"a":1}`)})
	f.Add(b.Bytes())
	b.Reset()
	_ = WriteFrame(&b, JoinResponse{Error: "x", Members: []MemberAddr{{Name: "a", Address: "b"}}})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Request
		if err := ReadFrame(bytes.NewReader(in), &r, 1<<16); err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, r); err != nil {
			t.Fatalf("decoded request does not re-encode: %v", err)
		}
		var jr JoinResponse
		_ = ReadFrame(bytes.NewReader(in), &jr, 1<<16)
	})
}

// TestRawFrame: a raw request travels as a JSON header frame and a raw
// frame, both in one buffer; the reader takes them back in order and
// refuses an oversized or truncated raw frame.
func TestRawFrame(t *testing.T) {
	payload := []byte{0, 0xff, '{', 1, 2, 3}
	b, err := AppendFrame(nil, Request{Op: "kv-batch-raw", Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if b, err = AppendRawFrame(b, payload); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(b)
	var req Request
	if err := ReadFrame(r, &req, 0); err != nil || req.Op != "kv-batch-raw" || !req.Raw {
		t.Fatalf("ReadFrame = %+v, %v; want the raw request header", req, err)
	}
	got, err := ReadRawFrame(r, 0)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("ReadRawFrame = %q, %v; want %q", got, err, payload)
	}
	if _, err := ReadRawFrame(r, 0); err == nil {
		t.Error("ReadRawFrame past the end succeeded")
	}
	if _, err := ReadRawFrame(bytes.NewReader(b[len(b)-10:len(b)-1]), 0); err == nil {
		t.Error("ReadRawFrame of a truncated frame succeeded")
	}
	big, _ := AppendRawFrame(nil, make([]byte, 100))
	if _, err := ReadRawFrame(bytes.NewReader(big), 99); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("ReadRawFrame over the limit = %v, want ErrFrameTooLarge", err)
	}
	if _, err := AppendRawFrame(nil, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("AppendRawFrame over MaxFrame = %v, want ErrFrameTooLarge", err)
	}
}
