package buoy

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

func TestKVBatchCodec(t *testing.T) {
	put := kv.Put("a/b", []byte("value"), time.Time{})
	cmd, err := put.Encode()
	if err != nil {
		t.Fatal(err)
	}
	reqs := []kvRequest{{Cmd: cmd}, {Cmd: cmd, TTL: 90 * time.Second}, {Cmd: []byte{}}}
	got, err := decodeKVBatch(encodeKVBatch(reqs))
	if err != nil || len(got) != len(reqs) {
		t.Fatalf("decodeKVBatch(encodeKVBatch(%d writes)) = %d writes, %v", len(reqs), len(got), err)
	}
	for i := range reqs {
		if !bytes.Equal(got[i].Cmd, reqs[i].Cmd) || got[i].TTL != reqs[i].TTL {
			t.Errorf("write %d = %+v, want %+v", i, got[i], reqs[i])
		}
	}

	res := kv.Result{Index: 12, Ops: []kv.OpResult{{Kind: kv.OpPut, Entry: kv.Entry{Key: "a/b", Value: []byte("value"), CreateIndex: 3, ModifyIndex: 12}}}}
	answers := []kvAnswer{
		{Result: &res},
		kvAnswerOf(KVResult{}, store.ErrNotLeader),
		kvAnswerOf(KVResult{}, &kv.CheckError{Check: 0, Kind: kv.CheckModifyIndex, Key: "k", Found: true, ModifyIndex: 2}),
	}
	dec, err := decodeKVAnswers(encodeKVAnswers(answers), len(answers))
	if err != nil {
		t.Fatal(err)
	}
	want := res
	want.Ops = []kv.OpResult{res.Ops[0]}
	want.Ops[0].Entry.Value = nil // left out: the follower has it
	if dec[0].Result == nil || !reflect.DeepEqual(*dec[0].Result, want) {
		t.Errorf("answer 0 = %+v, want %+v", dec[0].Result, want)
	}
	for i := 1; i < 3; i++ {
		if dec[i].Result != nil || dec[i].Error != answers[i].Error || dec[i].Code != answers[i].Code {
			t.Errorf("answer %d = %+v, want %+v", i, dec[i], answers[i])
		}
	}
	if !errors.Is(store.FromCode(dec[1].Code, dec[1].Error), store.ErrNotLeader) {
		t.Errorf("answer 1 rebuilds as %v, want ErrNotLeader", store.FromCode(dec[1].Code, dec[1].Error))
	}
	if !errors.Is(store.FromCode(dec[2].Code, dec[2].Error), ErrKVCheckFailed) {
		t.Errorf("answer 2 rebuilds as %v, want ErrKVCheckFailed", store.FromCode(dec[2].Code, dec[2].Error))
	}
}

// TestKVBatchCodecRefuses: what a broken or lying peer could send.
func TestKVBatchCodecRefuses(t *testing.T) {
	one := encodeKVBatch([]kvRequest{{Cmd: []byte("cmd")}})
	batches := map[string][]byte{
		"empty":          nil,
		"no writes":      {0},
		"too many":       {kvMaxBatch + 1, 0, 0},
		"truncated":      one[:len(one)-1],
		"trailing bytes": append(one[:len(one):len(one)], 0),
		"ttl overflow":   {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0},
		"long command":   {1, 0, 0xff, 0x01, 'x'},
	}
	for name, in := range batches {
		if _, err := decodeKVBatch(in); !errors.Is(err, errKVBatch) {
			t.Errorf("decodeKVBatch(%s %q) = %v, want errKVBatch", name, in, err)
		}
	}
	two := encodeKVAnswers([]kvAnswer{kvAnswerOf(KVResult{}, store.ErrNotLeader), {Result: &kv.Result{Index: 1}}})
	answers := map[string][]byte{
		"empty":          nil,
		"wrong count":    encodeKVAnswers([]kvAnswer{{Result: &kv.Result{Index: 1}}}),
		"truncated":      two[:len(two)-1],
		"trailing bytes": append(two[:len(two):len(two)], 0),
		"unknown kind":   {2, 7, 0, 0},
		"empty error":    {2, 1, 0, 0, 0, 1, 0, 0},
	}
	for name, in := range answers {
		if _, err := decodeKVAnswers(in, 2); !errors.Is(err, errKVBatch) {
			t.Errorf("decodeKVAnswers(%s %q) = %v, want errKVBatch", name, in, err)
		}
	}
}

func FuzzDecodeKVBatch(f *testing.F) {
	f.Add(encodeKVBatch([]kvRequest{{Cmd: []byte("x"), TTL: time.Second}, {Cmd: nil}}))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		reqs, err := decodeKVBatch(in)
		if err != nil {
			return
		}
		if len(reqs) == 0 || len(reqs) > kvMaxBatch {
			t.Fatalf("decoded %d writes", len(reqs))
		}
		again, err := decodeKVBatch(encodeKVBatch(reqs))
		if err != nil || !reflect.DeepEqual(normalize(again), normalize(reqs)) {
			t.Fatalf("re-encoding %+v decodes to %+v, %v", reqs, again, err)
		}
	})
}

func normalize(reqs []kvRequest) []kvRequest {
	out := make([]kvRequest, len(reqs))
	for i, r := range reqs {
		out[i] = kvRequest{Cmd: append([]byte{}, r.Cmd...), TTL: r.TTL}
	}
	return out
}

func FuzzDecodeKVAnswers(f *testing.F) {
	res := kv.Result{Index: 5, Ops: []kv.OpResult{{Kind: kv.OpGet, Found: true, Entry: kv.Entry{Key: "k", Value: []byte("v")}}}}
	f.Add(encodeKVAnswers([]kvAnswer{{Result: &res}, kvAnswerOf(KVResult{}, store.ErrNotLeader)}), 2)
	f.Add([]byte{1, 1, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, in []byte, n int) {
		if n < 0 || n > kvMaxBatch {
			return
		}
		answers, err := decodeKVAnswers(in, n)
		if err != nil {
			return
		}
		if len(answers) != n {
			t.Fatalf("decoded %d answers, want %d", len(answers), n)
		}
		for i, a := range answers {
			if (a.Result == nil) == (a.Error == "") {
				t.Fatalf("answer %d = %+v: want a result or an error", i, a)
			}
		}
	})
}
