package api

// The key-value store's HTTP interface, shaped after Consul's /v1/kv:
//
//	GET    /v1/kv/{key}            one key as JSON (?raw: the bare value)
//	GET    /v1/kv/{prefix}?prefix  every key under prefix
//	GET    ...&stale               answered from this node, marked stale
//	GET    ...&index=N&wait=30s    blocking query: returns once the key or
//	                               prefix changed after index N, or after wait
//	GET    /v1/kv/{prefix}?watch   Server-Sent Events, one per change
//	PUT    /v1/kv/{key}            the body is the value; ?cas=N, ?ttl=30s
//	DELETE /v1/kv/{key}            ?cas=N; ?prefix deletes every key under it
//	POST   /v1/txn                 checks and operations, applied atomically
//
// Every read answers the node's state index in X-Buoy-Index, the index to
// pass to the next blocking query.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

// KVBackend is the key-value store as the API reaches it (buoy.KV behind
// an adapter).
type KVBackend interface {
	// KVGet reads key; the index is the state's (also when the key is
	// absent, with an error wrapping kv.ErrNotFound).
	KVGet(ctx context.Context, key string, stale bool) (kv.Entry, uint64, error)
	// KVList reads every key under prefix, in key order.
	KVList(ctx context.Context, prefix string, stale bool) ([]kv.Entry, uint64, error)
	// KVPut writes key (if cas is set, only at that modify index, 0 meaning
	// absent) and returns the committed entry; ttl > 0 makes it expire.
	KVPut(ctx context.Context, key string, value []byte, cas *uint64, ttl time.Duration) (kv.Entry, error)
	// KVDelete deletes key (if cas is set, only at that modify index) and
	// reports whether it existed.
	KVDelete(ctx context.Context, key string, cas *uint64) (bool, error)
	// KVDeletePrefix deletes every key under prefix and says how many.
	KVDeletePrefix(ctx context.Context, prefix string) (int, error)
	// KVTxn commits a transaction.
	KVTxn(ctx context.Context, c kv.Command) (kv.Result, error)
	// KVWait blocks until a key under prefix changes after index and
	// returns the changes, oldest first, and the index to wait after next
	// time. When ctx ends first it returns no changes and no error. It
	// fails with kv.ErrCompacted when the changes after index are no longer
	// known, and with another error when the node stops.
	KVWait(ctx context.Context, prefix string, index uint64) ([]kv.Event, uint64, error)
	// KVIndex is the index of the newest change in this node's state: where
	// a watch with no index starts.
	KVIndex() uint64
	// KVLimits are the configured bounds on keys and values.
	KVLimits() kv.Limits
}

// HTTP headers of the key-value API.
const (
	// HeaderIndex carries the state index a read was answered at.
	HeaderIndex = "X-Buoy-Index"
	// HeaderStale is "true" on an answer read from this node's state
	// without confirming it is current.
	HeaderStale = "X-Buoy-Stale"
)

// Bounds of the key-value API's requests.
const (
	// DefaultKVWait is a blocking query's wait when it gives none; it is
	// also the longest it may ask for (10 minutes, as Consul).
	DefaultKVWait = 5 * time.Minute
	MaxKVWait     = 10 * time.Minute
	// kvReadTimeout bounds how long a linearizable read waits for the
	// leader to confirm the read index, through an election; past it the
	// node most likely has no quorum and says so.
	kvReadTimeout = 5 * time.Second
	// kvWriteTimeout bounds how long a write waits to commit.
	kvWriteTimeout = 15 * time.Second
	// kvKeepalive is how often a quiet watch stream carries a comment, so
	// proxies keep it open and a gone client is noticed.
	kvKeepalive = 15 * time.Second
	// maxTxnBody bounds a transaction's JSON: base64 grows values by a
	// third, and JSON escapes can grow text up to six times.
	maxTxnBody = 64 << 20
	// maxDrain is how much of a refused value is read and dropped.
	maxDrain = 8 << 20
)

// errNoQuorum tells why a linearizable read was refused and what still
// works.
var errNoQuorum = errors.New("linearizable read refused: this node cannot confirm with a quorum of the cluster that its data is current; a stale read still works: add ?stale (buoy kv get --stale)")

// kvRoutes adds the key-value routes to mux.
func (s *server) kvRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/kv/{key...}", s.kvGet)
	mux.HandleFunc("PUT /v1/kv/{key...}", s.kvPut)
	mux.HandleFunc("DELETE /v1/kv/{key...}", s.kvDelete)
	mux.HandleFunc("POST /v1/txn", s.kvTxn)
}

