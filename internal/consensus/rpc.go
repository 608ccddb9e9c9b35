package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"buoy/internal/store"
	"buoy/internal/wire"
)

// Handler serves one RPC operation. from is the calling node's name (taken
// from its certificate by the peer layer, not from the request).
type Handler func(ctx context.Context, from string, body json.RawMessage) (any, error)

// Handle registers h for op. It must be called before Start.
func (n *Node) Handle(op string, h Handler) {
	n.handlers[op] = h
}

// Raw is an RPC body that travels as bytes, not JSON: pass a Raw as
// Call's req, and a *Raw as its resp, for an op registered with
// HandleRaw. A peer that predates raw bodies answers such a call with
// store.ErrInvalidInput ("unknown rpc") before acting on it.
type Raw []byte

// RawHandler serves one raw RPC operation (see Raw).
type RawHandler func(ctx context.Context, from string, body []byte) ([]byte, error)

// HandleRaw registers h for op, called with a Raw body. It must be called
// before Start.
func (n *Node) HandleRaw(op string, h RawHandler) {
	n.rawHandlers[op] = h
}

// maxEnvelope is room for a Response's other fields around its body.
const maxEnvelope = 64 << 10

// rpcTimeout bounds how long one stream may sit idle between frames.
const rpcTimeout = 30 * time.Second

// peerNamer is implemented by the peer layer's streams.
type peerNamer interface{ PeerName() string }

func (n *Node) serveRPC() {
	for {
		conn, err := n.cfg.RPCListener.Accept()
		if err != nil {
			return // listener closed: Close is under way
		}
		n.wg.Go(func() { n.serveRPCConn(conn) })
	}
}

func (n *Node) serveRPCConn(conn net.Conn) {
	defer conn.Close()
	from := ""
	if p, ok := conn.(peerNamer); ok {
		from = p.PeerName()
	}
	stop := context.AfterFunc(n.ctx, func() { conn.Close() })
	defer stop()
	var buf []byte
	for {
		_ = conn.SetReadDeadline(time.Now().Add(rpcTimeout))
		var req wire.Request
		if err := wire.ReadFrame(conn, &req, 0); err != nil {
			return
		}
		var raw []byte
		if req.Raw {
			var err error
			if raw, err = wire.ReadRawFrame(conn, 0); err != nil {
				return
			}
		}
		resp, out := n.dispatch(from, req, raw)
		// The answer and its raw body go out in one write.
		var err error
		buf, err = wire.AppendFrame(buf[:0], resp)
		if err == nil && resp.Raw {
			buf, err = wire.AppendRawFrame(buf, out)
		}
		if err != nil {
			n.log.Warn("rpc reply", "peer", from, "op", req.Op, "err", err)
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(rpcTimeout))
		if _, err := conn.Write(buf); err != nil {
			n.log.Debug("rpc reply", "peer", from, "op", req.Op, "err", err)
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // one big answer does not pin its buffer for the stream's life
		}
	}
}

// dispatch runs the handler for req (with raw, its raw body) and returns
// the answer, and for a raw request that succeeded the raw answer body.
func (n *Node) dispatch(from string, req wire.Request, raw []byte) (wire.Response, []byte) {
	ctx, cancel := context.WithTimeout(n.ctx, rpcTimeout)
	defer cancel()
	if req.Raw {
		h, ok := n.rawHandlers[req.Op]
		if !ok {
			return wire.Response{Error: fmt.Sprintf("unknown raw rpc %q", req.Op), Code: store.Code(store.ErrInvalidInput)}, nil
		}
		out, err := h(ctx, from, raw)
		if err != nil {
			return wire.Response{Error: err.Error(), Code: store.Code(err)}, nil
		}
		if len(out) > wire.MaxFrame {
			// The handler has acted: what it did is lost, not undone.
			return wire.Response{Error: fmt.Sprintf("%s reply: %d bytes, the limit is %d: %v", req.Op, len(out), wire.MaxFrame, store.ErrOutcomeUnknown),
				Code: store.Code(store.ErrOutcomeUnknown)}, nil
		}
		return wire.Response{Raw: true}, out
	}
	return n.dispatchJSON(ctx, from, req), nil
}

