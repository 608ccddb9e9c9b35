package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestAppendPutJSON: the hand-written answer to a put is byte for byte what
// the generic reply writes.
func TestAppendPutJSON(t *testing.T) {
	exp := time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.UTC)
	entries := []KVEntry{
		{Key: "a", CreateIndex: 1, ModifyIndex: 1},
		{Key: "app/config", CreateIndex: 7, ModifyIndex: 1 << 62},
		{Key: "<script>&\"quote\"\\", CreateIndex: 3, ModifyIndex: 4, Expires: &exp},
		{Key: "ключ/\u2028\u2029\x01\x7f\ufffd", CreateIndex: 0, ModifyIndex: 0},
		{Key: "ttl", CreateIndex: 5, ModifyIndex: 6, Expires: &time.Time{}},
	}
	for _, e := range entries {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
		if got := appendPutJSON(nil, e); string(got) != want.String() {
			t.Errorf("appendPutJSON(%+v) =\n%s\nwant\n%s", e, got, want.String())
		}
	}
}
