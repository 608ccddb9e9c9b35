package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

// The key-value methods of the route tests' fakeBackend: a store that is
// always empty. The key-value tests use fakeKV, which overrides them.
func (f *fakeBackend) KVGet(context.Context, string, bool) (kv.Entry, uint64, error) {
	return kv.Entry{}, 1, kv.ErrNotFound
}
func (f *fakeBackend) KVList(context.Context, string, bool) ([]kv.Entry, uint64, error) {
	return nil, 1, nil
}
func (f *fakeBackend) KVPut(context.Context, string, []byte, *uint64, time.Duration) (kv.Entry, error) {
	return kv.Entry{}, store.ErrNoLeader
}
func (f *fakeBackend) KVDelete(context.Context, string, *uint64) (bool, error) { return false, nil }
func (f *fakeBackend) KVDeletePrefix(context.Context, string) (int, error)     { return 0, nil }
func (f *fakeBackend) KVTxn(context.Context, kv.Command) (kv.Result, error) {
	return kv.Result{}, store.ErrNoLeader
}
func (f *fakeBackend) KVWait(ctx context.Context, _ string, index uint64) ([]kv.Event, uint64, error) {
	<-ctx.Done()
	return nil, index, nil
}
func (f *fakeBackend) KVIndex() uint64     { return 1 }
func (f *fakeBackend) KVLimits() kv.Limits { return kv.DefaultLimits }

// fakeKV is a backend whose key-value store is a real kv.Map, applied at
// consecutive indexes under a lock, as the FSM would.
type fakeKV struct {
	fakeBackend
	limits kv.Limits
	now    time.Time

	// mu guards the following fields.
	mu      sync.Mutex
	m       *kv.Map
	index   uint64
	changed chan struct{} // closed and replaced at every change
	// noQuorum makes linearizable reads fail as a node cut off from the
	// quorum does.
	noQuorum bool
	// forwarded makes failed checks lose their details, as they do when a
	// follower forwards the write to the leader.
	forwarded bool
	// writeErr, if set, fails every valid write with it before it applies.
	writeErr error
}

func newFakeKV(opts kv.Options) *fakeKV {
	return &fakeKV{
		limits:  kv.Limits{MaxKeyBytes: 64, MaxValueBytes: 1024, MaxTxnOps: 8},
		now:     time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		m:       kv.New(opts),
		changed: make(chan struct{}),
	}
}

func (f *fakeKV) apply(c kv.Command) (kv.Result, error) {
	if err := c.Validate(f.limits); err != nil {
		return kv.Result{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		return kv.Result{}, f.writeErr
	}
	f.index++
	m, res, err := f.m.Apply(f.index, &c)
	if err != nil {
		if f.forwarded {
			return kv.Result{}, store.FromCode(store.Code(err), err.Error())
		}
		return kv.Result{}, err
	}
	if m != f.m {
		f.m = m
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return res, nil
}

func (f *fakeKV) read(stale bool) (*kv.Map, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noQuorum && !stale {
		return nil, 0, fmt.Errorf("linearizable read: %w", store.ErrNoQuorum)
	}
	return f.m, f.index, nil
}

func (f *fakeKV) KVGet(_ context.Context, key string, stale bool) (kv.Entry, uint64, error) {
	m, idx, err := f.read(stale)
	if err != nil {
		return kv.Entry{}, 0, err
	}
	e, ok := m.Get(key)
	if !ok {
		return kv.Entry{}, idx, fmt.Errorf("%w: %s", kv.ErrNotFound, key)
	}
	return e, idx, nil
}

func (f *fakeKV) KVList(_ context.Context, prefix string, stale bool) ([]kv.Entry, uint64, error) {
	m, idx, err := f.read(stale)
	if err != nil {
		return nil, 0, err
	}
	return m.List(prefix), idx, nil
}

func (f *fakeKV) KVPut(_ context.Context, key string, value []byte, cas *uint64, ttl time.Duration) (kv.Entry, error) {
	var exp time.Time
	if ttl > 0 {
		exp = f.now.Add(ttl)
	}
	c := kv.Put(key, value, exp)
	if cas != nil {
		c.Checks = append(c.Checks, kv.CAS(key, *cas))
	}
	res, err := f.apply(c)
	if err != nil {
		return kv.Entry{}, err
	}
	return res.Ops[0].Entry, nil
}

func (f *fakeKV) KVDelete(_ context.Context, key string, cas *uint64) (bool, error) {
	c := kv.Delete(key)
	if cas != nil {
		c.Checks = append(c.Checks, kv.CAS(key, *cas))
	}
	res, err := f.apply(c)
	if err != nil {
		return false, err
	}
	return res.Ops[0].Deleted > 0, nil
}

func (f *fakeKV) KVDeletePrefix(_ context.Context, prefix string) (int, error) {
	res, err := f.apply(kv.DeletePrefix(prefix))
	if err != nil {
		return 0, err
	}
	return res.Ops[0].Deleted, nil
}

func (f *fakeKV) KVTxn(_ context.Context, c kv.Command) (kv.Result, error) { return f.apply(c) }

func (f *fakeKV) KVWait(ctx context.Context, prefix string, index uint64) ([]kv.Event, uint64, error) {
	for {
		f.mu.Lock()
		m, ch := f.m, f.changed
		f.mu.Unlock()
		evs, err := m.Changes(index, prefix)
		if err != nil {
			return nil, m.LastChange(), err
		}
		if len(evs) > 0 {
			return evs, evs[len(evs)-1].Index, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, max(index, m.LastChange()), nil
		}
	}
}

func (f *fakeKV) KVIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.LastChange()
}

func (f *fakeKV) KVLimits() kv.Limits { return f.limits }

// answer is one HTTP answer as the tests look at it.
type answer struct {
	code   int
	header http.Header
	body   string
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("decoding %q: %v", a.body, err)
	}
}

