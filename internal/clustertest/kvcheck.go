package clustertest

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// KVOpKind is what a recorded key-value operation did.
type KVOpKind uint8

// Kinds of recorded operations.
const (
	KVGet    KVOpKind = iota + 1 // a linearizable read of one key
	KVPut                        // an unconditional write
	KVCAS                        // a write conditional on the modify index (0: create only)
	KVDelete                     // an unconditional delete
)

func (k KVOpKind) String() string {
	switch k {
	case KVGet:
		return "get"
	case KVPut:
		return "put"
	case KVCAS:
		return "cas"
	case KVDelete:
		return "del"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// KVInput is what a client asked.
type KVInput struct {
	Kind  KVOpKind `json:"kind"`
	Key   string   `json:"key"`
	Value string   `json:"value,omitempty"` // put, cas
	CAS   uint64   `json:"cas,omitempty"`   // cas: the expected modify index
}

// KVOutput is what a client was answered.
type KVOutput struct {
	// Unknown marks a write whose outcome the client cannot know (a
	// timeout or a broken connection after it was sent): it may or may not
	// have been applied, at any time after it was called.
	Unknown bool `json:"unknown,omitempty"`
	// OK is, for a get, whether the key exists; for a delete, whether it
	// existed; for a cas, whether it was applied. A put is always OK.
	OK bool `json:"ok,omitempty"`
	// Value is what a get read.
	Value string `json:"value,omitempty"`
	// Index is the key's modify index: read by a get, written by a put or
	// an applied cas.
	Index uint64 `json:"index,omitempty"`
}

// KVHistory records concurrent clients' operations for a linearizability
// check. It is safe for concurrent use.
//
// Operations are stamped with a logical clock, not with time.Now: inside a
// synctest bubble the clock stands still while goroutines run, so two
// operations that really followed each other could share a timestamp and
// look concurrent, which would hide an ordering violation. A counter
// incremented at every call and return keeps the real order exactly:
// an operation that returned before another was called has a smaller return
// stamp than the other's call stamp.
type KVHistory struct {
	clock   atomic.Int64
	dropped atomic.Int64 // failed reads, not recorded

	// mu guards the following fields.
	mu  sync.Mutex
	ops []porcupine.Operation
}

// KVOpInfo describes an operation for the visualization and saved history:
// which node served it, and the error it ended with.
type KVOpInfo struct {
	Node string `json:"node,omitempty"`
	Err  string `json:"err,omitempty"`
}

// Call stamps the start of an operation by client and returns the function
// that stamps its end with the answer; done must be called exactly once.
// A failed read has no effect and may be dropped with done(KVOutput{},
// info, false).
func (h *KVHistory) Call(client int, in KVInput) (done func(out KVOutput, info KVOpInfo, keep bool)) {
	call := h.clock.Add(1)
	return func(out KVOutput, info KVOpInfo, keep bool) {
		ret := h.clock.Add(1)
		if !keep {
			h.dropped.Add(1)
			return
		}
		if out.Unknown {
			// Possibly applied at any time after the call: porcupine may
			// place it anywhere later, including after everything else,
			// which is the same as never.
			ret = math.MaxInt64
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.ops = append(h.ops, porcupine.Operation{
			ClientId: client, Input: in, Call: call, Output: out, Return: ret, Metadata: info,
		})
	}
}

// Operations returns a copy of the recorded operations.
func (h *KVHistory) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Dropped returns how many failed reads were left out of the history.
func (h *KVHistory) Dropped() int { return int(h.dropped.Load()) }

// Counts returns how many operations were recorded, and how many of them
// have an unknown outcome.
func (h *KVHistory) Counts() (total, unknown int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range h.ops {
		if op.Output.(KVOutput).Unknown {
			unknown++
		}
	}
	return len(h.ops), unknown
}

// kvState is the model's state of one key. It is comparable, so the
// checker's default equality works.
type kvState struct {
	Exists bool
	Value  string
	// Index is the key's modify index, 0 while it is not known: after a
	// write of unknown outcome, until a read tells it.
	Index uint64
	// Floor is the highest modify index this key is known to have had.
	// Raft orders the writes, so every later write gets a higher index.
	Floor uint64
}

func (s kvState) String() string {
	if !s.Exists {
		return fmt.Sprintf("absent (floor %d)", s.Floor)
	}
	idx := "?"
	if s.Index != 0 {
		idx = fmt.Sprint(s.Index)
	}
	return fmt.Sprintf("%q@%s", s.Value, idx)
}

// written returns the state after a write of v at index idx (0: unknown).
func (s kvState) written(v string, idx uint64) kvState {
	return kvState{Exists: true, Value: v, Index: idx, Floor: max(s.Floor, idx)}
}

// casHolds says whether a compare-and-set on modify index want can apply
// to s: yes, no, or maybe (the key's index is unknown).
func (s kvState) casHolds(want uint64) (yes, maybe bool) {
	switch {
	case want == 0:
		return !s.Exists, false
	case !s.Exists:
		return false, false
	case s.Index != 0:
		return s.Index == want, false
	}
	return false, want > s.Floor
}

// kvStep is the sequential specification of one key: the set of states
// the key can be in after op answered out in state s (none: impossible).
func kvStep(s kvState, in KVInput, out KVOutput) []kvState {
	switch in.Kind {
	case KVGet:
		switch {
		case out.Unknown:
			return []kvState{s}
		case !out.OK:
			if s.Exists {
				return nil
			}
			return []kvState{s}
		case !s.Exists || s.Value != out.Value:
			return nil
		case s.Index == out.Index:
			return []kvState{s}
		case s.Index == 0 && out.Index > s.Floor:
			return []kvState{s.written(s.Value, out.Index)}
		}
		return nil
	case KVPut:
		if out.Unknown {
			return []kvState{s.written(in.Value, 0)}
		}
		if out.Index <= s.Floor {
			return nil
		}
		return []kvState{s.written(in.Value, out.Index)}
	case KVCAS:
		yes, maybe := s.casHolds(in.CAS)
		switch {
		case out.Unknown && yes:
			return []kvState{s.written(in.Value, 0)}
		case out.Unknown && maybe:
			return []kvState{s.written(in.Value, 0), s}
		case out.Unknown:
			return []kvState{s}
		case out.OK && (yes || maybe) && out.Index > s.Floor:
			return []kvState{s.written(in.Value, out.Index)}
		case !out.OK && !yes:
			return []kvState{s}
		}
		return nil
	case KVDelete:
		if !out.Unknown && out.OK != s.Exists {
			return nil
		}
		return []kvState{{Floor: s.Floor}}
	}
	return nil
}

// KVModel is the porcupine model of the key-value store as the
// linearizability tests use it: keys are independent registers with a
// modify index, partitioned by key.
var KVModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(KVInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{kvState{}} },
	Step: func(state, input, output any) []any {
		var out []any
		for _, s := range kvStep(state.(kvState), input.(KVInput), output.(KVOutput)) {
			out = append(out, s)
		}
		return out
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(KVInput), output.(KVOutput)
		var call string
		switch in.Kind {
		case KVGet, KVDelete:
			call = fmt.Sprintf("%s(%s)", in.Kind, in.Key)
		case KVPut:
			call = fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		default:
			call = fmt.Sprintf("cas(%s, @%d, %q)", in.Key, in.CAS, in.Value)
		}
		switch {
		case out.Unknown:
			return call + " → ?"
		case in.Kind == KVGet && out.OK:
			return fmt.Sprintf("%s → %q@%d", call, out.Value, out.Index)
		case in.Kind == KVGet:
			return call + " → absent"
		case in.Kind == KVDelete:
			return fmt.Sprintf("%s → existed=%v", call, out.OK)
		case in.Kind == KVCAS && !out.OK:
			return call + " → check failed"
		}
		return fmt.Sprintf("%s → @%d", call, out.Index)
	},
	DescribeState: func(state any) string { return state.(kvState).String() },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		i := info.(KVOpInfo)
		if i.Err == "" {
			return "via " + i.Node
		}
		return fmt.Sprintf("via %s: %s", i.Node, i.Err)
	},
}

// checkTimeout bounds porcupine's search; a history of a few hundred
// operations on a handful of keys takes milliseconds.
const checkTimeout = 2 * time.Minute

// CheckKVHistory checks that h is linearizable and fails t if it is not
// (or if the checker cannot decide within its time bound). On failure it
// saves the history as JSON and porcupine's HTML visualization into
// ArtifactsDir(t), names the files, and returns that directory, for the
// caller to add what else explains the failure; it returns "" when the
// history checks. Call it outside any synctest bubble: the checker runs
// its own goroutines on the real clock.
func CheckKVHistory(t *testing.T, h *KVHistory) (artifacts string) {
	t.Helper()
	ops := h.Operations()
	model := KVModel.ToModel()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, checkTimeout)
	total, unknown := h.Counts()
	t.Logf("linearizability check of %d operations (%d of unknown outcome, %d failed reads left out): %s in %v", total, unknown, h.Dropped(), res, time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return ""
	}
	dir := ArtifactsDir(t)
	hist := filepath.Join(dir, "history.json")
	viz := filepath.Join(dir, "linearizability.html")
	if err := saveHistory(hist, ops); err != nil {
		t.Errorf("save history: %v", err)
	}
	if err := porcupine.VisualizePath(model, info, viz); err != nil {
		t.Errorf("save visualization: %v", err)
	}
	switch res {
	case porcupine.Illegal:
		t.Errorf("history is not linearizable; history in %s, visualization in %s", hist, viz)
	default:
		t.Errorf("linearizability check undecided after %v; history in %s, visualization in %s", checkTimeout, hist, viz)
	}
	return dir
}

