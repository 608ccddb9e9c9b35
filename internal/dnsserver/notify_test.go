package dnsserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// secondary is a fake secondary server on loopback UDP that records the
// NOTIFY messages it gets. It drops the first `drop` of them and answers the
// others with rcode, signed when the request was.
type secondary struct {
	mu     sync.Mutex
	got    []*dns.Msg
	status []error // TsigStatus of each request
	drop   int
	rcode  int
	addr   string
}

func startSecondary(t *testing.T, drop, rcode int, secrets map[string]string) *secondary {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	sec := &secondary{drop: drop, rcode: rcode, addr: pc.LocalAddr().String()}
	srv := &dns.Server{PacketConn: pc, TsigSecret: secrets, Handler: sec,
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return sec
}

func (s *secondary) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.mu.Lock()
	s.got = append(s.got, r)
	s.status = append(s.status, w.TsigStatus())
	n := len(s.got)
	s.mu.Unlock()
	if n <= s.drop {
		return
	}
	m := new(dns.Msg)
	m.SetRcode(r, s.rcode)
	if t := r.IsTsig(); t != nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	}
	_ = w.WriteMsg(m)
}

func (s *secondary) received() ([]*dns.Msg, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*dns.Msg(nil), s.got...), append([]error(nil), s.status...)
}

