package clustertest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// op builds a recorded operation; ret < 0 means an unknown outcome.
func op(client int, call, ret int64, in KVInput, out KVOutput) porcupine.Operation {
	if ret < 0 {
		ret = math.MaxInt64
		out.Unknown = true
	}
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func get(k string) KVInput                     { return KVInput{Kind: KVGet, Key: k} }
func put(k, v string) KVInput                  { return KVInput{Kind: KVPut, Key: k, Value: v} }
func cas(k string, i uint64, v string) KVInput { return KVInput{Kind: KVCAS, Key: k, CAS: i, Value: v} }
func del(k string) KVInput                     { return KVInput{Kind: KVDelete, Key: k} }
func found(v string, i uint64) KVOutput        { return KVOutput{OK: true, Value: v, Index: i} }
func wrote(i uint64) KVOutput                  { return KVOutput{OK: true, Index: i} }

// TestKVModel: the model accepts linearizable histories, with writes of
// unknown outcome taking effect or not, and rejects the anomalies the
// whole-cluster tests look for.
func TestKVModel(t *testing.T) {
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"read your write", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, get("a"), found("x", 5)),
		}, true},
		{"read missed a completed write", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, get("a"), KVOutput{}),
		}, false},
		{"read concurrent with the write may miss it", []porcupine.Operation{
			op(0, 1, 4, put("a", "x"), wrote(5)),
			op(1, 2, 3, get("a"), KVOutput{}),
		}, true},
		{"stale read after a newer write", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(0, 3, 4, put("a", "y"), wrote(7)),
			op(1, 5, 6, get("a"), found("x", 5)),
		}, false},
		{"read with the wrong index", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, get("a"), found("x", 6)),
		}, false},
		{"indexes go backwards", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(7)),
			op(0, 3, 4, put("a", "y"), wrote(5)),
		}, false},
		{"cas reported failed but applied (a retried write)", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, cas("a", 5, "y"), KVOutput{}),
			op(2, 5, 6, get("a"), found("y", 8)),
		}, false},
		{"cas on the current index", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, cas("a", 5, "y"), wrote(8)),
			op(1, 5, 6, cas("a", 5, "z"), KVOutput{}),
			op(2, 7, 8, get("a"), found("y", 8)),
		}, true},
		{"create-only cas on an existing key", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, cas("a", 0, "y"), wrote(8)),
		}, false},
		{"unknown put seen later", []porcupine.Operation{
			op(0, 1, -1, put("a", "x"), KVOutput{}),
			op(1, 3, 4, get("a"), found("x", 9)),
			op(1, 5, 6, cas("a", 9, "y"), wrote(11)),
		}, true},
		{"unknown put never seen", []porcupine.Operation{
			op(0, 1, -1, put("a", "x"), KVOutput{}),
			op(1, 3, 4, get("a"), KVOutput{}),
		}, true},
		{"unknown put cannot undo a later read", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, -1, put("a", "y"), KVOutput{}),
			op(2, 4, 5, get("a"), found("y", 7)),
			op(2, 6, 7, get("a"), found("x", 5)),
		}, false},
		{"unknown cas on an unknown index: applied", []porcupine.Operation{
			op(0, 1, -1, put("a", "x"), KVOutput{}),
			op(1, 2, -1, cas("a", 6, "y"), KVOutput{}),
			op(2, 10, 11, get("a"), found("y", 8)),
		}, true},
		{"delete reports what existed", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, del("a"), KVOutput{OK: false}),
		}, false},
		{"keys are independent", []porcupine.Operation{
			op(0, 1, 2, put("a", "x"), wrote(5)),
			op(1, 3, 4, get("b"), KVOutput{}),
			op(1, 5, 6, del("a"), KVOutput{OK: true}),
			op(1, 7, 8, get("a"), KVOutput{}),
		}, true},
	}
	model := KVModel.ToModel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(model, tt.ops); got != tt.want {
				t.Errorf("CheckOperations = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestKVHistoryOrder: the logical clock orders an operation that returned
// before another was called, and a write of unknown outcome stays open.
func TestKVHistoryOrder(t *testing.T) {
	var h KVHistory
	done := h.Call(0, put("a", "x"))
	done(wrote(5), KVOpInfo{Node: "n1"}, true)
	h.Call(1, put("a", "y"))(KVOutput{Unknown: true}, KVOpInfo{Node: "n2", Err: "timeout"}, true)
	h.Call(2, get("a"))(KVOutput{Unknown: true}, KVOpInfo{}, false)
	ops := h.Operations()
	if len(ops) != 2 || h.Dropped() != 1 {
		t.Fatalf("recorded %d operations, dropped %d; want 2, 1", len(ops), h.Dropped())
	}
	if ops[0].Return >= ops[1].Call {
		t.Errorf("first op returns at %d, second called at %d: want return < call", ops[0].Return, ops[1].Call)
	}
	if ops[1].Return != math.MaxInt64 {
		t.Errorf("unknown outcome returns at %d, want MaxInt64", ops[1].Return)
	}
	if total, unknown := h.Counts(); total != 2 || unknown != 1 {
		t.Errorf("Counts() = %d, %d; want 2, 1", total, unknown)
	}
}

// TestSaveHistory: what a failing check leaves behind is readable: the
// history as JSON and porcupine's HTML page.
func TestSaveHistory(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, 1, 2, put("a", "x"), wrote(5)),
		op(1, 3, 4, get("a"), KVOutput{}),
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "history.json")
	if err := saveHistory(path, ops); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var saved []savedOp
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatalf("history.json: %v", err)
	}
	if len(saved) != 2 || saved[1].Text != "get(a) → absent" {
		t.Errorf("saved history = %+v, want 2 operations, the second described as get(a) → absent", saved)
	}
	model := KVModel.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, ops, 0)
	if res != porcupine.Illegal {
		t.Fatalf("check = %v, want Illegal", res)
	}
	viz := filepath.Join(dir, "viz.html")
	if err := porcupine.VisualizePath(model, info, viz); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(viz); err != nil || !strings.Contains(string(b), "get(a)") {
		t.Errorf("visualization: %v; want a page naming get(a)", err)
	}
}