func (n *Node) dispatchJSON(ctx context.Context, from string, req wire.Request) wire.Response {
	h, ok := n.handlers[req.Op]
	if !ok {
		return wire.Response{Error: fmt.Sprintf("unknown rpc %q", req.Op), Code: store.Code(store.ErrInvalidInput)}
	}
	out, err := h(ctx, from, req.Body)
	if err != nil {
		return wire.Response{Error: err.Error(), Code: store.Code(err)}
	}
	body, err := json.Marshal(out)
	if err == nil && len(body) > wire.MaxFrame-maxEnvelope {
		err = fmt.Errorf("%d bytes, the limit is %d", len(body), wire.MaxFrame-maxEnvelope)
	}
	if err != nil {
		// The handler has acted: what it did is lost, not undone.
		return wire.Response{Error: fmt.Sprintf("encode %s reply: %v: %v", req.Op, err, store.ErrOutcomeUnknown), Code: store.Code(store.ErrOutcomeUnknown)}
	}
	return wire.Response{Body: body}
}

// Call invokes op on node to. resp may be nil when the answer is not needed.
// Errors from the remote handler keep their sentinel (errors.Is works).
// A Raw req is sent as bytes to an op registered with HandleRaw, and its
// answer is stored in resp, which must then be a *Raw.
func (n *Node) Call(ctx context.Context, to, op string, req, resp any) error {
	r := wire.Request{Op: op}
	raw, isRaw := req.(Raw)
	if isRaw {
		r.Raw = true
	} else {
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("rpc %s to %s: encode: %w", op, to, err)
		}
		r.Body = body
	}
	a, err := n.roundTrip(ctx, to, r, raw)
	if err != nil {
		return fmt.Errorf("rpc %s to %s: %w", op, to, err)
	}
	if a.Error != "" {
		return store.FromCode(a.Code, a.Error)
	}
	if isRaw {
		rp, ok := resp.(*Raw)
		switch {
		case !a.Raw:
			return fmt.Errorf("rpc %s to %s: %w: the answer has no raw body", op, to, store.ErrOutcomeUnknown)
		case ok:
			*rp = a.raw
		case resp != nil:
			return fmt.Errorf("rpc %s to %s: a raw call's answer goes into a *Raw, not %T", op, to, resp)
		}
		return nil
	}
	if resp != nil && len(a.Body) > 0 {
		if err := json.Unmarshal(a.Body, resp); err != nil {
			return fmt.Errorf("rpc %s to %s: decode reply: %w", op, to, err)
		}
	}
	return nil
}

