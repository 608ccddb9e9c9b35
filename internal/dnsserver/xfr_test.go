package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TSIG keys of the transfer and update tests, one per algorithm.
const (
	keySHA256    = "xfr-key."
	keySHA512    = "xfr-key-512."
	keySHA1      = "xfr-key-1."
	secretSHA256 = "c2VjcmV0LWZvci10aGUteGZyLWtleS0xMjM0NTY3ODk="
	secretSHA512 = "YW5vdGhlci1zZWNyZXQtZm9yLXNoYTUxMi0xMjM0NTY="
	secretSHA1   = "c2hhMS1zZWNyZXQtMTIzNDU2Nzg5MA=="
	wrongSecret  = "bm90LXRoZS1yaWdodC1zZWNyZXQtYXQtYWxsLTEyMzQ="
)

func testKeys() (map[string]string, map[string]string) {
	return map[string]string{
			keySHA256: secretSHA256,
			keySHA512: secretSHA512,
			keySHA1:   secretSHA1,
		}, map[string]string{
			keySHA256: dns.HmacSHA256,
			keySHA512: dns.HmacSHA512,
			keySHA1:   dns.HmacSHA1,
		}
}

// xfrZoneText is the zone of the transfer tests at serial 3.
const xfrZoneText = `
$ORIGIN example.org.
$TTL 300
@     IN SOA ns1.example.org. hostmaster.example.org. 3 7200 3600 1209600 60
      IN NS  ns1.example.org.
ns1   IN A   192.0.2.53
www   IN A   192.0.2.11
txt   IN TXT "added in serial 3"
`

// xfrSOA returns the SOA of xfrZoneText at serial.
func xfrSOA(t testing.TB, serial uint32) *dns.SOA {
	t.Helper()
	return testRRs(t, fmt.Sprintf("example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. %d 7200 3600 1209600 60", serial))[0].(*dns.SOA)
}

// xfrHistory is the history of xfrZoneText: serial 1 -> 2 renumbered www,
// serial 2 -> 3 added txt.
func xfrHistory(t testing.TB) []Diff {
	return []Diff{
		{
			FromSOA: xfrSOA(t, 1), ToSOA: xfrSOA(t, 2),
			Deleted: testRRs(t, "www.example.org. 300 IN A 192.0.2.10"),
			Added:   testRRs(t, "www.example.org. 300 IN A 192.0.2.11"),
		},
		{
			FromSOA: xfrSOA(t, 2), ToSOA: xfrSOA(t, 3),
			Added: testRRs(t, `txt.example.org. 300 IN TXT "added in serial 3"`),
		},
	}
}

// updateCall is one Source.Update call a fakeSource saw.
type updateCall struct {
	origin          string
	prereq, updates []string
}

// fakeSource is a Source holding zones and their histories in memory. It
// records the updates it is given and answers them with rcode/err.
type fakeSource struct {
	mu      sync.Mutex
	zones   map[string]*Zone
	history map[string][]Diff
	calls   []updateCall
	rcode   int
	err     error
}

func (f *fakeSource) Zone(origin string) *Zone {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.zones[origin]
}

func (f *fakeSource) Changes(origin string, from uint32) ([]Diff, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.history[origin]
	for i, d := range h {
		if d.FromSOA.Serial == from {
			return h[i:], true
		}
	}
	return nil, false
}

func (f *fakeSource) Update(ctx context.Context, origin string, prereq, updates []dns.RR) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := updateCall{origin: origin}
	for _, rr := range prereq {
		c.prereq = append(c.prereq, updDesc(rr))
	}
	for _, rr := range updates {
		c.updates = append(c.updates, updDesc(rr))
	}
	f.calls = append(f.calls, c)
	return f.rcode, f.err
}

func (f *fakeSource) updates() []updateCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// rrString is an RR in zone-file text with tabs as single spaces, so that
// expectations read like zone files.
func rrString(rr dns.RR) string {
	return strings.Join(strings.Fields(rr.String()), " ")
}

// testEnv is a server answering on 127.0.0.1, UDP and TCP on one port.
type testEnv struct {
	s    *Server
	src  *fakeSource
	addr string
}

// startServer serves xfrZoneText (with its history) from cfg on loopback,
// until the test ends.
func startServer(t *testing.T, cfg Config, lim TCPLimits) *testEnv {
	t.Helper()
	src := &fakeSource{
		zones:   map[string]*Zone{"example.org.": loadTestZone(t, "example.org.", xfrZoneText, 3)},
		history: map[string][]Diff{"example.org.": xfrHistory(t)},
	}
	cfg.Source = src
	s := New(cfg)
	if err := s.SetZone(src.zones["example.org."], Overlay{}); err != nil {
		t.Fatalf("SetZone: %v", err)
	}
	env := &testEnv{s: s, src: src}
	env.addr = serveLoopback(t, s, lim)
	return env
}

