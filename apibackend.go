package buoy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"buoy/internal/api"
	"buoy/internal/kv"
)

// apiBackend adapts a Node to the HTTP API: the Node's own methods, plus
// the zone operations in the API's terms.
type apiBackend struct{ *Node }

func (b apiBackend) ZoneList(ctx context.Context) ([]api.ZoneInfo, error) {
	return b.Zones(), nil
}

func (b apiBackend) ZoneText(ctx context.Context, origin string) (string, error) {
	return b.Node.ZoneText(origin)
}

func (b apiBackend) ZonePut(ctx context.Context, records []string) (string, error) {
	rrs := make([]dns.RR, 0, len(records))
	for i, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			return "", fmt.Errorf("%w: record %d: %v", api.ErrBadRequest, i+1, err)
		}
		if rr != nil {
			rrs = append(rrs, rr)
		}
	}
	if len(rrs) == 0 {
		return "", fmt.Errorf("%w: empty zone", api.ErrBadRequest)
	}
	return b.PutZone(ctx, rrs)
}

func (b apiBackend) ZoneDrop(ctx context.Context, origin string) error {
	return b.DropZone(ctx, origin)
}

func (b apiBackend) ZoneReload(ctx context.Context) error {
	if err := b.LoadZoneFiles(ctx); err != nil {
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	return nil
}

func (b apiBackend) KVGet(ctx context.Context, key string, stale bool) (kv.Entry, uint64, error) {
	return b.KV().Get(ctx, key, ReadOptions{Stale: stale})
}

func (b apiBackend) KVList(ctx context.Context, prefix string, stale bool) ([]kv.Entry, uint64, error) {
	return b.KV().List(ctx, prefix, ReadOptions{Stale: stale})
}

func (b apiBackend) KVPut(ctx context.Context, key string, value []byte, cas *uint64, ttl time.Duration) (kv.Entry, error) {
	return b.KV().Put(ctx, key, value, PutOptions{CAS: cas, TTL: ttl})
}

func (b apiBackend) KVDelete(ctx context.Context, key string, cas *uint64) (bool, error) {
	return b.KV().Delete(ctx, key, cas)
}

func (b apiBackend) KVDeletePrefix(ctx context.Context, prefix string) (int, error) {
	return b.KV().DeletePrefix(ctx, prefix)
}

func (b apiBackend) KVTxn(ctx context.Context, c kv.Command) (kv.Result, error) {
	return b.KV().Txn(ctx, c)
}

// KVWait also ends, with an error, when the node closes: the HTTP
// server's Shutdown does not cancel requests, and a blocking query or watch
// would otherwise hold Close up for its whole wait.
func (b apiBackend) KVWait(ctx context.Context, prefix string, index uint64) ([]kv.Event, uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	evs, next, err := b.KV().WaitIndex(ctx, prefix, index)
	if err == nil && len(evs) == 0 && b.ctx.Err() != nil {
		err = errNodeClosing
	}
	return evs, next, err
}

// errNodeClosing ends the API's waits when the node stops.
var errNodeClosing = errors.New("the node is shutting down")

func (b apiBackend) KVIndex() uint64 { return b.fsm.View().KV.LastChange() }

func (b apiBackend) KVLimits() kv.Limits { return b.kvLimits() }
