package dnsserver

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const testTSIGSecret = "c2VjcmV0IGtleSBmb3IgdGVzdHMgb25seSwgMzIgYnl0ZXM=" // base64 of a test-only secret

// startUDPAndTCP serves s on a UDP socket with ServeUDP and, on the same
// port number, TCP through miekg's server with ServeDNS as the handler. It
// returns "127.0.0.1:port"; cleanup stops both and checks ServeUDP's exit.
func startUDPAndTCP(t *testing.T, s *Server) string {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatalf("no port free for both UDP and TCP on 127.0.0.1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	udpDone := make(chan error, 1)
	go func() { udpDone <- s.ServeUDP(ctx, pc) }()
	tcp := &dns.Server{Listener: l, Handler: s, TsigProvider: s.tsig}
	tcpDone := make(chan error, 1)
	go func() { tcpDone <- tcp.ActivateAndServe() }()
	t.Cleanup(func() {
		cancel()
		if err := <-udpDone; err != nil {
			t.Errorf("ServeUDP returned %v after its context ended, want nil", err)
		}
		pc.Close()
		_ = tcp.Shutdown()
		<-tcpDone
	})
	return pc.LocalAddr().String()
}

func TestServeUDPWithClients(t *testing.T) {
	s := New(Config{TSIG: map[string]string{"xfr-key.": testTSIGSecret}, TSIGAlgs: map[string]string{"xfr-key.": dns.HmacSHA256}})
	if err := s.SetZone(loadTestZone(t, "example.org.", testZoneText+bigZoneText(), 2024010101), Overlay{}); err != nil {
		t.Fatalf("SetZone: %v", err)
	}
	addr := startUDPAndTCP(t, s)

	t.Run("miekg client", func(t *testing.T) {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		for _, tc := range []struct {
			name  string
			qtype uint16
			rcode int
			n     int
			tc    bool
		}{
			{"www.example.org.", dns.TypeA, dns.RcodeSuccess, 2, false},
			{"nope.example.org.", dns.TypeA, dns.RcodeNameError, 0, false},
			{"www.example.net.", dns.TypeA, dns.RcodeRefused, 0, false},
			{"big.example.org.", dns.TypeTXT, dns.RcodeSuccess, 0, true},
			{"alias.example.org.", dns.TypeNAPTR, dns.RcodeSuccess, 1, false},
			{"www.example.org.", dns.TypeMAILA, dns.RcodeNotImplemented, 0, false}, // slow path
		} {
			m := new(dns.Msg)
			m.SetQuestion(tc.name, tc.qtype)
			r, _, err := c.Exchange(m, addr)
			if err != nil {
				t.Fatalf("Exchange(%s): %v", tc.name, err)
			}
			if r.Rcode != tc.rcode || len(r.Answer) != tc.n || r.Truncated != tc.tc {
				t.Errorf("Exchange(%s %s) = %s, %d answers, TC %v; want %s, %d, %v", tc.name, dns.TypeToString[tc.qtype],
					dns.RcodeToString[r.Rcode], len(r.Answer), r.Truncated, dns.RcodeToString[tc.rcode], tc.n, tc.tc)
			}
		}
		m := new(dns.Msg)
		m.SetQuestion("big.example.org.", dns.TypeTXT)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(m, addr)
		if err != nil || len(r.Answer) != 12 || r.Truncated {
			t.Errorf("Exchange(big TXT over TCP) = %v, %v; want 12 records, no TC", r, err)
		}
	})

	t.Run("tsig", func(t *testing.T) {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second, TsigSecret: map[string]string{"xfr-key.": testTSIGSecret}}
		m := new(dns.Msg)
		m.SetQuestion("www.example.org.", dns.TypeA)
		m.SetTsig("xfr-key.", dns.HmacSHA256, 300, time.Now().Unix())
		// The client verifies the answer's signature.
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatalf("signed Exchange: %v", err)
		}
		if r.IsTsig() == nil || len(r.Answer) != 2 {
			t.Errorf("signed answer %v, want two records and a TSIG", r)
		}

		// An unknown key: NOTAUTH with BADKEY, unsigned.
		bad := new(dns.Msg)
		bad.SetQuestion("www.example.org.", dns.TypeA)
		bad.SetTsig("other-key.", dns.HmacSHA256, 300, time.Now().Unix())
		raw, _, err := dns.TsigGenerate(bad, testTSIGSecret, "", false)
		if err != nil {
			t.Fatal(err)
		}
		got := exchangeRaw(t, addr, raw)
		if got.Rcode != dns.RcodeNotAuth || got.IsTsig() == nil || got.IsTsig().Error != dns.RcodeBadKey || got.IsTsig().MAC != "" {
			t.Errorf("answer to an unknown key = %v, want NOTAUTH with an unsigned BADKEY TSIG", got)
		}
		// A wrong signature: BADSIG.
		bad.Extra = nil
		bad.SetTsig("xfr-key.", dns.HmacSHA256, 300, time.Now().Unix())
		raw, _, err = dns.TsigGenerate(bad, "d3Jvbmcgc2VjcmV0", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if got := exchangeRaw(t, addr, raw); got.Rcode != dns.RcodeNotAuth || got.IsTsig() == nil || got.IsTsig().Error != dns.RcodeBadSig {
			t.Errorf("answer to a bad signature = %v, want NOTAUTH with BADSIG", got)
		}
	})

	t.Run("dig", func(t *testing.T) {
		dig, err := exec.LookPath("dig")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("dig is not installed; CI must have it (.ci/run installs dnsutils)")
			}
			t.Skip("dig is not installed (apt-get install dnsutils); skipping the dig checks")
		}
		host, port, _ := net.SplitHostPort(addr)
		run := func(args ...string) string {
			t.Helper()
			args = append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
			out, err := exec.Command(dig, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		out := run("WWW.example.org", "A", "+norec")
		for _, want := range []string{"status: NOERROR", "flags: qr aa;", "192.0.2.10", "192.0.2.11", "WWW.example.org.\t\tIN\tA"} {
			if !strings.Contains(out, want) {
				t.Errorf("dig WWW.example.org A +norec: output lacks %q:\n%s", want, out)
			}
		}
		if out := run("nope.example.org", "A"); !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, "flags: qr aa rd;") {
			t.Errorf("dig nope.example.org: want NXDOMAIN with qr aa rd and no ra:\n%s", out)
		}
		if out := run("www.example.net", "A"); !strings.Contains(out, "status: REFUSED") {
			t.Errorf("dig www.example.net: want REFUSED:\n%s", out)
		}
		// EDNS: our buffer size; then TC over UDP and dig's retry over TCP.
		if out := run("www.example.org", "A", "+edns=0", "+dnssec"); !strings.Contains(out, "udp: 1232") || !strings.Contains(out, "flags: do;") {
			t.Errorf("dig +dnssec: want our OPT with udp 1232 and the DO bit:\n%s", out)
		}
		if out := run("www.example.org", "A", "+edns=1", "+noednsnegotiation"); !strings.Contains(out, "status: BADVERS") {
			t.Errorf("dig +edns=1: want BADVERS:\n%s", out)
		}
		if out := run("huge.example.org", "TXT", "+noedns", "+ignore"); !strings.Contains(out, " tc") {
			t.Errorf("dig huge TXT +ignore: want TC over UDP:\n%s", out)
		}
		out = run("huge.example.org", "TXT", "+noedns")
		if !strings.Contains(out, "ANSWER: 30") || !strings.Contains(out, "(TCP)") {
			t.Errorf("dig huge TXT: want the full answer after the TCP retry:\n%s", out)
		}
		if out := run("example.org", "ANY"); !strings.Contains(out, "ANSWER: 1,") {
			t.Errorf("dig ANY: want one RRset (RFC 8482):\n%s", out)
		}
	})
}