// query is a request's parsed query string: each parameter at most once,
// and only those the endpoint knows, so a typo ("?stail") is an error
// rather than a silently different request.
type query struct {
	v url.Values
}

func parseQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, fmt.Errorf("%w: query: %v", ErrBadRequest, err)
	}
	for name, vals := range v {
		if !slices.Contains(allowed, name) {
			return query{}, fmt.Errorf("%w: unknown query parameter %q (this endpoint takes %s)", ErrBadRequest, name, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return query{}, fmt.Errorf("%w: query parameter %q given %d times", ErrBadRequest, name, len(vals))
		}
	}
	return query{v}, nil
}

// flag reads a parameter that is present without a value ("?stale"), or
// with a boolean one.
func (q query) flag(name string) (bool, error) {
	if !q.v.Has(name) {
		return false, nil
	}
	s := q.v.Get(name)
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%w: ?%s=%q: want no value, true or false", ErrBadRequest, name, s)
	}
	return b, nil
}

// index reads a Raft index parameter.
func (q query) index(name string) (uint64, bool, error) {
	if !q.v.Has(name) {
		return 0, false, nil
	}
	s := q.v.Get(name)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: ?%s=%q: want an index, a number from 0", ErrBadRequest, name, s)
	}
	return n, true, nil
}

// duration reads a duration parameter: Go syntax (30s, 5m) or whole
// seconds.
func (q query) duration(name string) (time.Duration, bool, error) {
	if !q.v.Has(name) {
		return 0, false, nil
	}
	s := q.v.Get(name)
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, false, fmt.Errorf("%w: ?%s=%q: want a duration such as 30s or 5m", ErrBadRequest, name, s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, false, fmt.Errorf("%w: ?%s=%q: want a positive duration", ErrBadRequest, name, s)
	}
	return d, true, nil
}

func (s *server) kvGet(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q, err := parseQuery(r, "raw", "prefix", "stale", "index", "wait", "watch")
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	var raw, prefix, stale, watch bool
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"raw", &raw}, {"prefix", &prefix}, {"stale", &stale}, {"watch", &watch}} {
		if *f.dst, err = q.flag(f.name); err != nil {
			s.kvError(w, r, err)
			return
		}
	}
	index, blocking, err := q.index("index")
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	wait, hasWait, err := q.duration("wait")
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	limits := s.b.KVLimits()
	if prefix || watch {
		err = limits.CheckPrefix(key)
	} else {
		err = limits.CheckKey(key)
	}
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	switch {
	case watch && (raw || hasWait):
		err = fmt.Errorf("%w: ?watch streams changes: it takes ?index (and ?prefix, implied), not ?raw or ?wait", ErrBadRequest)
	case raw && prefix:
		err = fmt.Errorf("%w: ?raw answers one key's bare value; it cannot list a prefix", ErrBadRequest)
	case hasWait && !blocking:
		err = fmt.Errorf("%w: ?wait makes a blocking query, which needs ?index (the X-Buoy-Index of the previous answer)", ErrBadRequest)
	}
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	if watch {
		if !blocking {
			index, blocking = lastEventID(r)
		}
		if !blocking {
			index = s.b.KVIndex()
		}
		s.kvWatch(w, r, key, index)
		return
	}
	ctx := r.Context()
	if blocking && index > 0 {
		// Index 0 means "no index yet": answer at once, as Consul does.
		if !hasWait {
			wait = DefaultKVWait
		}
		s.kvBlock(ctx, key, prefix, index, min(wait, MaxKVWait))
	}
	if !stale {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, kvReadTimeout)
		defer cancel()
	}
	if prefix {
		es, idx, err := s.b.KVList(ctx, key, stale)
		if err != nil {
			s.kvReadError(w, r, stale, err)
			return
		}
		setReadHeaders(w, idx, stale)
		out := KVList{Index: idx, Stale: stale, Entries: make([]KVEntry, 0, len(es))}
		for _, e := range es {
			out.Entries = append(out.Entries, entryJSON(e, true))
		}
		s.reply(w, out, nil)
		return
	}
	e, idx, err := s.b.KVGet(ctx, key, stale)
	if idx > 0 {
		// Also on a 404, so a client can wait for the key to appear.
		setReadHeaders(w, idx, stale)
	}
	if err != nil {
		s.kvReadError(w, r, stale, err)
		return
	}
	if raw {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(e.Value)))
		_, _ = w.Write(e.Value)
		return
	}
	s.reply(w, KVRead{KVEntry: entryJSON(e, true), Index: idx, Stale: stale}, nil)
}

