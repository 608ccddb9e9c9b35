package nscluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// want is what one node's member list must show: for every member, the
// IPs it may be shown at (always with PeerPort).
type want map[string][]netip.Addr

// expected returns, for every node, what its member list must show in the
// lab as it is now: every member alive, at its public IP; a member behind
// the same NAT router as the observer (itself included) may also be shown
// at its LAN address, which is how its LAN neighbours reach it.
func (c *Cluster) expected() map[string]want {
	c.t.Helper()
	out := make(map[string]want, len(c.nodes))
	for _, obs := range c.nodes {
		w := want{}
		for _, sub := range c.nodes {
			ips := []netip.Addr{sub.PublicIP()}
			if sub.router != nil && sub.router == obs.router {
				ips = append(ips, sub.IP())
			}
			w[sub.name] = ips
		}
		out[obs.name] = w
	}
	return out
}

// check compares a member list with w.
func (w want) check(ms []Member) error {
	var errs []error
	seen := map[string]bool{}
	for _, m := range ms {
		ips, ok := w[m.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("unexpected member %s (%s)", m.Name, m.State))
			continue
		}
		seen[m.Name] = true
		if m.State != "alive" {
			errs = append(errs, fmt.Errorf("%s is %s, want alive", m.Name, m.State))
		}
		ap, err := netip.ParseAddrPort(m.Address)
		if err != nil || ap.Port() != PeerPort || !slices.Contains(ips, ap.Addr()) {
			errs = append(errs, fmt.Errorf("%s at %q, want %s", m.Name, m.Address, showAddrs(ips)))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(w)) {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("%s missing", name))
		}
	}
	return errors.Join(errs...)
}

// showAddrs formats the wanted addresses: "198.51.100.21:7300" or
// "one of [a b]".
func showAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = netip.AddrPortFrom(ip, PeerPort).String()
	}
	if len(s) == 1 {
		return s[0]
	}
	return "one of [" + strings.Join(s, " ") + "]"
}

// WaitConverged polls "buoy members --json" on every node, each node in a
// loop of its own, until every node shows every member alive at its
// current address (see expected), and returns the moment the last node
// started showing it: the end of the first CLI call of its unbroken run of
// correct answers. The returned time is an upper bound, by at most one
// CLI call plus one poll interval, of when the cluster converged. On a
// timeout (ctx's deadline, or DefaultConvergeTimeout) the error holds each
// node's last complaint. The expectation is taken from the lab when
// WaitConverged is called.
func (c *Cluster) WaitConverged(ctx context.Context) (time.Time, error) {
	c.t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultConvergeTimeout)
		defer cancel()
	}
	exp := c.expected()
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	type state struct {
		since time.Time // start of the current run of correct answers; zero if wrong
		err   error     // last complaint
	}
	var mu sync.Mutex
	states := make(map[string]*state, len(c.nodes))
	for _, n := range c.nodes {
		states[n.name] = &state{err: errors.New("no answer yet")}
	}
	var doneAt time.Time
	allGood := func() (time.Time, bool) {
		var last time.Time
		for _, s := range states {
			if s.since.IsZero() {
				return time.Time{}, false
			}
			if s.since.After(last) {
				last = s.since
			}
		}
		return last, true
	}
	// One poller per node; each exits when ctx ends, which happens when
	// every node is correct (stop) or at the deadline. wg.Wait below
	// awaits them.
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		w := exp[n.name]
		wg.Go(func() {
			for ctx.Err() == nil {
				ms, err := n.Members(ctx)
				now := time.Now()
				if err == nil {
					err = w.check(ms)
				}
				mu.Lock()
				s := states[n.name]
				switch {
				case ctx.Err() != nil:
					// A call cut short by the end says nothing.
				case err != nil:
					s.since, s.err = time.Time{}, err
				case s.since.IsZero():
					s.since, s.err = now, nil
				}
				if at, ok := allGood(); ok && doneAt.IsZero() {
					doneAt = at
					stop()
				}
				mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(c.opts.Poll):
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if !doneAt.IsZero() {
		return doneAt, nil
	}
	var errs []error
	for _, n := range c.nodes {
		if s := states[n.name]; s.err != nil {
			errs = append(errs, fmt.Errorf("on %s: %w", n.name, s.err))
		}
	}
	return time.Time{}, fmt.Errorf("not converged: %w (%w)", ctx.Err(), errors.Join(errs...))
}
