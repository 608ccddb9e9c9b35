package kv

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// bigMap returns a map of n keys with 256-byte values, built through Apply.
func bigMap(b *testing.B, n int) (*Map, []string) {
	b.Helper()
	m := New(Options{})
	keys := make([]string, n)
	val := []byte(strings.Repeat("v", 256))
	for i := range n {
		keys[i] = fmt.Sprintf("bench/%08d", (i*7919)%n)
		c := Put(keys[i], val, time.Time{})
		next, _, err := m.Apply(uint64(i+1), &c)
		if err != nil {
			b.Fatal(err)
		}
		m = next
	}
	return m, keys
}

// BenchmarkMap100k measures one version step on a 100k-key map: what the
// FSM pays per write, including the change log.
func BenchmarkMap100k(b *testing.B) {
	const n = 100_000
	m, keys := bigMap(b, n)
	val := []byte(strings.Repeat("w", 256))
	b.Run("put", func(b *testing.B) {
		b.ReportAllocs()
		cur, idx := m, uint64(n)
		i := 0
		for b.Loop() {
			idx++
			c := Put(keys[i%n], val, time.Time{})
			next, _, err := cur.Apply(idx, &c)
			if err != nil {
				b.Fatal(err)
			}
			cur = next
			i++
		}
	})
	b.Run("put-cas", func(b *testing.B) {
		b.ReportAllocs()
		cur, idx := m, uint64(n)
		i := 0
		for b.Loop() {
			idx++
			k := keys[i%n]
			e, _ := cur.Get(k)
			c := Put(k, val, time.Time{})
			c.Checks = []Check{CAS(k, e.ModifyIndex)}
			next, _, err := cur.Apply(idx, &c)
			if err != nil {
				b.Fatal(err)
			}
			cur = next
			i++
		}
	})
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := m.Get(keys[i%n]); !ok {
				b.Fatal("missing key")
			}
			i++
		}
	})
	b.Run("list-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got := len(m.List("bench/000010")); got != 100 {
				b.Fatalf("List = %d entries, want 100", got)
			}
		}
	})
}

func BenchmarkSnapshot100k(b *testing.B) {
	m, _ := bigMap(b, 100_000)
	var buf strings.Builder
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if err := m.WriteSnapshot(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadSnapshot(strings.NewReader(buf.String()), Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