// lastEventID reads the index an EventSource sends when it reconnects.
func lastEventID(r *http.Request) (uint64, bool) {
	s := r.Header.Get("Last-Event-ID")
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func setReadHeaders(w http.ResponseWriter, index uint64, stale bool) {
	w.Header().Set(HeaderIndex, strconv.FormatUint(index, 10))
	if stale {
		w.Header().Set(HeaderStale, "true")
	}
}

// kvBlock waits until key (or, with prefix, a key under it) changes after
// index, or wait passes, or the request ends. The read that follows
// answers either way: a blocking query always returns the current data.
func (s *server) kvBlock(ctx context.Context, key string, prefix bool, index uint64, wait time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		evs, next, err := s.b.KVWait(ctx, key, index)
		if err != nil || len(evs) == 0 {
			// Timed out, or the changes are compacted away (then something
			// may have changed: answer now), or the node is stopping.
			return
		}
		// KVWait matches by prefix: "app" also wakes for "apple".
		if prefix || slices.ContainsFunc(evs, func(ev kv.Event) bool { return ev.Entry.Key == key }) {
			return
		}
		index = next
	}
}

// kvWatch streams the changes under prefix after index as Server-Sent
// Events until the client goes, the node stops, or the watch falls behind
// the change log: then an "event: compacted" tells the client to re-read,
// and the stream ends. Nothing is skipped silently.
func (s *server) kvWatch(w http.ResponseWriter, r *http.Request, prefix string, index uint64) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set(HeaderIndex, strconv.FormatUint(index, 10))
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": watching %q after index %d\n\n", prefix, index)
	if err := rc.Flush(); err != nil {
		return
	}
	ctx := r.Context()
	for {
		wctx, cancel := context.WithTimeout(ctx, kvKeepalive)
		evs, next, err := s.b.KVWait(wctx, prefix, index)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, kv.ErrCompacted):
			writeEvent(w, "compacted", "", KVCompacted{Error: err.Error(), Index: next})
			_ = rc.Flush()
			return
		case err != nil:
			writeEvent(w, "error", "", Error{Error: err.Error(), Code: store.Code(err)})
			_ = rc.Flush()
			return
		case len(evs) == 0:
			_, _ = io.WriteString(w, ": keepalive\n\n")
		}
		for i, ev := range evs {
			// The id (which an EventSource sends back as Last-Event-ID
			// when it reconnects) goes on the last event of each index
			// only: resuming after it never drops the rest of a
			// transaction.
			id := ""
			if i == len(evs)-1 || evs[i+1].Index != ev.Index {
				id = strconv.FormatUint(ev.Index, 10)
			}
			writeEvent(w, "", id, KVEvent{Index: ev.Index, Type: ev.Kind.String(), KVEntry: entryJSON(ev.Entry, ev.Kind == kv.EventPut)})
		}
		if err := rc.Flush(); err != nil {
			return // the client is gone
		}
		index = next
	}
}

// writeEvent writes one Server-Sent Event; data is JSON, so one line.
func writeEvent(w io.Writer, event, id string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		b = []byte(`{"error":"encoding the event failed"}`)
	}
	var sb strings.Builder
	if event != "" {
		sb.WriteString("event: " + event + "\n")
	}
	if id != "" {
		sb.WriteString("id: " + id + "\n")
	}
	sb.WriteString("data: ")
	sb.Write(b)
	sb.WriteString("\n\n")
	_, _ = io.WriteString(w, sb.String())
}

// writeQuery is the query of PUT and DELETE /v1/kv/{key}.
type writeQuery struct {
	// cas, from ?cas=N, makes the write apply only at that modify index
	// (0: only if the key is absent); nil without it.
	cas *uint64
	// ttl, from PUT's ?ttl, makes the key expire; 0 without it.
	ttl time.Duration
	// prefix, from DELETE's ?prefix, deletes every key under the key.
	prefix bool
}