func call(h http.Handler, method, target, body string) answer {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{rec.Code, rec.Header(), rec.Body.String()}
}

func newKVHandler(f *fakeKV) http.Handler {
	return New(f, "", slog.New(slog.DiscardHandler))
}

// TestKVSequence runs a user's session against one store; each step sees
// the effects of the ones before.
func TestKVSequence(t *testing.T) {
	f := newFakeKV(kv.Options{})
	h := newKVHandler(f)
	steps := []struct {
		method, target, body string
		code                 int
		contains             []string
	}{
		{"GET", "/v1/kv/app/db", "", 404, []string{`"code":"kv_not_found"`}},
		{"PUT", "/v1/kv/app/db", "postgres://a", 200, []string{`"key": "app/db"`, `"modify_index": 1`, `"create_index": 1`}},
		{"GET", "/v1/kv/app/db", "", 200, []string{`"value": "postgres://a"`, `"index": 1`, `"stale": false`}},
		{"GET", "/v1/kv/app/db?raw", "", 200, []string{"postgres://a"}},
		{"PUT", "/v1/kv/app/db?cas=0", "x", 409, []string{`"modify_index":1`, `"found":true`, "now at modify_index 1"}},
		{"PUT", "/v1/kv/app/db?cas=7", "x", 409, []string{`"modify_index":1`, `"code":"kv_check_failed"`}},
		// Failed writes take a log index too, as in Raft.
		{"PUT", "/v1/kv/app/db?cas=1", "postgres://b", 200, []string{`"modify_index": 4`, `"create_index": 1`}},
		{"PUT", "/v1/kv/app/new?cas=0", "fresh", 200, []string{`"modify_index": 5`}},
		{"PUT", "/v1/kv/app/tmp?ttl=30s", "", 200, []string{`"expires": "2030-01-02T03:04:35Z"`}},
		{"GET", "/v1/kv/app/tmp", "", 200, []string{`"value": ""`}},
		{"PUT", "/v1/kv/bin", "\xff\x00\x01", 200, nil},
		{"GET", "/v1/kv/bin", "", 200, []string{`"value_base64": "/wAB"`}},
		{"GET", "/v1/kv/bin?raw=true", "", 200, []string{"\xff\x00\x01"}},
		{"GET", "/v1/kv/app/?prefix", "", 200, []string{`"key": "app/db"`, `"key": "app/new"`, `"key": "app/tmp"`, `"index": 7`}},
		{"GET", "/v1/kv/nothing/?prefix", "", 200, []string{`"entries": []`}},
		{"GET", "/v1/kv/caf%C3%A9", "", 404, []string{"café"}},
		{"PUT", "/v1/kv/caf%C3%A9", "crème", 200, []string{`"key": "café"`}},
		{"DELETE", "/v1/kv/app/db?cas=1", "", 409, []string{`"modify_index":4`}},
		{"DELETE", "/v1/kv/app/db?cas=4", "", 200, []string{`"deleted": 1`}},
		{"DELETE", "/v1/kv/app/db", "", 200, []string{`"deleted": 0`}},
		{"DELETE", "/v1/kv/app/db?cas=5", "", 409, []string{`"found":false`, "does not exist now"}},
		{"DELETE", "/v1/kv/app/?prefix", "", 200, []string{`"deleted": 2`}},
		{"GET", "/v1/kv/?prefix", "", 200, []string{`"key": "bin"`, `"key": "café"`}},
	}
	for i, st := range steps {
		a := call(h, st.method, st.target, st.body)
		ok := a.code == st.code
		for _, c := range st.contains {
			ok = ok && strings.Contains(a.body, c)
		}
		if !ok {
			t.Fatalf("step %d: %s %s = %d %s, want %d containing %q", i, st.method, st.target, a.code, a.body, st.code, st.contains)
		}
	}
}