// roundTrip sends req to node to and reads the answer, on an idle stream
// from the pool if there is one, else on a new stream, which it keeps for
// later calls. If a pooled stream fails, the link under it has most likely
// gone: the pool's other streams to the node are dropped and the request
// is sent once more on a new stream, unless it may have reached the peer
// (store.ErrOutcomeUnknown): a write sent twice could be applied twice.
func (n *Node) roundTrip(ctx context.Context, to string, req wire.Request, raw []byte) (answer, error) {
	if conn := n.rpc.get(to, time.Now()); conn != nil {
		r, reusable, err := exchange(ctx, conn, req, raw)
		if err == nil {
			n.release(to, conn, reusable)
			return r, nil
		}
		conn.Close()
		n.rpc.drop(to)
		if ctx.Err() != nil || errors.Is(err, store.ErrOutcomeUnknown) {
			return r, err
		}
	}
	conn, err := n.cfg.Dial(ctx, to, wire.KindRPC)
	if err != nil {
		return answer{}, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	r, reusable, err := exchange(ctx, conn, req, raw)
	if err != nil {
		conn.Close()
		return r, err
	}
	n.release(to, conn, reusable)
	return r, nil
}

// release returns a stream to the pool, or closes it if it is not fit for
// reuse.
func (n *Node) release(to string, conn net.Conn, reusable bool) {
	if reusable {
		n.rpc.put(to, conn, time.Now())
	} else {
		conn.Close()
	}
}

// answer is a response and, for a raw one, its raw body.
type answer struct {
	wire.Response
	raw []byte
}

// exchange writes one request (its frame, and raw's frame if req.Raw) on
// conn and reads one answer. The stream is reusable after it unless ctx
// ended as the answer came (the deadline that cancellation sets may then
// land on it later), or a raw request was refused: a peer that predates
// raw bodies goes on to read the raw frame as its next request, fails and
// closes the stream.
func exchange(ctx context.Context, conn net.Conn, req wire.Request, raw []byte) (a answer, reusable bool, err error) {
	buf, err := wire.AppendFrame(nil, req)
	if err == nil && req.Raw {
		buf, err = wire.AppendRawFrame(buf, raw)
	}
	if err != nil {
		return answer{}, false, err
	}
	// Closing a yamux stream only half-closes it: a pending read goes on
	// waiting for the peer. An expired deadline is what wakes it.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	dl, _ := ctx.Deadline() // none: zero, which also clears an earlier call's
	_ = conn.SetDeadline(dl)
	_, err = conn.Write(buf)
	sent := err == nil
	if sent {
		err = wire.ReadFrame(conn, &a.Response, 0)
	}
	if err == nil && a.Raw {
		a.raw, err = wire.ReadRawFrame(conn, 0)
	}
	reusable = stop() && !(req.Raw && a.Error != "")
	if err != nil && sent {
		// The whole request went out: the peer may have acted on it.
		return answer{}, false, fmt.Errorf("%w: %w: %w", ErrUnreachable, store.ErrOutcomeUnknown, ctxErr(ctx, err))
	}
	if err != nil {
		return answer{}, false, fmt.Errorf("%w: %w", ErrUnreachable, ctxErr(ctx, err))
	}
	return a, reusable, nil
}

// leaderPoll is how often a forwarded call checks that its target is
// still the leader this node knows.
const leaderPoll = 100 * time.Millisecond

// errLeaderMoved cancels a forwarded call whose target stopped being the
// leader.
var errLeaderMoved = errors.New("leader changed during the call")

// callLeader is Call to the leader, abandoned as soon as this node learns
// that leader is no longer the leader. A leader cut off from the cluster
// leaves its streams stalled, not broken: without this the call would
// wait for the peer layer's keepalive (some 20 s) although the others
// elected a new leader within 2 s. The caller retries with the new
// leader, as it does after a transport error.
func (n *Node) callLeader(ctx context.Context, leader, op string, req, resp any) error {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // ends when the call returns (stop) or is cancelled
		t := time.NewTicker(leaderPoll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-cctx.Done():
				return
			case <-t.C:
				if n.Leader() != leader {
					cancel(errLeaderMoved)
					return
				}
			}
		}
	})
	err := n.Call(cctx, leader, op, req, resp)
	close(stop)
	wg.Wait()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(cctx), errLeaderMoved) {
		if errors.Is(err, store.ErrOutcomeUnknown) {
			// The old leader has the request and may have logged it; a
			// new leader may commit it.
			return fmt.Errorf("rpc %s to %s: %w: %w", op, leader, store.ErrOutcomeUnknown, errLeaderMoved)
		}
		return fmt.Errorf("rpc %s to %s: %w: %w", op, leader, store.ErrNotLeader, errLeaderMoved)
	}
	return err
}

// ErrUnreachable marks an RPC that failed in transport: the peer may be
// down, or the stream broke before an answer came.
var ErrUnreachable = errors.New("peer unreachable")

// ctxErr prefers the context's error over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), err)
	}
	return err
}