// parseWriteQuery reads the query of a write, which may name only the
// allowed parameters (of cas, ttl and prefix). It allocates only for
// ?cas, so a plain put costs nothing here.
func parseWriteQuery(r *http.Request, allowed ...string) (writeQuery, error) {
	q, err := parseQuery(r, allowed...)
	if err != nil {
		return writeQuery{}, err
	}
	var wq writeQuery
	cas, hasCAS, err := q.index("cas")
	if err != nil {
		return writeQuery{}, err
	}
	if hasCAS {
		at := cas // declared here, so the heap holds it only for ?cas
		wq.cas = &at
	}
	if wq.ttl, _, err = q.duration("ttl"); err != nil {
		return writeQuery{}, err
	}
	if wq.prefix, err = q.flag("prefix"); err != nil {
		return writeQuery{}, err
	}
	return wq, nil
}

func (s *server) kvPut(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q, err := parseWriteQuery(r, "cas", "ttl")
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	limits := s.b.KVLimits()
	if err := limits.CheckKey(key); err != nil {
		s.kvError(w, r, err)
		return
	}
	// Read one byte past the limit to tell a value at the limit from one
	// over it without reading all of a huge body.
	value, err := io.ReadAll(io.LimitReader(r.Body, int64(limits.MaxValueBytes)+1))
	if err != nil {
		s.kvError(w, r, fmt.Errorf("%w: reading the value: %v", ErrBadRequest, err))
		return
	}
	if len(value) > limits.MaxValueBytes {
		size := "more than " + strconv.Itoa(limits.MaxValueBytes)
		if r.ContentLength > 0 {
			size = strconv.FormatInt(r.ContentLength, 10)
		}
		// Drain a moderately oversized body, so that closing the connection
		// with unread data does not reset it before the client reads why.
		_, _ = io.CopyN(io.Discard, r.Body, maxDrain)
		s.kvError(w, r, fmt.Errorf("%w: %s bytes, the limit is %d (--kv-max-value)", kv.ErrValueTooLarge, size, limits.MaxValueBytes))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvWriteTimeout)
	defer cancel()
	e, err := s.b.KVPut(ctx, key, value, q.cas, q.ttl)
	if err != nil {
		s.kvWriteError(w, r, key, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(appendPutJSON(make([]byte, 0, 128), entryJSON(e, false)))
}

func (s *server) kvDelete(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	q, err := parseWriteQuery(r, "cas", "prefix")
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	limits := s.b.KVLimits()
	switch {
	case q.prefix && q.cas != nil:
		err = fmt.Errorf("%w: ?cas applies to one key, not to a ?prefix delete (use POST /v1/txn)", ErrBadRequest)
	case q.prefix:
		err = limits.CheckPrefix(key)
	default:
		err = limits.CheckKey(key)
	}
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvWriteTimeout)
	defer cancel()
	var n int
	if q.prefix {
		n, err = s.b.KVDeletePrefix(ctx, key)
	} else {
		var existed bool
		existed, err = s.b.KVDelete(ctx, key, q.cas)
		if existed {
			n = 1
		}
	}
	if err != nil {
		s.kvWriteError(w, r, key, err)
		return
	}
	s.reply(w, KVDeleted{Deleted: n}, nil)
}

func (s *server) kvTxn(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQuery(r); err != nil {
		s.kvError(w, r, err)
		return
	}
	c, err := decodeTxn(http.MaxBytesReader(w, r.Body, maxTxnBody))
	if err != nil {
		s.kvError(w, r, err)
		return
	}
	if err := c.Validate(s.b.KVLimits()); err != nil {
		s.kvError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kvWriteTimeout)
	defer cancel()
	res, err := s.b.KVTxn(ctx, c)
	if err != nil {
		s.kvWriteError(w, r, "", err)
		return
	}
	out := KVTxnResult{Index: res.Index, Results: make([]KVOpResult, len(res.Ops))}
	for i, or := range res.Ops {
		op := c.Ops[i]
		o := KVOpResult{Op: op.Kind.String(), Key: op.Key}
		switch op.Kind {
		case kv.OpPut:
			e := entryJSON(or.Entry, false)
			o.Entry = &e
		case kv.OpGet:
			found := or.Found
			o.Found = &found
			if found {
				e := entryJSON(or.Entry, true)
				o.Entry = &e
			}
		case kv.OpDelete, kv.OpDeletePrefix:
			n := or.Deleted
			o.Deleted = &n
		}
		out.Results[i] = o
	}
	s.reply(w, out, nil)
}

// kvStatus maps the store's errors to HTTP status codes, falling back on
// the rest of the API's.
func kvStatus(err error) int {
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, kv.ErrCheckFailed):
		return http.StatusConflict
	case errors.Is(err, kv.ErrInvalidKey), errors.Is(err, kv.ErrKeyTooLong), errors.Is(err, kv.ErrValueTooLarge),
		errors.Is(err, kv.ErrTooManyOps), errors.Is(err, kv.ErrUnknownOp), errors.Is(err, kv.ErrInvalidCommand):
		return http.StatusBadRequest
	case errors.Is(err, errNoQuorum), errors.Is(err, store.ErrNoQuorum), errors.Is(err, store.ErrNoLeader),
		errors.Is(err, store.ErrOutcomeUnknown):
		return http.StatusServiceUnavailable
	}
	return statusOf(err)
}

