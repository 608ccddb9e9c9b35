package buoy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"buoy/internal/api"
	"buoy/internal/kv"
)

// DefaultKVTextAddr is where the agent serves the key-value line protocol
// unless told otherwise: loopback only, as the protocol has no
// authentication.
const DefaultKVTextAddr = "127.0.0.1:7381"

// kvTextReadTimeout bounds a line protocol get: a linearizable read waits
// through an election, not indefinitely for a quorum that is gone.
const kvTextReadTimeout = 5 * time.Second

// kvTextBackend serves the line protocol from the node's key-value store.
// Reads are linearizable, as everywhere else by default; the protocol has
// no way to ask for a stale one.
type kvTextBackend struct{ kv *KV }

func (b kvTextBackend) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTextReadTimeout)
	defer cancel()
	e, _, err := b.kv.Get(ctx, key, ReadOptions{})
	if err != nil && !errors.Is(err, kv.ErrNotFound) && !errors.Is(err, kv.ErrInvalidKey) && !errors.Is(err, kv.ErrKeyTooLong) {
		return nil, fmt.Errorf("%w (a stale read works through the HTTP API: GET /v1/kv/%s?stale)", ErrNoQuorum, key)
	}
	return e.Value, err
}

func (b kvTextBackend) Set(ctx context.Context, key string, value []byte) error {
	_, err := b.kv.Put(ctx, key, value, PutOptions{})
	return err
}

func (b kvTextBackend) Del(ctx context.Context, key string) error {
	_, err := b.kv.Delete(ctx, key, nil)
	return err
}

// CheckKVTextAddr applies the HTTP API's rule (CheckHTTPAddr) to the line
// protocol's address: loopback, unless the operator set an API token and
// so declared this node's ports meant to be reached from elsewhere. Empty
// and "-" (disabled) pass.
func CheckKVTextAddr(addr, token string) error {
	if addr == "" || addr == "-" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: --kv-text-addr %q: %w", ErrConfig, addr, err)
	}
	if err := CheckHTTPAddr(addr, token); err != nil {
		return fmt.Errorf("%w: --kv-text-addr %q is not a loopback address and the line protocol has no authentication; set --http-token to expose it anyway, or leave --kv-text-addr empty to disable it", ErrConfig, addr)
	}
	return nil
}

// startKVText serves the line protocol on Config.KVTextAddr unless it is
// empty or "-". The server stops when the node's context ends (Close).
func (n *Node) startKVText() error {
	addr := n.cfg.KVTextAddr
	if addr == "" || addr == "-" {
		return nil
	}
	if err := CheckKVTextAddr(addr, n.cfg.HTTPToken); err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for the kv line protocol on %s: %w", addr, err)
	}
	n.kvTextL = l
	srv := &api.TextServer{
		Backend: kvTextBackend{kv: n.KV()},
		Limits:  n.kvLimits(),
		Log:     n.log.With("component", "kvtext"),
	}
	// Serve returns once n.ctx ends and every connection has closed.
	n.wg.Go(func() {
		if err := srv.Serve(n.ctx, l); err != nil {
			n.log.Error("kv line protocol stopped", "err", err)
		}
	})
	n.log.Info("kv line protocol listening", "addr", l.Addr().String())
	return nil
}

// KVTextAddr returns the address of the key-value line protocol, or nil if
// it is disabled.
func (n *Node) KVTextAddr() net.Addr {
	if n.kvTextL == nil {
		return nil
	}
	return n.kvTextL.Addr()
}