// serveLoopback runs s on a UDP and a TCP socket of the same loopback port
// until the test ends, and returns their address.
func serveLoopback(t *testing.T, s *Server, lim TCPLimits) string {
	t.Helper()
	var (
		conns []net.PacketConn
		l     net.Listener
		err   error
	)
	for range 20 { // the TCP port may be taken; try another one
		conns, err = ListenUDP("127.0.0.1:0", 2)
		if err != nil {
			t.Fatalf("ListenUDP: %v", err)
		}
		l, err = net.Listen("tcp", conns[0].LocalAddr().String())
		if err == nil {
			break
		}
		for _, c := range conns {
			c.Close()
		}
	}
	if err != nil {
		t.Fatalf("listen tcp: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			if err := s.ServeUDP(ctx, c); err != nil {
				t.Errorf("ServeUDP: %v", err)
			}
		})
	}
	wg.Go(func() {
		if err := s.ServeTCPWith(ctx, l, lim); err != nil {
			t.Errorf("ServeTCP: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return conns[0].LocalAddr().String()
}

// transfer runs an AXFR or IXFR (from serial) with dns.Transfer, signed with
// key when it is not empty, and returns the records and the number of
// messages.
func transfer(t *testing.T, addr string, qtype uint16, from uint32, key, alg, secret string) ([]string, int, error) {
	t.Helper()
	m := new(dns.Msg)
	if qtype == dns.TypeAXFR {
		m.SetAxfr("example.org.")
	} else {
		m.SetIxfr("example.org.", from, "ns1.example.org.", "hostmaster.example.org.")
	}
	tr := &dns.Transfer{ReadTimeout: 5 * time.Second}
	if key != "" {
		m.SetTsig(key, alg, 300, time.Now().Unix())
		tr.TsigSecret = map[string]string{key: secret}
	}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, 0, err
	}
	var (
		rrs  []string
		msgs int
		last error
	)
	for env := range ch {
		msgs++
		if env.Error != nil {
			last = env.Error
			continue
		}
		for _, rr := range env.RR {
			rrs = append(rrs, rrString(rr))
		}
	}
	return rrs, msgs, last
}

func soaLine(serial uint32) string {
	return fmt.Sprintf("example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. %d 7200 3600 1209600 60", serial)
}

func TestAXFRSigned(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	want := []string{
		soaLine(3),
		"example.org. 300 IN NS ns1.example.org.",
		"ns1.example.org. 300 IN A 192.0.2.53",
		"www.example.org. 300 IN A 192.0.2.11",
		`txt.example.org. 300 IN TXT "added in serial 3"`,
		soaLine(3),
	}
	for _, tc := range []struct{ key, alg, secret string }{
		{keySHA256, dns.HmacSHA256, secretSHA256},
		{keySHA512, dns.HmacSHA512, secretSHA512},
		{keySHA1, dns.HmacSHA1, secretSHA1},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			got, _, err := transfer(t, env.addr, dns.TypeAXFR, 0, tc.key, tc.alg, tc.secret)
			if err != nil {
				t.Fatalf("AXFR with %s: %v", tc.key, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("AXFR with %s =\n%s\nwant\n%s", tc.key, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestAXFRLargeZoneSeveralMessages(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	z := loadTestZone(t, "example.org.", xfrZoneText, 3)
	const extra = 3000
	for i := range extra {
		z.Records = append(z.Records, testRRs(t, fmt.Sprintf(`t%d.example.org. 300 IN TXT "%s"`, i, strings.Repeat("x", 60)))...)
	}
	env.src.mu.Lock()
	env.src.zones["example.org."] = z
	env.src.mu.Unlock()

	got, msgs, err := transfer(t, env.addr, dns.TypeAXFR, 0, keySHA256, dns.HmacSHA256, secretSHA256)
	if err != nil {
		t.Fatalf("AXFR: %v", err)
	}
	if len(got) != len(z.Records)+1 {
		t.Errorf("AXFR returned %d records, want %d", len(got), len(z.Records)+1)
	}
	if msgs < 3 {
		t.Errorf("AXFR of %d records came in %d messages, want several", len(got), msgs)
	}
	if got[0] != soaLine(3) || got[len(got)-1] != soaLine(3) {
		t.Errorf("AXFR starts with %q and ends with %q, want the SOA at both ends", got[0], got[len(got)-1])
	}
	if !slices.Contains(got, fmt.Sprintf(`t%d.example.org. 300 IN TXT "%s"`, extra-1, strings.Repeat("x", 60))) {
		t.Errorf("AXFR lacks the last record added")
	}
}

func TestTransferACL(t *testing.T) {
	keys, algs := testKeys()
	for _, tc := range []struct {
		name     string
		acl      []netip.Prefix
		qtype    uint16
		wantErr  bool
		wantRecs int
	}{
		{"AXFR no ACL", nil, dns.TypeAXFR, true, 0},
		{"AXFR other network", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, dns.TypeAXFR, true, 0},
		{"AXFR loopback allowed", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, dns.TypeAXFR, false, 6},
		{"IXFR no ACL", nil, dns.TypeIXFR, true, 0},
		{"IXFR loopback allowed", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, dns.TypeIXFR, false, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs, TransferACL: tc.acl}, TCPLimits{})
			got, _, err := transfer(t, env.addr, tc.qtype, 2, "", "", "")
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), strconv.Itoa(dns.RcodeRefused)) {
					t.Errorf("unsigned transfer from 127.0.0.1 with ACL %v: err = %v, want rcode %d (REFUSED)", tc.acl, err, dns.RcodeRefused)
				}
				return
			}
			if err != nil || len(got) != tc.wantRecs {
				t.Errorf("unsigned transfer from 127.0.0.1 with ACL %v = %d records, %v; want %d records", tc.acl, len(got), err, tc.wantRecs)
			}
		})
	}
}

func TestIXFR(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	axfr := []string{
		soaLine(3),
		"example.org. 300 IN NS ns1.example.org.",
		"ns1.example.org. 300 IN A 192.0.2.53",
		"www.example.org. 300 IN A 192.0.2.11",
		`txt.example.org. 300 IN TXT "added in serial 3"`,
		soaLine(3),
	}
	for _, tc := range []struct {
		name string
		from uint32
		want []string
	}{
		{"two steps", 1, []string{
			soaLine(3),
			soaLine(1), "www.example.org. 300 IN A 192.0.2.10",
			soaLine(2), "www.example.org. 300 IN A 192.0.2.11",
			soaLine(2),
			soaLine(3), `txt.example.org. 300 IN TXT "added in serial 3"`,
			soaLine(3),
		}},
		{"one step", 2, []string{
			soaLine(3),
			soaLine(2),
			soaLine(3), `txt.example.org. 300 IN TXT "added in serial 3"`,
			soaLine(3),
		}},
		{"up to date", 3, []string{soaLine(3)}},
		{"client ahead", 7, []string{soaLine(3)}},
		{"history missing: whole zone", 0, axfr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := transfer(t, env.addr, dns.TypeIXFR, tc.from, keySHA256, dns.HmacSHA256, secretSHA256)
			if err != nil {
				t.Fatalf("IXFR from %d: %v", tc.from, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("IXFR from %d =\n%s\nwant\n%s", tc.from, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestIXFRBrokenHistoryFallsBack(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	env.src.mu.Lock()
	env.src.history["example.org."] = xfrHistory(t)[:1] // stops at serial 2
	env.src.mu.Unlock()
	got, _, err := transfer(t, env.addr, dns.TypeIXFR, 1, keySHA256, dns.HmacSHA256, secretSHA256)
	if err != nil {
		t.Fatalf("IXFR: %v", err)
	}
	if len(got) != 6 || got[0] != soaLine(3) || got[5] != soaLine(3) || got[1] == soaLine(1) {
		t.Errorf("IXFR over a history ending at serial 2 =\n%s\nwant the whole zone", strings.Join(got, "\n"))
	}
}

// exchange sends m (signed with key/secret when key is set) over network
// and returns the answer, also when its TSIG does not verify.
func exchange(t *testing.T, network, addr string, m *dns.Msg, key, alg, secret string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	if key != "" {
		m.SetTsig(key, alg, 300, time.Now().Unix())
		c.TsigSecret = map[string]string{key: secret}
	}
	r, _, err := c.Exchange(m, addr)
	if r == nil {
		t.Fatalf("exchange over %s: %v", network, err)
	}
	return r
}

func TestXFRAnswers(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	ixfr := func(zone string) *dns.Msg {
		m := new(dns.Msg)
		m.SetIxfr(zone, 1, "ns1."+zone, "hostmaster."+zone)
		return m
	}
	axfr := func(zone string) *dns.Msg { return new(dns.Msg).SetAxfr(zone) }
	for _, tc := range []struct {
		name      string
		network   string
		m         *dns.Msg
		key       string
		wantRcode int
		wantSOA   bool
	}{
		{"IXFR over UDP gets the SOA", "udp", ixfr("example.org."), keySHA256, dns.RcodeSuccess, true},
		{"AXFR over UDP", "udp", axfr("example.org."), keySHA256, dns.RcodeNotImplemented, false},
		{"AXFR of another zone", "tcp", axfr("example.net."), keySHA256, dns.RcodeNotAuth, false},
		{"AXFR below the apex", "tcp", axfr("www.example.org."), keySHA256, dns.RcodeNotAuth, false},
		{"IXFR without SOA", "tcp", new(dns.Msg).SetQuestion("example.org.", dns.TypeIXFR), keySHA256, dns.RcodeFormatError, false},
		{"unsigned AXFR of another zone", "tcp", axfr("example.net."), "", dns.RcodeRefused, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, tc.network, env.addr, tc.m, tc.key, dns.HmacSHA256, secretSHA256)
			if r.Rcode != tc.wantRcode {
				t.Errorf("%s: rcode = %s, want %s", tc.name, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.wantRcode])
			}
			gotSOA := len(r.Answer) == 1 && rrString(r.Answer[0]) == soaLine(3)
			if gotSOA != tc.wantSOA {
				t.Errorf("%s: answer = %v, want the SOA alone: %v", tc.name, r.Answer, tc.wantSOA)
			}
			if tc.key != "" && r.IsTsig() == nil {
				t.Errorf("%s: answer to a signed request is not signed", tc.name)
			}
		})
	}
}

// requireTool returns the path of a command-line client, skipping the test
// when it is missing outside CI and failing it in CI.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Daemons live in sbin, which a user's PATH may lack.
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (.ci/run installs it): %v", name, err)
		}
		t.Skipf("%s is not installed (apt-get install knot-dnsutils bind9-dnsutils); the test runs in CI", name)
	}
	return p
}

// runTool runs a client with a deadline and returns its output.
func runTool(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestKdigTransfers(t *testing.T) {
	requireTool(t, "kdig")
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	host, port, _ := net.SplitHostPort(env.addr)
	tsig := "hmac-sha256:" + strings.TrimSuffix(keySHA256, ".") + ":" + secretSHA256
	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"AXFR", []string{"AXFR", "example.org."}, []string{"192.0.2.53", "192.0.2.11", "added in serial 3"}, []string{"192.0.2.10"}},
		{"IXFR", []string{"IXFR=1", "example.org."}, []string{"192.0.2.10", "192.0.2.11", "added in serial 3"}, []string{"192.0.2.53"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"@" + host, "-p", port, "-y", tsig, "+time=5", "+retry=0"}, tc.args...)
			out, err := runTool(t, "", "kdig", args...)
			if err != nil {
				t.Fatalf("kdig %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, w := range append(tc.want, "TSIG") {
				if !strings.Contains(out, w) {
					t.Errorf("kdig %s output lacks %q:\n%s", strings.Join(args, " "), w, out)
				}
			}
			for _, w := range append(tc.notWant, "WARNING", "failed") {
				if strings.Contains(out, w) {
					t.Errorf("kdig %s output has %q:\n%s", strings.Join(args, " "), w, out)
				}
			}
		})
	}
	t.Run("AXFR in several signed messages", func(t *testing.T) {
		big := startServer(t, Config{TSIG: map[string]string{keySHA256: secretSHA256}}, TCPLimits{})
		z := loadTestZone(t, "example.org.", xfrZoneText, 3)
		for i := range 2000 {
			z.Records = append(z.Records, testRRs(t, fmt.Sprintf(`t%d.example.org. 300 IN TXT "%s"`, i, strings.Repeat("x", 60)))...)
		}
		big.src.mu.Lock()
		big.src.zones["example.org."] = z
		big.src.mu.Unlock()
		bhost, bport, _ := net.SplitHostPort(big.addr)
		out, err := runTool(t, "", "kdig", "@"+bhost, "-p", bport, "-y", tsig, "+time=5", "+retry=0", "AXFR", "example.org.")
		if err != nil {
			t.Fatalf("kdig AXFR: %v\n%s", err, out)
		}
		want := fmt.Sprintf("messages, %d records)", len(z.Records)+1)
		if !strings.Contains(out, want) || strings.Contains(out, "(1 messages") || strings.Contains(out, "WARNING") {
			t.Errorf("kdig AXFR of %d records: want several messages, %q and no warning; got the summary:\n%s",
				len(z.Records)+1, want, out[max(0, len(out)-300):])
		}
	})
	t.Run("bad key", func(t *testing.T) {
		bad := "hmac-sha256:" + strings.TrimSuffix(keySHA256, ".") + ":" + wrongSecret
		out, _ := runTool(t, "", "kdig", "@"+host, "-p", port, "-y", bad, "+time=5", "+retry=0", "AXFR", "example.org.")
		if strings.Contains(out, "192.0.2.53") || !strings.Contains(out, "BADSIG") {
			t.Errorf("kdig AXFR with a wrong secret: want BADSIG and no records, got:\n%s", out)
		}
	})
}