// kvError writes err as an error answer, unless the client has gone.
func (s *server) kvError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	code := kvStatus(err)
	if code >= 500 {
		s.log.Warn("KV request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, code, err)
}

// kvReadError answers a failed read. A linearizable read fails, short of
// bad input or a missing key, only when the leader cannot confirm the read
// index: no leader, no quorum, or not within kvReadTimeout. That is a 503
// that says a stale read still works.
func (s *server) kvReadError(w http.ResponseWriter, r *http.Request, stale bool, err error) {
	if code := kvStatus(err); stale || code == http.StatusNotFound || code == http.StatusBadRequest || r.Context().Err() != nil {
		s.kvError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(Error{Error: fmt.Sprintf("%v (%v)", errNoQuorum, err), Code: "kv_no_quorum"})
}

// kvWriteError answers a failed write. A failed compare-and-set or check
// is a 409 that says what the key holds now, so the client can retry; a
// write whose outcome is unknown (it may have reached the leader, but
// leadership moved, the link broke or time ran out before it was known to
// commit) and one that could not commit in time are 503s that warn it may
// still apply.
func (s *server) kvWriteError(w http.ResponseWriter, r *http.Request, key string, err error) {
	if errors.Is(err, store.ErrOutcomeUnknown) && r.Context().Err() == nil {
		// Checked first: the error may also wrap a deadline or
		// ErrNoLeader, and its code must not depend on which is found.
		s.log.Warn("KV request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(Error{Error: outcomeUnknown(key, err), Code: store.Code(store.ErrOutcomeUnknown)})
		return
	}
	if errors.Is(err, kv.ErrCheckFailed) {
		c := KVConflict{Error: Error{Error: err.Error(), Code: store.Code(err)}, Key: key}
		var ce *kv.CheckError
		if errors.As(err, &ce) {
			i := ce.Check
			c.Check, c.Key, c.Found, c.ModifyIndex = &i, ce.Key, ce.Found, ce.ModifyIndex
		} else if key != "" {
			// Forwarded from the leader, the error kept its message but not
			// its details: read the key as it is now.
			ctx, cancel := context.WithTimeout(r.Context(), kvReadTimeout)
			e, _, gerr := s.b.KVGet(ctx, key, false)
			cancel()
			switch {
			case gerr == nil:
				c.Found, c.ModifyIndex = true, e.ModifyIndex
			case errors.Is(gerr, kv.ErrNotFound):
			default:
				c.Key = ""
			}
		}
		if c.Key != "" {
			if c.Found {
				c.Error.Error += fmt.Sprintf("; %q is now at modify_index %d", c.Key, c.ModifyIndex)
			} else {
				c.Error.Error += fmt.Sprintf("; %q does not exist now (create it with cas=0)", c.Key)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(c)
		return
	}
	if r.Context().Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, store.ErrNoLeader) || errors.Is(err, store.ErrNoQuorum)) {
		err = fmt.Errorf("%w: write not committed within %v: the cluster has no leader or this node cannot reach it; it may still apply later: %w", store.ErrNoLeader, kvWriteTimeout, err)
	}
	s.kvError(w, r, err)
}

// outcomeUnknown explains a write whose outcome is unknown and what to do
// about it: read first, since retrying a compare-and-set that did apply
// would fail on its own effect, and retrying a put could overwrite a
// newer value.
func outcomeUnknown(key string, err error) string {
	what := "the write"
	if key != "" {
		what = fmt.Sprintf("the write to %q", key)
	}
	return fmt.Sprintf("%s may or may not have been applied: it reached the leader, or may have, but leadership moved, the link broke or time ran out before it was known to commit; read the key to see whether it did before retrying (%v)", what, err)
}
