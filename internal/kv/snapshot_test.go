package kv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"testing"
	"time"
)

func sampleMap(t testing.TB, n int) *Map {
	t.Helper()
	m := New(Options{})
	t0 := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		exp := time.Time{}
		if i%3 == 0 {
			exp = t0.Add(time.Duration(n-i) * time.Second)
		}
		c := Put(fmt.Sprintf("key/%05d", (i*7919)%n), []byte(fmt.Sprint("value-", i)), exp)
		next, _, err := m.Apply(uint64(i+1), &c)
		if err != nil {
			t.Fatal(err)
		}
		m = next
	}
	return m
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := sampleMap(t, n)
			var buf bytes.Buffer
			if err := m.WriteSnapshot(&buf); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), Options{})
			if err != nil {
				t.Fatalf("ReadSnapshot = %v", err)
			}
			if !slices.Equal(dump(got), dump(m)) || got.Len() != m.Len() || got.LastChange() != m.LastChange() {
				t.Fatalf("restored map differs: %d keys at %d, want %d at %d", got.Len(), got.LastChange(), m.Len(), m.LastChange())
			}
			far := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
			if g, w := got.Expired(far, 0), m.Expired(far, 0); !slices.Equal(g, w) {
				t.Errorf("restored TTL index: %d expiries, want %d", len(g), len(w))
			}
			// The change log is not in the snapshot: older watchers are told.
			if n > 0 {
				if _, err := got.Changes(m.LastChange()-1, ""); !errors.Is(err, ErrCompacted) {
					t.Errorf("Changes before the snapshot = %v, want %v", err, ErrCompacted)
				}
			}
			if evs, err := got.Changes(m.LastChange(), ""); err != nil || evs != nil {
				t.Errorf("Changes(last) = %v, %v, want none", evs, err)
			}
			// And it goes on from there.
			c := Put("after", []byte("x"), time.Time{})
			next, _, err := got.Apply(m.LastChange()+1, &c)
			if err != nil {
				t.Fatal(err)
			}
			if evs, err := next.Changes(m.LastChange(), ""); err != nil || len(evs) != 1 {
				t.Errorf("Changes after restore and put = %v, %v, want one event", evs, err)
			}
			if n > 0 {
				if _, err := next.Changes(m.LastChange()-1, ""); !errors.Is(err, ErrCompacted) {
					t.Errorf("Changes before the snapshot, after a put = %v, want %v", err, ErrCompacted)
				}
			}
			// Equal maps give equal snapshots.
			var again bytes.Buffer
			if err := got.WriteSnapshot(&again); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("snapshot of the restored map differs (%v)", err)
			}
		})
	}
}

// TestSnapshotEmbedded checks that a snapshot inside a larger stream is read
// exactly, leaving what follows for the caller.
func TestSnapshotEmbedded(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("header\n")
	if err := sampleMap(t, 50).WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("trailer")
	br := bufio.NewReader(&buf)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSnapshot(br, Options{}); err != nil {
		t.Fatalf("ReadSnapshot = %v", err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "trailer" {
		t.Errorf("after the snapshot: %q, want %q", rest, "trailer")
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleMap(t, 20).WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for n := range len(good) {
		if _, err := ReadSnapshot(bytes.NewReader(good[:n]), Options{}); !errors.Is(err, ErrInvalidSnapshot) {
			t.Fatalf("ReadSnapshot(first %d of %d bytes) = %v, want %v", n, len(good), err, ErrInvalidSnapshot)
		}
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if _, err := ReadSnapshot(bytes.NewReader(bad), Options{}); !errors.Is(err, ErrInvalidSnapshot) {
			t.Fatalf("ReadSnapshot(byte %d flipped) = %v, want %v", i, err, ErrInvalidSnapshot)
		}
	}
}

// rawSnapshot builds a snapshot from parts, with a valid checksum, to test
// the checks behind the checksum.
func rawSnapshot(version, last uint64, entries ...Entry) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	hdr := append([]byte(snapshotMagic), byte(version), byte(last), byte(len(entries)))
	w.Write(hdr)
	for _, e := range entries {
		exp, _ := unixNanos(e.Expires)
		var s []byte
		s = appendBytes(s, e.Key)
		s = appendBytes(s, e.Value)
		s = append(s, byte(e.CreateIndex), byte(e.ModifyIndex))
		s = binary.AppendVarint(s, exp)
		w.Write(s)
	}
	w.Flush()
	return binary.BigEndian.AppendUint32(b.Bytes(), crc32.Checksum(b.Bytes(), castagnoli))
}

func TestSnapshotChecks(t *testing.T) {
	e := func(k string, c, m uint64) Entry {
		return Entry{Key: k, Value: []byte("v"), CreateIndex: c, ModifyIndex: m}
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"valid", rawSnapshot(1, 9, e("a", 1, 2), e("b", 3, 9)), true},
		{"version 2", rawSnapshot(2, 9, e("a", 1, 2)), false},
		{"unsorted", rawSnapshot(1, 9, e("b", 1, 2), e("a", 3, 9)), false},
		{"duplicate", rawSnapshot(1, 9, e("a", 1, 2), e("a", 3, 9)), false},
		{"create zero", rawSnapshot(1, 9, e("a", 0, 2)), false},
		{"create after modify", rawSnapshot(1, 9, e("a", 3, 2)), false},
		{"modify after last", rawSnapshot(1, 9, e("a", 1, 10)), false},
		{"empty key", rawSnapshot(1, 9, e("", 1, 2)), false},
		{"invalid key", rawSnapshot(1, 9, e("\xff", 1, 2)), false},
		{"wrong magic", append([]byte("XKVS"), rawSnapshot(1, 0)[4:]...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadSnapshot(bytes.NewReader(tt.b), Options{})
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidSnapshot)) {
				t.Errorf("ReadSnapshot(%x) = %v, want ok=%v", tt.b, err, tt.ok)
			}
		})
	}
}

func FuzzReadSnapshot(f *testing.F) {
	var buf bytes.Buffer
	if err := sampleMap(f, 5).WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(rawSnapshot(1, 9, Entry{Key: "a", Value: []byte("v"), CreateIndex: 1, ModifyIndex: 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadSnapshot(bytes.NewReader(b), Options{})
		if err != nil {
			if !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("ReadSnapshot(%x) = %v, want an error wrapping %v", b, err, ErrInvalidSnapshot)
			}
			return
		}
		// What reads back writes back the same bytes.
		var out bytes.Buffer
		if err := m.WriteSnapshot(&out); err != nil {
			t.Fatal(err)
		}
		m2, err := ReadSnapshot(&out, Options{})
		if err != nil || !slices.Equal(dump(m2), dump(m)) {
			t.Fatalf("snapshot of ReadSnapshot(%x) does not read back: %v", b, err)
		}
	})
}
