package failover

import (
	"fmt"
	"time"
)

// Timing holds the durations of the lease protocol. Each one is measured on
// a single node's own monotonic clock, from an event that node saw; no
// instant is ever sent to or compared with another node's clock. Clocks
// may run at different rates, by at most MaxDrift.
type Timing struct {
	// Renew is how often a holder sends a renewal while it holds the role.
	Renew time.Duration
	// Retry is how often an assigned node sends renewals while it does not
	// hold the role yet (waiting for its first quorum) or lost its lease.
	Retry time.Duration
	// Lease is the nominal lease. A holder believes it holds the role until
	// Lease-Guard after sending its newest renewal that a quorum
	// acknowledged; a witness promises, for Lease+Margin after each
	// acknowledgement, not to acknowledge a newer holder of the role.
	Lease time.Duration
	// Guard is how much earlier than Lease the holder gives the role up, so
	// that its demote hook starts (and usually ends) before a new holder
	// could be acknowledged anywhere.
	Guard time.Duration
	// Margin is how much longer than Lease a witness keeps its promise, the
	// allowance for clock rate drift.
	Margin time.Duration
	// MaxDrift bounds how far any node's monotonic clock rate may be from
	// true time (0.01: up to 1% fast or slow).
	MaxDrift float64
}

// Profile names.
const (
	ProfileDefault = "default"
	ProfileLAN     = "lan"
)

// DefaultTiming returns the "default" profile, for home links (tens of
// milliseconds of latency, occasional loss). See the package documentation
// for how the numbers meet the failover targets.
func DefaultTiming() Timing {
	return Timing{
		Renew:    250 * time.Millisecond,
		Retry:    50 * time.Millisecond,
		Lease:    1200 * time.Millisecond,
		Guard:    300 * time.Millisecond,
		Margin:   100 * time.Millisecond,
		MaxDrift: 0.01,
	}
}

// LANTiming returns the "lan" profile, for nodes on one local network.
func LANTiming() Timing {
	return Timing{
		Renew:    75 * time.Millisecond,
		Retry:    15 * time.Millisecond,
		Lease:    350 * time.Millisecond,
		Guard:    100 * time.Millisecond,
		Margin:   50 * time.Millisecond,
		MaxDrift: 0.01,
	}
}

// Profile returns the timing profile of that name ("" means "default").
func Profile(name string) (Timing, error) {
	switch name {
	case "", ProfileDefault:
		return DefaultTiming(), nil
	case ProfileLAN:
		return LANTiming(), nil
	}
	return Timing{}, fmt.Errorf("timing profile %q: %w (use %q or %q)", name, ErrUnknownProfile, ProfileDefault, ProfileLAN)
}

// Validate reports whether t keeps two holders apart for any clock rates
// within MaxDrift, and lets a holder renew before its lease ends.
//
// The safety condition: a holder's belief ends at most (Lease-Guard)/(1-ρ)
// of true time after it sent its last acknowledged renewal; a witness
// acknowledged that renewal after it was sent and refuses a newer holder
// for at least (Lease+Margin)/(1+ρ) of true time after that. So the first
// must be shorter: (Lease-Guard)(1+ρ) < (Lease+Margin)(1-ρ).
func (t Timing) Validate() error {
	switch {
	case t.Renew <= 0 || t.Retry <= 0 || t.Lease <= 0:
		return fmt.Errorf("timing: renew %v, retry %v and lease %v must be positive: %w", t.Renew, t.Retry, t.Lease, ErrUnsafeTiming)
	case t.Guard < 0 || t.Margin < 0:
		return fmt.Errorf("timing: guard %v and margin %v may not be negative: %w", t.Guard, t.Margin, ErrUnsafeTiming)
	case !(t.MaxDrift >= 0 && t.MaxDrift < 0.5):
		return fmt.Errorf("timing: max drift %v must be in [0, 0.5): %w", t.MaxDrift, ErrUnsafeTiming)
	case t.Retry > t.Renew:
		return fmt.Errorf("timing: retry %v is longer than renew %v: %w", t.Retry, t.Renew, ErrUnsafeTiming)
	case t.Renew >= t.belief():
		return fmt.Errorf("timing: renew %v is not shorter than lease-guard %v, so a holder could never keep its lease: %w", t.Renew, t.belief(), ErrUnsafeTiming)
	}
	rho := t.MaxDrift
	if hold, wait := t.belief().Seconds()*(1+rho), t.promise().Seconds()*(1-rho); !(hold < wait) {
		return fmt.Errorf("timing: with clocks %.2g%% apart a holder may believe %.3fs while witnesses wait only %.3fs; raise guard or margin: %w",
			rho*100, hold, wait, ErrUnsafeTiming)
	}
	return nil
}

// belief is how long after sending an acknowledged renewal a holder still
// believes it holds the role.
func (t Timing) belief() time.Duration { return t.Lease - t.Guard }

// promise is how long after acknowledging a renewal a witness refuses to
// acknowledge a newer holder.
func (t Timing) promise() time.Duration { return t.Lease + t.Margin }

// resend is how long the assigner waits for a proposed command to show up
// committed before it proposes again. Commands carry the epoch they follow,
// so a duplicate that commits late is refused, not applied twice.
func (t Timing) resend() time.Duration { return t.promise() }

// moveTimeout is how long a planned move stays pending. A move releases the
// role and waits for the old holder's lease at most, then assigns it, so
// twice that plus a second for commits is plenty.
func (t Timing) moveTimeout() time.Duration { return 2*t.promise() + time.Second }
