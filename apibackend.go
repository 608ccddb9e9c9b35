package buoy

import (
	"context"
	"fmt"

	"github.com/miekg/dns"

	"buoy/internal/api"
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