func TestKVReadHeaders(t *testing.T) {
	f := newFakeKV(kv.Options{})
	h := newKVHandler(f)
	call(h, "PUT", "/v1/kv/k", "v")
	call(h, "PUT", "/v1/kv/other", "v")
	tests := []struct {
		target     string
		code       int
		index      string
		staleHdr   string
		staleField bool
	}{
		{"/v1/kv/k", 200, "2", "", false},
		{"/v1/kv/k?stale", 200, "2", "true", true},
		{"/v1/kv/k?stale=false", 200, "2", "", false},
		{"/v1/kv/missing", 404, "2", "", false},
		{"/v1/kv/?prefix&stale", 200, "2", "true", true},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			a := call(h, "GET", tt.target, "")
			if a.code != tt.code || a.header.Get(HeaderIndex) != tt.index || a.header.Get(HeaderStale) != tt.staleHdr {
				t.Fatalf("GET %s = %d, %s %q, %s %q; want %d, %q, %q", tt.target, a.code, HeaderIndex, a.header.Get(HeaderIndex),
					HeaderStale, a.header.Get(HeaderStale), tt.code, tt.index, tt.staleHdr)
			}
			if a.code == 200 {
				var v struct{ Stale bool }
				a.json(t, &v)
				if v.Stale != tt.staleField {
					t.Errorf("GET %s: stale field = %v, want %v", tt.target, v.Stale, tt.staleField)
				}
			}
		})
	}
}

// TestKVNoQuorum: a node cut off from the quorum refuses a linearizable
// read with a 503 that says what still works, and answers a stale one.
func TestKVNoQuorum(t *testing.T) {
	f := newFakeKV(kv.Options{})
	h := newKVHandler(f)
	call(h, "PUT", "/v1/kv/k", "v")
	f.mu.Lock()
	f.noQuorum = true
	f.mu.Unlock()
	for _, target := range []string{"/v1/kv/k", "/v1/kv/?prefix", "/v1/kv/k?raw"} {
		a := call(h, "GET", target, "")
		var e Error
		a.json(t, &e)
		if a.code != 503 || e.Code != "kv_no_quorum" || !strings.Contains(e.Error, "stale read still works") {
			t.Errorf("GET %s without quorum = %d %q, want 503 kv_no_quorum saying a stale read works", target, a.code, a.body)
		}
	}
	a := call(h, "GET", "/v1/kv/k?stale", "")
	var r KVRead
	a.json(t, &r)
	if a.code != 200 || !r.Stale || r.Value == nil || *r.Value != "v" || a.header.Get(HeaderStale) != "true" {
		t.Errorf("GET ?stale without quorum = %d %q %v, want 200 with the value, marked stale", a.code, a.body, a.header)
	}
}

