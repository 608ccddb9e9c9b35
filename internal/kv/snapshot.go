package kv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/benbjohnson/immutable"
)

// snapshotMagic opens every kv snapshot stream.
const snapshotMagic = "BKVS"

// snapshotVersion is the snapshot format written by this code.
const snapshotVersion = 1

// The snapshot layout (version 1), written entry by entry so a large map is
// never held twice in memory:
//
//	"BKVS" | uvarint version | uvarint last change | uvarint #entries
//	per entry, in key order: bytes key | bytes value | uvarint create | uvarint modify | varint expires (unix ns, 0 = none)
//	4-byte big-endian CRC-32C of everything before it
//
// The change log is not written: after a restore, a watcher older than the
// snapshot's last change gets ErrCompacted and re-reads.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot streams m to w.
func (m *Map) WriteSnapshot(w io.Writer) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var scratch []byte
	scratch = append(scratch, snapshotMagic...)
	scratch = binary.AppendUvarint(scratch, snapshotVersion)
	scratch = binary.AppendUvarint(scratch, m.lastChange)
	scratch = binary.AppendUvarint(scratch, uint64(m.entries.Len()))
	if _, err := bw.Write(scratch); err != nil {
		return fmt.Errorf("write kv snapshot: %w", err)
	}
	it := m.entries.Iterator()
	for !it.Done() {
		_, e, _ := it.Next()
		exp, _ := unixNanos(e.Expires)
		scratch = appendBytes(scratch[:0], e.Key)
		scratch = binary.AppendUvarint(scratch, uint64(len(e.Value)))
		if _, err := bw.Write(scratch); err != nil {
			return fmt.Errorf("write kv snapshot: %w", err)
		}
		if _, err := bw.Write(e.Value); err != nil {
			return fmt.Errorf("write kv snapshot: %w", err)
		}
		scratch = binary.AppendUvarint(scratch[:0], e.CreateIndex)
		scratch = binary.AppendUvarint(scratch, e.ModifyIndex)
		scratch = binary.AppendVarint(scratch, exp)
		if _, err := bw.Write(scratch); err != nil {
			return fmt.Errorf("write kv snapshot: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write kv snapshot: %w", err)
	}
	if _, err := w.Write(crc.Sum(nil)); err != nil {
		return fmt.Errorf("write kv snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a map written by WriteSnapshot, checking every entry
// as a decoded command is checked (MaxLimits, keys in strictly increasing
// order, indexes not above the last change) and the checksum. If r is an
// io.ByteReader (a *bufio.Reader), ReadSnapshot reads exactly the snapshot's
// bytes, so it can sit inside a larger stream; otherwise it buffers and may
// read past the end.
func ReadSnapshot(r io.Reader, opts Options) (*Map, error) {
	m, err := readSnapshot(r, opts)
	if err != nil {
		return nil, fmt.Errorf("read kv snapshot: %w", err)
	}
	return m, nil
}

func readSnapshot(r io.Reader, opts Options) (*Map, error) {
	br, ok := r.(snapReader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	s := &snapDecoder{r: br, crc: crc32.New(castagnoli)}
	magic := s.raw(len(snapshotMagic))
	if s.err == nil && string(magic) != snapshotMagic {
		return nil, fmt.Errorf("%w: not a kv snapshot", ErrInvalidSnapshot)
	}
	if v := s.uvarint(); s.err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrInvalidSnapshot, v, snapshotVersion)
	}
	last := s.uvarint()
	count := s.uvarint()
	if s.err != nil {
		return nil, s.err
	}
	m := New(opts)
	m.lastChange, m.floor = last, last
	entries := immutable.NewSortedMapBuilder[string, *Entry](stringComparer{})
	ttl := immutable.NewSortedMapBuilder[string, struct{}](stringComparer{})
	prev := ""
	for i := uint64(0); i < count; i++ {
		key := string(s.bytes(MaxLimits.MaxKeyBytes))
		e := &Entry{Key: key, Value: s.bytes(MaxLimits.MaxValueBytes)}
		e.CreateIndex, e.ModifyIndex = s.uvarint(), s.uvarint()
		e.Expires = fromNanos(s.varint())
		if s.err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, s.err)
		}
		if err := e.check(prev, i, last); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		prev = key
		entries.Set(key, e)
		if !e.Expires.IsZero() {
			ttl.Set(ttlKey(e), struct{}{})
		}
	}
	want := s.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %w", ErrInvalidSnapshot, err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, computed %08x", ErrInvalidSnapshot, got, want)
	}
	m.entries, m.ttl = entries.Map(), ttl.Map()
	return m, nil
}

// check validates an entry read from a snapshot.
func (e *Entry) check(prev string, i, last uint64) error {
	if err := MaxLimits.CheckKey(e.Key); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	if i > 0 && e.Key <= prev {
		return fmt.Errorf("%w: key %q after %q", ErrInvalidSnapshot, e.Key, prev)
	}
	if e.CreateIndex == 0 || e.CreateIndex > e.ModifyIndex || e.ModifyIndex > last {
		return fmt.Errorf("%w: key %q has indexes %d/%d, last change %d", ErrInvalidSnapshot, e.Key, e.CreateIndex, e.ModifyIndex, last)
	}
	if _, ok := unixNanos(e.Expires); !ok {
		return fmt.Errorf("%w: key %q expires at %v", ErrInvalidSnapshot, e.Key, e.Expires)
	}
	return nil
}

type snapReader interface {
	io.Reader
	io.ByteReader
}

// snapDecoder reads snapshot fields, feeding the checksum and remembering
// the first error.
type snapDecoder struct {
	r   snapReader
	crc hash.Hash32
	err error
	one [1]byte
}

// ReadByte lets binary.ReadUvarint read through the checksum.
func (s *snapDecoder) ReadByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err == nil {
		s.one[0] = c
		s.crc.Write(s.one[:])
	}
	return c, err
}

func (s *snapDecoder) setErr(what string, err error) {
	if s.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		s.err = fmt.Errorf("%w: %s: %w", ErrInvalidSnapshot, what, err)
	}
}

func (s *snapDecoder) uvarint() uint64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(s)
	if err != nil {
		s.setErr("integer", err)
	}
	return v
}

func (s *snapDecoder) varint() int64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(s)
	if err != nil {
		s.setErr("integer", err)
	}
	return v
}

func (s *snapDecoder) raw(n int) []byte {
	if s.err != nil {
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		s.setErr("data", err)
		return nil
	}
	s.crc.Write(b)
	return b
}

// bytes reads a length-prefixed field, refusing lengths above max before
// allocating.
func (s *snapDecoder) bytes(max int) []byte {
	n := s.uvarint()
	if s.err != nil {
		return nil
	}
	if n > uint64(max) {
		s.setErr("length", fmt.Errorf("%d bytes, the ceiling is %d", n, max))
		return nil
	}
	return s.raw(int(n))
}