func TestNotifyAllSigned(t *testing.T) {
	keys, algs := testKeys()
	sec1 := startSecondary(t, 0, dns.RcodeSuccess, keys)
	sec2 := startSecondary(t, 0, dns.RcodeSuccess, keys)
	src := &fakeSource{zones: map[string]*Zone{"example.org.": loadTestZone(t, "example.org.", xfrZoneText, 3)}}
	s := New(Config{Source: src, TSIG: keys, TSIGAlgs: algs, Notify: []string{sec1.addr, sec2.addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.NotifyAll(ctx, "Example.ORG", 4); err != nil {
		t.Fatalf("NotifyAll: %v", err)
	}
	for _, sec := range []*secondary{sec1, sec2} {
		got, status := sec.received()
		if len(got) != 1 {
			t.Fatalf("secondary %s got %d NOTIFY, want 1", sec.addr, len(got))
		}
		m := got[0]
		if m.Opcode != dns.OpcodeNotify || len(m.Question) != 1 || m.Question[0].Name != "example.org." || m.Question[0].Qtype != dns.TypeSOA {
			t.Errorf("NOTIFY = %v, want opcode NOTIFY for example.org. SOA", m)
		}
		if len(m.Answer) != 1 || m.Answer[0].(*dns.SOA).Serial != 4 {
			t.Errorf("NOTIFY answer = %v, want the SOA at serial 4", m.Answer)
		}
		// keySHA1 < keySHA256 < keySHA512 in name order: "xfr-key-1." is first.
		if ts := m.IsTsig(); ts == nil || ts.Hdr.Name != keySHA1 || status[0] != nil {
			t.Errorf("NOTIFY TSIG = %v, status %v; want signed with %s and verified", ts, status[0], keySHA1)
		}
	}
}

func TestNotifyAllUnsignedWithoutKeys(t *testing.T) {
	sec := startSecondary(t, 0, dns.RcodeSuccess, nil)
	s := New(Config{Notify: []string{sec.addr}})
	if err := s.NotifyAll(context.Background(), "example.org.", 9); err != nil {
		t.Fatalf("NotifyAll: %v", err)
	}
	got, _ := sec.received()
	if len(got) != 1 || got[0].IsTsig() != nil || len(got[0].Answer) != 0 {
		t.Errorf("NOTIFY without keys or zone = %v, want one unsigned NOTIFY with no answer", got)
	}
}

func TestNotifierRetries(t *testing.T) {
	keys, algs := testKeys()
	for _, tc := range []struct {
		name      string
		drop      int
		rcode     int
		attempts  int
		wantErr   error // nil: success
		wantTries int
	}{
		{"answers at once", 0, dns.RcodeSuccess, 4, nil, 1},
		{"answers the third", 2, dns.RcodeSuccess, 4, nil, 3},
		{"never answers", 100, dns.RcodeSuccess, 3, context.DeadlineExceeded, 3},
		{"refuses: no retry", 0, dns.RcodeRefused, 4, ErrNotifyRefused, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec := startSecondary(t, tc.drop, tc.rcode, keys)
			s := New(Config{TSIG: keys, TSIGAlgs: algs})
			// Short waits where the secondary drops, long ones where it
			// answers: a slow answer must not look like a lost one.
			timeout := 2 * time.Second
			if tc.drop > 0 {
				timeout = 100 * time.Millisecond
			}
			n := notifier{timeout: timeout, attempts: tc.attempts, tsig: s.tsig, key: keySHA256, alg: dns.HmacSHA256}
			err := n.send(context.Background(), sec.addr, s.notifyMsg("example.org.", 5))
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("send = %v, want success", err)
			case tc.wantErr == context.DeadlineExceeded && (err == nil || errors.Is(err, ErrNotifyRefused)):
				t.Errorf("send = %v, want a timeout error", err)
			case tc.wantErr == ErrNotifyRefused && !errors.Is(err, ErrNotifyRefused):
				t.Errorf("send = %v, want %v", err, ErrNotifyRefused)
			}
			// The secondary may still be reading the last datagram.
			var got []*dns.Msg
			for range 100 {
				if got, _ = sec.received(); len(got) >= tc.wantTries {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			// A retry after a drop may cross a slow answer and add one; with
			// nothing dropped or nothing answered the count is exact.
			exact := tc.drop == 0 || tc.drop >= tc.attempts
			if len(got) < tc.wantTries || exact && len(got) != tc.wantTries {
				t.Errorf("secondary got %d NOTIFY, want %d", len(got), tc.wantTries)
			}
			for _, m := range got[1:] {
				if m.Id != got[0].Id {
					t.Errorf("retry has id %d, first had %d: want the same message", m.Id, got[0].Id)
				}
			}
		})
	}
}

// TestNotifierBacksOffWhenRefused sends to a port nothing listens on:
// every attempt fails at once with ECONNREFUSED (Linux reports the ICMP
// port unreachable on the connected socket), and the notifier must still
// wait out each attempt's window before the next one.
func TestNotifierBacksOffWhenRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("relies on Linux reporting ICMP port unreachable to a connected UDP socket")
	}
	port := freeLoopbackPort(t)
	// Long windows, never really waited: a refused attempt returns well
	// inside them.
	const timeout = 10 * time.Second
	var waits []time.Duration
	n := notifier{timeout: timeout, attempts: 3, sleep: func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}}
	s := New(Config{})
	err := n.send(context.Background(), fmt.Sprintf("127.0.0.1:%d", port), s.notifyMsg("example.org.", 5))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("send to a closed port = %v, want ECONNREFUSED", err)
	}
	if len(waits) != n.attempts-1 {
		t.Fatalf("send waited %d times between %d refused attempts, want %d", len(waits), n.attempts, n.attempts-1)
	}
	for i, d := range waits {
		window := timeout << i
		if d <= 0 || d > window {
			t.Errorf("wait after attempt %d = %v, want the rest of its %v window", i+1, d, window)
		}
	}
}

func TestNotifyAllStopsWithContext(t *testing.T) {
	sec := startSecondary(t, 1000, dns.RcodeSuccess, nil)
	s := New(Config{Notify: []string{sec.addr}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.NotifyAll(ctx, "example.org.", 1) }()
	// Wait until the first NOTIFY is out, then cancel: NotifyAll must
	// return without waiting out its retry schedule.
	for range 1000 {
		if got, _ := sec.received(); len(got) > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("NotifyAll after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second): // a guard against a hang, not a timing assertion
		t.Fatal("NotifyAll did not return after its context was canceled")
	}
}

func TestNotifyIncoming(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	for _, tc := range []struct {
		name      string
		zone      string
		key       string
		secret    string
		wantRcode int
	}{
		{"our zone, unsigned", "example.org.", "", "", dns.RcodeSuccess},
		{"our zone, signed", "example.org.", keySHA256, secretSHA256, dns.RcodeSuccess},
		{"our zone, bad signature", "example.org.", keySHA256, wrongSecret, dns.RcodeNotAuth},
		{"another zone", "example.net.", "", "", dns.RcodeNotAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetNotify(tc.zone)
			r := exchange(t, "udp", env.addr, m, tc.key, dns.HmacSHA256, tc.secret)
			if r.Rcode != tc.wantRcode || r.Opcode != dns.OpcodeNotify {
				t.Errorf("NOTIFY %s: rcode %s opcode %d, want %s and NOTIFY", tc.zone, dns.RcodeToString[r.Rcode], r.Opcode, dns.RcodeToString[tc.wantRcode])
			}
			if tc.key != "" && r.IsTsig() == nil {
				t.Errorf("NOTIFY %s: answer to a signed NOTIFY has no TSIG", tc.zone)
			}
		})
	}
}

// freeLoopbackPort returns a port that was free on 127.0.0.1 for both UDP
// and TCP a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free loopback port")
	return 0
}