func TestKVBadInput(t *testing.T) {
	long := strings.Repeat("k", 65) // the fake's limit is 64
	tests := []struct {
		name, method, target, body string
		code                       int
		contains                   string
	}{
		{"key too long", "PUT", "/v1/kv/" + long, "v", 400, "kv_key_too_long"},
		{"key too long get", "GET", "/v1/kv/" + long, "", 400, "kv_key_too_long"},
		{"prefix too long", "GET", "/v1/kv/" + long + "?prefix", "", 400, "kv_key_too_long"},
		{"value too large", "PUT", "/v1/kv/k", strings.Repeat("v", 1025), 400, "kv_value_too_large"},
		{"invalid UTF-8 key", "PUT", "/v1/kv/bad%FFkey", "v", 400, "kv_invalid_key"},
		{"invalid UTF-8 get", "GET", "/v1/kv/bad%C3", "", 400, "not valid UTF-8"},
		{"NUL in key", "PUT", "/v1/kv/a%00b", "v", 400, "contains NUL"},
		{"empty key", "PUT", "/v1/kv/", "v", 400, "kv_invalid_key"},
		{"empty key get", "GET", "/v1/kv/", "", 400, "kv_invalid_key"},
		{"unknown parameter", "GET", "/v1/kv/k?stail", "", 400, `unknown query parameter \"stail\"`},
		{"repeated parameter", "PUT", "/v1/kv/k?cas=1&cas=2", "v", 400, "given 2 times"},
		{"bad cas", "PUT", "/v1/kv/k?cas=-1", "v", 400, "want an index"},
		{"bad ttl", "PUT", "/v1/kv/k?ttl=soon", "v", 400, "want a duration"},
		{"negative ttl", "PUT", "/v1/kv/k?ttl=-5s", "v", 400, "positive"},
		{"bad flag", "GET", "/v1/kv/k?stale=maybe", "", 400, "true or false"},
		{"raw prefix", "GET", "/v1/kv/k?raw&prefix", "", 400, "cannot list"},
		{"wait without index", "GET", "/v1/kv/k?wait=1s", "", 400, "needs ?index"},
		{"watch raw", "GET", "/v1/kv/k?watch&raw", "", 400, "?watch"},
		{"cas prefix delete", "DELETE", "/v1/kv/k?prefix&cas=1", "", 400, "not to a ?prefix delete"},
		{"ttl on delete", "DELETE", "/v1/kv/k?ttl=1s", "", 400, "unknown query parameter"},
		{"bad query", "GET", "/v1/kv/k?%zz", "", 400, "query"},
		{"wrong method", "POST", "/v1/kv/k", "v", 404, "no such endpoint"},
		{"txn unknown op", "POST", "/v1/txn", `{"ops":[{"op":"increment","key":"k"}]}`, 400, "kv_unknown_op"},
		{"txn expire op", "POST", "/v1/txn", `{"ops":[{"op":"expire","key":"k"}]}`, 400, "kv_unknown_op"},
		{"txn unknown check", "POST", "/v1/txn", `{"checks":[{"check":"newer","key":"k"}],"ops":[{"op":"get","key":"k"}]}`, 400, "kv_unknown_op"},
		{"txn unknown field", "POST", "/v1/txn", `{"ops":[{"op":"put","key":"k","value":"v","ttl":"1s"}]}`, 400, "unknown field"},
		{"txn bad JSON", "POST", "/v1/txn", `{"ops":[`, 400, "transaction"},
		{"txn two values", "POST", "/v1/txn", `{"ops":[{"op":"get","key":"k"}]} {}`, 400, "more than one JSON value"},
		{"txn no ops", "POST", "/v1/txn", `{"ops":[]}`, 400, "no operations"},
		{"txn put without value", "POST", "/v1/txn", `{"ops":[{"op":"put","key":"k"}]}`, 400, "needs \\\"value\\\""},
		{"txn get with value", "POST", "/v1/txn", `{"ops":[{"op":"get","key":"k","value":"v"}]}`, 400, "only a put"},
		{"txn both values", "POST", "/v1/txn", `{"ops":[{"op":"put","key":"k","value":"v","value_base64":"dg=="}]}`, 400, "give one"},
		{"txn bad base64", "POST", "/v1/txn", `{"ops":[{"op":"put","key":"k","value_base64":"%%%"}]}`, 400, "value_base64"},
		{"txn value check without value", "POST", "/v1/txn", `{"checks":[{"check":"value","key":"k"}],"ops":[{"op":"get","key":"k"}]}`, 400, "needs"},
		{"txn modify_index 0", "POST", "/v1/txn", `{"checks":[{"check":"modify_index","key":"k"}],"ops":[{"op":"get","key":"k"}]}`, 400, "not_exists"},
		{"txn exists with value", "POST", "/v1/txn", `{"checks":[{"check":"exists","key":"k","value":"v"}],"ops":[{"op":"get","key":"k"}]}`, 400, "only a value check"},
		{"txn key too long", "POST", "/v1/txn", `{"ops":[{"op":"delete","key":"` + long + `"}]}`, 400, "kv_key_too_long"},
		{"txn invalid UTF-8", "POST", "/v1/txn", "{\"ops\":[{\"op\":\"delete\",\"key\":\"\xff\"}]}", 400, "kv_invalid_key"},
		{"txn too many ops", "POST", "/v1/txn", `{"ops":[` + strings.Repeat(`{"op":"get","key":"k"},`, 8) + `{"op":"get","key":"k"}]}`, 400, "kv_too_many_ops"},
		{"txn value too large", "POST", "/v1/txn", `{"ops":[{"op":"put","key":"k","value":"` + strings.Repeat("v", 1025) + `"}]}`, 400, "kv_value_too_large"},
		{"txn query", "POST", "/v1/txn?cas=1", `{"ops":[{"op":"get","key":"k"}]}`, 400, "unknown query parameter"},
	}
	h := newKVHandler(newFakeKV(kv.Options{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(h, tt.method, tt.target, tt.body)
			if a.code != tt.code || !strings.Contains(a.body, tt.contains) {
				t.Errorf("%s %s = %d %s, want %d containing %q", tt.method, tt.target, a.code, a.body, tt.code, tt.contains)
			}
			if a.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s: Content-Type %q, want JSON errors", tt.method, tt.target, a.header.Get("Content-Type"))
			}
		})
	}
}

