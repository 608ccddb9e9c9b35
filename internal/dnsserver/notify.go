package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ErrNotifyRefused is returned (wrapped) by NotifyAll when a secondary
// answers a NOTIFY with an error rcode; retrying would not help.
var ErrNotifyRefused = errors.New("notify refused")

// Retry schedule of an outgoing NOTIFY (RFC 1996 3.6: retry with
// increasing intervals, a bounded number of times): the first answer is
// awaited for notifyTimeout, each retry twice as long, notifyAttempts in all
// (1+2+4+8+16 s: about half a minute for a dead secondary).
const (
	notifyTimeout  = time.Second
	notifyAttempts = 5
)

// NotifyAll tells every secondary of Config.Notify that the zone origin is
// now at serial (RFC 1996), over UDP, signed with the first TSIG key when one
// is configured. Secondaries are notified in parallel; each is retried with
// backoff until it answers, a bounded number of times. NotifyAll returns
// when every secondary has answered or given up, or when ctx is done; the
// error joins the failures, one per secondary.
func (s *Server) NotifyAll(ctx context.Context, origin string, serial uint32) error {
	if len(s.cfg.Notify) == 0 {
		return nil
	}
	n := notifier{timeout: notifyTimeout, attempts: notifyAttempts, tsig: s.tsig}
	if name, alg, ok := s.notifyKey(); ok && s.tsig != nil {
		n.key, n.alg = name, alg
	}
	msg := s.notifyMsg(origin, serial)
	errs := make([]error, len(s.cfg.Notify))
	var wg sync.WaitGroup
	for i, target := range s.cfg.Notify {
		wg.Go(func() {
			if err := n.send(ctx, target, msg.Copy()); err != nil {
				errs[i] = fmt.Errorf("notify %s of %s serial %d: %w", target, origin, serial, err)
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn("dns notify", "zone", origin, "serial", serial, "err", err)
	}
	return err
}

// notifyMsg returns the NOTIFY for origin at serial, with the zone's SOA in
// the answer section when the source has it (RFC 1996 3.7: a hint the
// secondary may use to skip the SOA query).
func (s *Server) notifyMsg(origin string, serial uint32) *dns.Msg {
	origin = canonical(origin)
	m := new(dns.Msg)
	m.SetNotify(origin)
	if s.cfg.Source != nil {
		if z := s.cfg.Source.Zone(origin); z != nil {
			if soa := zoneSOA(z); soa != nil {
				soa.Serial = serial
				m.Answer = []dns.RR{soa}
			}
		}
	}
	return m
}

// notifier sends one NOTIFY to one secondary and waits for its answer.
type notifier struct {
	timeout  time.Duration // the first attempt's; doubled at each retry
	attempts int
	tsig     dns.TsigProvider
	key, alg string // empty: unsigned
	// sleep waits d or until ctx ends (then it returns ctx's error); nil
	// is sleepCtx. Tests record the waits instead.
	sleep func(ctx context.Context, d time.Duration) error
}

// sleepCtx waits d, or until ctx ends and then returns its error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends m to target (host:port, or a host for port 53) until target
// answers, attempts times at most. It returns nil once target answered
// NOERROR.
func (n notifier) send(ctx context.Context, target string, m *dns.Msg) error {
	if _, _, err := net.SplitHostPort(target); err != nil {
		target = net.JoinHostPort(target, "53")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", target)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// Unblock a pending read when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	// One message for all attempts: an answer to an earlier attempt that
	// arrives late still matches, and the signature's fudge (300 s) covers
	// the whole schedule.
	m.Id = dns.Id()
	raw, mac, err := n.pack(m)
	if err != nil {
		return err
	}
	sleep := n.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	timeout := n.timeout
	var last error
	for attempt := 0; attempt < n.attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return errors.Join(last, err)
		}
		deadline := time.Now().Add(timeout)
		if _, err := conn.Write(raw); err != nil {
			last = fmt.Errorf("send: %w", err)
		} else {
			_ = conn.SetReadDeadline(deadline)
			if err := ctx.Err(); err != nil {
				// ctx ended before the deadline above replaced the one
				// the AfterFunc set.
				return errors.Join(last, err)
			}
			err := n.await(conn, m, mac)
			if err == nil || errors.Is(err, ErrNotifyRefused) {
				return err
			}
			last = err
		}
		// An attempt can fail long before its deadline: with nothing
		// listening on the secondary's port, the ICMP port unreachable
		// makes the read (or the next write) fail with ECONNREFUSED at
		// once. Wait the attempt out, so that the retries keep their
		// schedule instead of all going out within a millisecond.
		if attempt < n.attempts-1 {
			if err := sleep(ctx, time.Until(deadline)); err != nil {
				return errors.Join(last, err)
			}
		}
		timeout *= 2
	}
	return fmt.Errorf("no answer after %d attempts: %w", n.attempts, last)
}

// pack packs m, signed when a key is set; it returns the MAC the answer is
// signed over.
func (n notifier) pack(m *dns.Msg) (raw []byte, mac string, err error) {
	m.Extra = nil
	if n.key == "" {
		raw, err = m.Pack()
		if err != nil {
			return nil, "", fmt.Errorf("pack notify: %w", err)
		}
		return raw, "", nil
	}
	m.Extra = append(m.Extra, newTSIG(n.key, n.alg, tsigFudge, m.Id))
	raw, mac, err = dns.TsigGenerateWithProvider(m, n.tsig, "", false)
	if err != nil {
		return nil, "", fmt.Errorf("sign notify: %w", err)
	}
	return raw, mac, nil
}

// await reads until the answer to m arrives or the read deadline passes.
// Stray datagrams (other IDs, non-answers) are ignored.
func (n notifier) await(conn net.Conn, m *dns.Msg, mac string) error {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		k, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("await answer: %w", err)
		}
		var a dns.Msg
		if err := a.Unpack(buf[:k]); err != nil || a.Id != m.Id || !a.Response || a.Opcode != dns.OpcodeNotify {
			continue
		}
		if n.key != "" && a.IsTsig() != nil {
			// An answer signed with our key must verify; an unsigned one
			// is accepted: it only stops the retries.
			if err := dns.TsigVerifyWithProvider(buf[:k], n.tsig, mac, false); err != nil {
				return fmt.Errorf("answer TSIG: %w", err)
			}
		}
		if a.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("%w: %s", ErrNotifyRefused, dns.RcodeToString[a.Rcode])
		}
		return nil
	}
}

// serveNotify answers an incoming NOTIFY (RFC 1996). We are the primary of
// every zone we serve, so there is nothing to fetch: a NOTIFY for one of our
// zones is acknowledged with NOERROR, one for another zone gets NOTAUTH.
func (s *Server) serveNotify(_ context.Context, w dns.ResponseWriter, r *dns.Msg) {
	m, ok := s.opReply(w, r)
	if !ok {
		return
	}
	if _, ok := s.checkTSIG(w, r, m); !ok {
		return
	}
	if len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeSOA {
		m.Question = nil
		s.finish(w, m, dns.RcodeFormatError)
		return
	}
	if s.cat.Load().zones[canonical(r.Question[0].Name)] == nil {
		s.finish(w, m, dns.RcodeNotAuth)
		return
	}
	s.log.Debug("dns notify received", "peer", w.RemoteAddr(), "zone", r.Question[0].Name)
	m.Authoritative = true
	s.finish(w, m, dns.RcodeSuccess)
}
