package consensus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"buoy/internal/kv"
	"buoy/internal/store"
	"buoy/internal/wire"
)

// TestRetryable: a call that cannot have taken effect is retried; one that
// may have (its answer was lost) only at least once, never at most once.
func TestRetryable(t *testing.T) {
	unknown := fmt.Errorf("rpc kv to n1: %w: %w: EOF", ErrUnreachable, store.ErrOutcomeUnknown)
	moved := fmt.Errorf("rpc kv to n1: %w: %w", store.ErrOutcomeUnknown, errLeaderMoved)
	tests := []struct {
		name               string
		err                error
		atLeast, atMostOne bool
	}{
		{"not leader", fmt.Errorf("x: %w", store.ErrNotLeader), true, true},
		{"no leader", store.ErrNoLeader, true, true},
		{"dial failed", fmt.Errorf("rpc kv to n1: %w: refused", ErrUnreachable), true, true},
		{"answer lost", unknown, true, false},
		{"leader moved after sending", moved, true, false},
		{"leadership lost while committing", fmt.Errorf("%w: leadership lost", store.ErrOutcomeUnknown), true, false},
		{"check failed", kv.ErrCheckFailed, false, false},
		{"deadline", context.DeadlineExceeded, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryable(tt.err, true); got != tt.atLeast {
				t.Errorf("retryable(%v, at least once) = %v, want %v", tt.err, got, tt.atLeast)
			}
			if got := retryable(tt.err, false); got != tt.atMostOne {
				t.Errorf("retryable(%v, at most once) = %v, want %v", tt.err, got, tt.atMostOne)
			}
		})
	}
}

// TestExchangeOutcome: a request that went out whole and got no answer is
// of unknown outcome; one that could not be written is only unreachable.
func TestExchangeOutcome(t *testing.T) {
	req := wire.Request{Op: "kv", Body: []byte(`{}`)}

	t.Run("answer lost", func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		go func() { // ends after one frame
			var got wire.Request
			_ = wire.ReadFrame(server, &got, 0)
			server.Close() // the peer died before answering
		}()
		_, _, err := exchange(context.Background(), client, req, nil)
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, store.ErrOutcomeUnknown) {
			t.Errorf("exchange = %v, want %v and %v", err, ErrUnreachable, store.ErrOutcomeUnknown)
		}
	})
	t.Run("not sent", func(t *testing.T) {
		client, server := net.Pipe()
		server.Close()
		defer client.Close()
		_, _, err := exchange(context.Background(), client, req, nil)
		if !errors.Is(err, ErrUnreachable) || errors.Is(err, store.ErrOutcomeUnknown) {
			t.Errorf("exchange = %v, want %v without %v", err, ErrUnreachable, store.ErrOutcomeUnknown)
		}
	})
}