func TestKVTxn(t *testing.T) {
	f := newFakeKV(kv.Options{})
	h := newKVHandler(f)
	call(h, "PUT", "/v1/kv/a", "1")     // index 1
	call(h, "PUT", "/v1/kv/tmp/x", "x") // index 2
	call(h, "PUT", "/v1/kv/tmp/y", "y") // index 3

	body := `{
	  "checks": [
	    {"check": "modify_index", "key": "a", "index": 1},
	    {"check": "value", "key": "a", "value": "1"},
	    {"check": "not_exists", "key": "b"},
	    {"check": "exists", "key": "tmp/x"}
	  ],
	  "ops": [
	    {"op": "put", "key": "a", "value": "2"},
	    {"op": "put", "key": "b", "value_base64": "/w=="},
	    {"op": "delete_prefix", "key": "tmp/"},
	    {"op": "delete", "key": "none"},
	    {"op": "get", "key": "b"},
	    {"op": "get", "key": "tmp/x"}
	  ]
	}`
	a := call(h, "POST", "/v1/txn", body)
	if a.code != 200 {
		t.Fatalf("txn = %d %s, want 200", a.code, a.body)
	}
	var res KVTxnResult
	a.json(t, &res)
	type row struct {
		op, key string
		modify  uint64
		value   string
		found   string
		deleted string
	}
	var got []row
	for _, r := range res.Results {
		x := row{op: r.Op, key: r.Key, found: "-", deleted: "-"}
		if r.Entry != nil {
			x.modify = r.Entry.ModifyIndex
			if v, err := r.Entry.Bytes(); err == nil && v != nil {
				x.value = string(v)
			}
		}
		if r.Found != nil {
			x.found = strconv.FormatBool(*r.Found)
		}
		if r.Deleted != nil {
			x.deleted = strconv.Itoa(*r.Deleted)
		}
		got = append(got, x)
	}
	want := []row{
		{"put", "a", 4, "", "-", "-"},
		{"put", "b", 4, "", "-", "-"},
		{"delete_prefix", "tmp/", 0, "", "-", "2"},
		{"delete", "none", 0, "", "-", "0"},
		{"get", "b", 4, "\xff", "true", "-"},
		{"get", "tmp/x", 0, "", "false", "-"},
	}
	if res.Index != 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("txn result = index %d %+v, want index 4 %+v", res.Index, got, want)
	}

	// The same transaction again: its first check no longer holds.
	for _, forwarded := range []bool{false, true} {
		f.mu.Lock()
		f.forwarded = forwarded
		f.mu.Unlock()
		a = call(h, "POST", "/v1/txn", body)
		var c KVConflict
		a.json(t, &c)
		if forwarded {
			// The details did not cross the wire; the message did.
			if a.code != 409 || c.Check != nil || !strings.Contains(c.Error.Error, `key is modify_index 4`) {
				t.Errorf("forwarded failed txn = %d %s, want 409 with the leader's message", a.code, a.body)
			}
			continue
		}
		if a.code != 409 || c.Code != "kv_check_failed" || c.Check == nil || *c.Check != 0 || c.Key != "a" || !c.Found || c.ModifyIndex != 4 {
			t.Errorf("failed txn = %d %s, want 409 naming check 0 on a at modify_index 4", a.code, a.body)
		}
	}
	if a := call(h, "GET", "/v1/kv/a?raw", ""); a.body != "2" {
		t.Errorf("after the failed txn a = %q, want 2 (unchanged)", a.body)
	}
}