// knotSerial asks the secondary at addr for the zone's SOA serial and
// whether name has an A record.
func knotSerial(addr, name string) (serial uint32, hasName bool) {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	r, _, err := c.Exchange(new(dns.Msg).SetQuestion("example.org.", dns.TypeSOA), addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return 0, false
	}
	serial = r.Answer[0].(*dns.SOA).Serial
	r, _, err = c.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
	return serial, err == nil && len(r.Answer) == 1
}

// A real secondary (Knot) pulls the zone with a signed AXFR, gets our
// NOTIFY after a change, pulls the change with IXFR and serves it.
func TestKnotSecondary(t *testing.T) {
	knotd := requireTool(t, "knotd")
	knotPort := freeLoopbackPort(t)
	knotAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(knotPort))
	env := startServer(t, Config{TSIG: map[string]string{keySHA256: secretSHA256}, Notify: []string{knotAddr}}, TCPLimits{})
	_, buoyPort, _ := net.SplitHostPort(env.addr)

	dir := t.TempDir()
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
database:
    storage: "%[1]s"
key:
  - id: %[3]s
    algorithm: hmac-sha256
    secret: %[4]s
remote:
  - id: buoy
    address: 127.0.0.1@%[5]s
    key: %[3]s
acl:
  - id: notify_from_buoy
    address: 127.0.0.1
    key: %[3]s
    action: notify
template:
  - id: default
    storage: "%[1]s"
zone:
  - domain: example.org.
    master: buoy
    acl: notify_from_buoy
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
log:
  - target: stderr
    any: info
`, dir, knotPort, strings.TrimSuffix(keySHA256, "."), secretSHA256, buoyPort)
	confPath := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	cmd := exec.CommandContext(ctx, knotd, "-c", confPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start knotd: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("knotd log:\n%s", logs.String())
		}
	})

	// waitFor polls the secondary: Knot works on its own schedule. The
	// bound guards against a hang; it is not a timing assertion.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for range 300 {
			if ok() {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("secondary never %s", what)
	}
	waitFor("served serial 3", func() bool {
		serial, has := knotSerial(knotAddr, "www.example.org.")
		return serial == 3 && has
	})

	z := loadTestZone(t, "example.org.", xfrZoneText+"new IN A 192.0.2.77\n", 4)
	env.src.mu.Lock()
	env.src.zones["example.org."] = z
	env.src.history["example.org."] = append(xfrHistory(t), Diff{
		FromSOA: xfrSOA(t, 3), ToSOA: xfrSOA(t, 4),
		Added: testRRs(t, "new.example.org. 300 IN A 192.0.2.77"),
	})
	env.src.mu.Unlock()
	if err := env.s.SetZone(z, Overlay{}); err != nil {
		t.Fatal(err)
	}
	nctx, ncancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ncancel()
	if err := env.s.NotifyAll(nctx, "example.org.", 4); err != nil {
		t.Fatalf("NotifyAll to knotd: %v", err)
	}
	waitFor("served serial 4 after NOTIFY", func() bool {
		serial, has := knotSerial(knotAddr, "new.example.org.")
		return serial == 4 && has
	})
	if !strings.Contains(logs.String(), "IXFR") {
		t.Errorf("knotd did not pull the change with IXFR; its log:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
