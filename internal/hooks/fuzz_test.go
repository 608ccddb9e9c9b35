package hooks

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeEntries feeds arbitrary bytes to the audit reader: it must not
// panic, must account for every complete line, and every entry it returns
// must survive a round trip through Append's encoding.
func FuzzDecodeEntries(f *testing.F) {
	for _, e := range sampleEntries() {
		b, _ := json.Marshal(e)
		f.Add(append(b, '\n'))
	}
	f.Add([]byte("{\"kind\":\"hook\",\"exit_code\":null}\n{\"kind\":\"transition\"} trailing\n"))
	f.Add([]byte("not json\n\n{\"kind\":\"x\",\"time\":\"2026-01-01T00:00:00+02:00\"}\n{\"kind\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, bad, firstBad, err := decodeEntries(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("decodeEntries(%q): read error %v from a bytes.Reader", data, err)
		}
		if (bad == 0) != (firstBad == nil) {
			t.Fatalf("decodeEntries(%q): %d bad lines but first bad = %v", data, bad, firstBad)
		}
		if lines := bytes.Count(data, []byte("\n")); len(entries)+bad > lines {
			t.Fatalf("decodeEntries(%q) = %d entries and %d bad lines from %d complete lines", data, len(entries), bad, lines)
		}
		for _, e := range entries {
			b, err := json.Marshal(e)
			if err != nil {
				// Only a time outside what JSON can carry (year > 9999
				// is refused on encoding) gets here.
				if e.Time.Year() >= 0 && e.Time.Year() <= 9999 {
					t.Fatalf("Marshal(%+v): %v", e, err)
				}
				continue
			}
			var back Entry
			if err := decodeEntry(b, &back); err != nil {
				t.Fatalf("decodeEntry(%s) = %v after encoding a decoded entry", b, err)
			}
			b2, _ := json.Marshal(back)
			if !bytes.Equal(b, b2) {
				t.Fatalf("round trip of %s = %s", b, b2)
			}
		}
	})
}