// TestKVOutcomeUnknown: a write whose outcome is unknown is a 503 with
// code outcome_unknown that tells the client to read before retrying,
// whatever else the error wraps and also when it crossed the wire.
func TestKVOutcomeUnknown(t *testing.T) {
	errs := []struct {
		name string
		err  error
	}{
		{"leadership lost", fmt.Errorf("%w: leadership lost while committing", store.ErrOutcomeUnknown)},
		// As consensus's rpc returns a lost answer from the leader, and as
		// kvWriteError saw it before: a deadline and ErrNoLeader too.
		{"link broke at the deadline", fmt.Errorf("%w: rpc kv to n1: %w: %w", store.ErrNoLeader, store.ErrOutcomeUnknown, context.DeadlineExceeded)},
		{"forwarded", store.FromCode("outcome_unknown", "rpc kv: outcome unknown: leadership lost")},
	}
	writes := []struct{ method, target, body string }{
		{"PUT", "/v1/kv/k", "v"},
		{"PUT", "/v1/kv/k?cas=1", "v"},
		{"DELETE", "/v1/kv/k", ""},
		{"DELETE", "/v1/kv/k/?prefix", ""},
		{"POST", "/v1/txn", `{"ops":[{"op":"put","key":"k","value":"v"}]}`},
	}
	for _, e := range errs {
		for _, wr := range writes {
			t.Run(e.name+"/"+wr.method+" "+wr.target, func(t *testing.T) {
				f := newFakeKV(kv.Options{})
				f.writeErr = e.err
				a := call(newKVHandler(f), wr.method, wr.target, wr.body)
				var got Error
				a.json(t, &got)
				if a.code != 503 || got.Code != "outcome_unknown" || !strings.Contains(got.Error, "may or may not have been applied") ||
					!strings.Contains(got.Error, "read the key") {
					t.Errorf("%s %s = %d %s, want 503 outcome_unknown saying to read the key first", wr.method, wr.target, a.code, a.body)
				}
			})
		}
	}
}

// TestKVConflictForwarded: a CAS that failed on the leader reports the
// key's current modify index also when the error's details were lost on
// the way.
func TestKVConflictForwarded(t *testing.T) {
	f := newFakeKV(kv.Options{})
	f.forwarded = true
	h := newKVHandler(f)
	call(h, "PUT", "/v1/kv/k", "v")
	call(h, "PUT", "/v1/kv/k", "w")
	a := call(h, "PUT", "/v1/kv/k?cas=1", "x")
	var c KVConflict
	a.json(t, &c)
	if a.code != 409 || !c.Found || c.ModifyIndex != 2 || c.Key != "k" || !strings.Contains(c.Error.Error, "now at modify_index 2") {
		t.Errorf("forwarded CAS failure = %d %s, want 409 with modify_index 2", a.code, a.body)
	}
}

// TestKVBlockingQuery runs in virtual time: a blocking query returns at
// once for an index behind the key, waits for a change otherwise, and
// returns the same data when the wait passes.
func TestKVBlockingQuery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeKV(kv.Options{})
		h := newKVHandler(f)
		call(h, "PUT", "/v1/kv/app", "1")   // index 1
		call(h, "PUT", "/v1/kv/other", "x") // index 2

		// Behind: answers at once with the current value.
		start := time.Now()
		a := call(h, "GET", "/v1/kv/app?index=0&wait=1m", "")
		if a.code != 200 || time.Since(start) != 0 || !strings.Contains(a.body, `"value": "1"`) {
			t.Errorf("index=0 = %d %s after %v, want the value at once", a.code, a.body, time.Since(start))
		}

		// Nothing changes: after the wait, the same data and index.
		start = time.Now()
		a = call(h, "GET", "/v1/kv/app?index=2&wait=30s", "")
		if a.code != 200 || time.Since(start) != 30*time.Second || a.header.Get(HeaderIndex) != "2" {
			t.Errorf("quiet blocking query = %d %s index %s after %v, want 200 index 2 after 30s", a.code, a.body, a.header.Get(HeaderIndex), time.Since(start))
		}

		// A change to another key with the same prefix does not wake a
		// query on one key; a change to the key does.
		start = time.Now()
		done := make(chan answer)
		go func() { done <- call(h, "GET", "/v1/kv/app?index=2&wait=1m", "") }()
		time.Sleep(10 * time.Second)
		call(h, "PUT", "/v1/kv/apple", "x") // index 3
		time.Sleep(10 * time.Second)
		call(h, "PUT", "/v1/kv/app", "2") // index 4
		a = <-done
		if a.code != 200 || time.Since(start) != 20*time.Second || !strings.Contains(a.body, `"value": "2"`) || a.header.Get(HeaderIndex) != "4" {
			t.Errorf("blocking query = %d %s index %s after %v, want the new value at index 4 after 20s", a.code, a.body, a.header.Get(HeaderIndex), time.Since(start))
		}

		// A prefix query wakes for any key under it; wait defaults and caps.
		start = time.Now()
		go func() { done <- call(h, "GET", "/v1/kv/app?prefix&index=4", "") }()
		time.Sleep(time.Minute)
		call(h, "PUT", "/v1/kv/apple", "y") // index 5
		a = <-done
		if a.code != 200 || time.Since(start) != time.Minute || a.header.Get(HeaderIndex) != "5" {
			t.Errorf("prefix blocking query = %d %s after %v, want index 5 after 1m", a.code, a.header.Get(HeaderIndex), time.Since(start))
		}
		start = time.Now()
		a = call(h, "GET", "/v1/kv/app?index=5&wait=1h", "")
		if a.code != 200 || time.Since(start) != MaxKVWait {
			t.Errorf("wait=1h = %d after %v, want 200 after %v", a.code, time.Since(start), MaxKVWait)
		}

		// A blocking query on a missing key answers 404 with the index to
		// wait after for it to appear.
		a = call(h, "GET", "/v1/kv/later?index=5&wait=5s", "")
		if a.code != 404 || a.header.Get(HeaderIndex) != "5" {
			t.Errorf("blocking query on a missing key = %d index %q, want 404 with index 5", a.code, a.header.Get(HeaderIndex))
		}
	})
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	event, id, data string
}