// exchangeRaw sends raw over UDP to addr and returns the answer.
func exchangeRaw(t *testing.T, addr string, raw []byte) *dns.Msg {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack answer: %v", err)
	}
	return m
}

// TestServeUDPStops checks that ServeUDP returns nil once its context ends,
// also while it waits for a packet.
func TestServeUDPStops(t *testing.T) {
	s := newTestServer(t, "")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(ctx, pc) }()
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, pc.LocalAddr().String()); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeUDP = %v after cancel, want nil", err)
	}
}

// TestServeUDPAllocs checks that a query answered by the fast path costs no
// allocation anywhere in the process: socket read, lookup, socket write
// (and the client's side, which uses a connected UDP socket).
func TestServeUDPAllocs(t *testing.T) {
	if allocs := serveUDPAllocs(t, "127.0.0.1:0", net.IPv4(127, 0, 0, 1)); allocs >= 1 {
		t.Errorf("%v allocations per query through ServeUDP, want 0", allocs)
	}
}

// serveUDPAllocs serves UDP on listen and returns the allocations per
// query of a connected client asking through dst (the server's port).
// AllocsPerRun counts every goroutine; a rare runtime allocation must not
// fail a test, one per query would.
func serveUDPAllocs(t *testing.T, listen string, dst net.IP) float64 {
	t.Helper()
	c := serveUDPClient(t, listen, dst)
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := testQuery{name: "www.example.org.", qtype: dns.TypeA, edns: 1232}.msg().Pack()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	var rerr error
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := c.Write(req); err != nil {
			rerr = err
		}
		if _, err := c.Read(buf); err != nil {
			rerr = err
		}
	})
	if rerr != nil {
		t.Fatalf("exchange: %v", rerr)
	}
	return allocs
}