// savedOp is one operation as saved in history.json.
type savedOp struct {
	Client int      `json:"client"`
	Call   int64    `json:"call"`
	Return int64    `json:"return"` // math.MaxInt64 for an unknown outcome
	Input  KVInput  `json:"input"`
	Output KVOutput `json:"output"`
	Info   KVOpInfo `json:"info"`
	Text   string   `json:"text"`
}

func saveHistory(path string, ops []porcupine.Operation) error {
	out := make([]savedOp, 0, len(ops))
	for _, op := range ops {
		info, _ := op.Metadata.(KVOpInfo)
		out = append(out, savedOp{
			Client: op.ClientId, Call: op.Call, Return: op.Return,
			Input: op.Input.(KVInput), Output: op.Output.(KVOutput), Info: info,
			Text: KVModel.DescribeOperation(op.Input, op.Output),
		})
	}
	slices.SortFunc(out, func(a, b savedOp) int { return int(a.Call - b.Call) })
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode history: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

// ArtifactsDir returns where a test keeps files that explain its failure:
// t.ArtifactDir() when the test binary runs with -artifacts (go test
// -artifacts -outputdir DIR), otherwise a new directory under
// os.TempDir() that outlives the test (t.ArtifactDir would be removed with
// it). Call it from outside a synctest bubble.
func ArtifactsDir(t *testing.T) string {
	t.Helper()
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir, err := os.MkdirTemp("", "buoy-"+name+"-")
	if err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	t.Logf("artifacts of %s kept in %s", t.Name(), dir)
	return dir
}