// readEvents parses events from an SSE stream until n are read or the
// stream ends; comments are skipped.
func readEvents(t *testing.T, br *bufio.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < n {
		line, err := br.ReadString('\n')
		if err != nil {
			return out
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

func openWatch(t *testing.T, ctx context.Context, url string, header http.Header) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s %s, want an event stream", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp, bufio.NewReader(resp.Body)
}

// TestKVWatch streams changes over a real loopback connection, as curl -N
// would see them.
func TestKVWatch(t *testing.T) {
	f := newFakeKV(kv.Options{})
	srv := httptest.NewServer(newKVHandler(f))
	defer srv.Close()
	h := srv.Config.Handler
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	call(h, "PUT", "/v1/kv/app/a", "before") // index 1: before the watch
	resp, br := openWatch(t, ctx, srv.URL+"/v1/kv/app/?watch", nil)
	if got := resp.Header.Get(HeaderIndex); got != "1" {
		t.Errorf("watch without index starts at %s, want the current index 1", got)
	}
	call(h, "PUT", "/v1/kv/app/a", "one")                                                                                  // 2
	call(h, "PUT", "/v1/kv/elsewhere", "no")                                                                               // 3: not under app/
	call(h, "POST", "/v1/txn", `{"ops":[{"op":"put","key":"app/b","value_base64":"/w=="},{"op":"delete","key":"app/a"}]}`) // 4
	call(h, "DELETE", "/v1/kv/app/?prefix", "")                                                                            // 5

	evs := readEvents(t, br, 4)
	type row struct {
		id, typ, key, value string
		index               uint64
	}
	var got []row
	for _, e := range evs {
		var d KVEvent
		if err := json.Unmarshal([]byte(e.data), &d); err != nil || e.event != "" {
			t.Fatalf("event %+v: %v, want a default event with JSON data", e, err)
		}
		v, _ := d.Bytes()
		got = append(got, row{e.id, d.Type, d.Key, string(v), d.Index})
	}
	want := []row{
		{"2", "put", "app/a", "one", 2},
		{"", "put", "app/b", "\xff", 4}, // the id only on the index's last event
		{"4", "delete", "app/a", "", 4},
		{"5", "delete", "app/b", "", 5},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("watch events = %+v, want %+v", got, want)
	}

	// Resuming with Last-Event-ID, as an EventSource does, or ?index.
	call(h, "PUT", "/v1/kv/app/c", "c") // 6
	for _, w := range []struct {
		url    string
		header http.Header
	}{
		{srv.URL + "/v1/kv/app/?watch", http.Header{"Last-Event-ID": {"4"}}},
		{srv.URL + "/v1/kv/app/?watch&index=4", nil},
	} {
		_, br := openWatch(t, ctx, w.url, w.header)
		evs := readEvents(t, br, 2)
		if len(evs) != 2 || evs[0].id != "5" || evs[1].id != "6" {
			t.Errorf("watch %s %v = %+v, want the events at 5 and 6", w.url, w.header, evs)
		}
	}
}

// TestKVWatchCompacted: a watcher asking for changes the log no longer
// holds is told so with an "event: compacted", and the stream ends.
func TestKVWatchCompacted(t *testing.T) {
	f := newFakeKV(kv.Options{LogEvents: 2})
	srv := httptest.NewServer(newKVHandler(f))
	defer srv.Close()
	for i := range 10 {
		call(srv.Config.Handler, "PUT", "/v1/kv/k", strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, br := openWatch(t, ctx, srv.URL+"/v1/kv/?watch&index=1", nil)
	evs := readEvents(t, br, 2)
	if len(evs) != 1 || evs[0].event != "compacted" {
		t.Fatalf("watch from a compacted index = %+v, want one compacted event", evs)
	}
	var c KVCompacted
	if err := json.Unmarshal([]byte(evs[0].data), &c); err != nil || c.Index != 10 || !strings.Contains(c.Error, "re-read") {
		t.Errorf("compacted event data = %s (%v), want the index to resume from, 10", evs[0].data, err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the compacted event the stream had %q, %v; want its end", rest, err)
	}
}

func TestKVToken(t *testing.T) {
	h := New(newFakeKV(kv.Options{}), "s3cret", slog.New(slog.DiscardHandler))
	if a := call(h, "PUT", "/v1/kv/k", "v"); a.code != 401 {
		t.Errorf("PUT without the token = %d, want 401", a.code)
	}
}

// FuzzDecodeTxn: whatever the body, decoding never panics, and a command it
// accepts only holds client operations and survives the log's codec.
func FuzzDecodeTxn(f *testing.F) {
	f.Add([]byte(`{"checks":[{"check":"modify_index","key":"a","index":3}],"ops":[{"op":"put","key":"a","value":"x"}]}`))
	f.Add([]byte(`{"ops":[{"op":"put","key":"b","value_base64":"/w=="},{"op":"delete_prefix","key":""},{"op":"get","key":"b"}]}`))
	f.Add([]byte(`{"checks":[{"check":"value","key":"a","value":""}],"ops":[{"op":"delete","key":"a"}]}`))
	f.Add([]byte(`{"ops":[{"op":"expire","key":"a"}]}`))
	f.Add([]byte(`{"ops":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeTxn(bytes.NewReader(body))
		if err != nil {
			if code := kvStatus(err); code != http.StatusBadRequest {
				t.Fatalf("decodeTxn(%q) error %v maps to %d, want 400", body, err, code)
			}
			return
		}
		for _, op := range c.Ops {
			if op.Kind == kv.OpExpire || !op.Expires.IsZero() {
				t.Fatalf("decodeTxn(%q) = %+v: an expiry from a client", body, c)
			}
		}
		if err := c.Validate(kv.DefaultLimits); err != nil {
			return
		}
		b, err := c.Encode()
		if err != nil {
			t.Fatalf("Encode of valid %+v: %v", c, err)
		}
		back, err := kv.DecodeCommand(b)
		if err != nil || len(back.Ops) != len(c.Ops) || len(back.Checks) != len(c.Checks) {
			t.Fatalf("DecodeCommand(Encode(%+v)) = %+v, %v", c, back, err)
		}
	})
}

// FuzzKVRequest sends arbitrary paths, queries and bodies to the key-value
// routes: never a panic, never a 5xx, and every error is JSON.
func FuzzKVRequest(f *testing.F) {
	f.Add("GET", "app/db", "prefix&stale", "")
	f.Add("PUT", "app/db", "cas=3&ttl=10s", "value")
	f.Add("DELETE", "app/", "prefix", "")
	f.Add("GET", "k", "index=1&wait=1ms", "")
	f.Add("PUT", "caf%C3%A9", "ttl=5", "\xff")
	f.Fuzz(func(t *testing.T, method, key, rawQuery, body string) {
		switch method {
		case "GET", "PUT", "DELETE":
		default:
			return
		}
		if strings.Contains(rawQuery, "watch") || (strings.Contains(rawQuery, "wait") || strings.Contains(rawQuery, "index")) && !strings.Contains(rawQuery, "wait=1ms") {
			return // streams and long waits are tested above
		}
		b := newFakeKV(kv.Options{})
		b.KVPut(context.Background(), "app/db", []byte("v"), nil, 0)
		req, err := http.NewRequest(method, "http://buoy/v1/kv/"+key+"?"+rawQuery, strings.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		newKVHandler(b).ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s = %d %s", method, req.URL, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s = %d %q: not a JSON error", method, req.URL, rec.Code, rec.Body)
			}
		}
	})
}
