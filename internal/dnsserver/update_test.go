package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// updRRs parses records in zone-file text for an update message.
func updRRs(t *testing.T, lines ...string) []dns.RR { return testRRs(t, lines...) }

// updDesc describes a record as the state machine gets it: zone-file text,
// or "name ttl class type" for a record without rdata.
func updDesc(rr dns.RR) string {
	h := rr.Header()
	if h.Rdlength == 0 {
		return fmt.Sprintf("%s %d %s %s", h.Name, h.Ttl, dns.ClassToString[h.Class], dns.TypeToString[h.Rrtype])
	}
	return rrString(rr)
}

func TestUpdate(t *testing.T) {
	keys, algs := testKeys()
	for _, tc := range []struct {
		name        string
		build       func(t *testing.T, m *dns.Msg)
		zone        string
		key, secret string
		srcRcode    int
		srcErr      error
		wantRcode   int
		wantTSIGErr uint16 // for NOTAUTH answers
		wantPrereq  []string
		wantUpdates []string
	}{
		{
			name: "signed: every kind of prerequisite and change",
			build: func(t *testing.T, m *dns.Msg) {
				m.NameUsed(updRRs(t, "www.example.org. 0 IN A 192.0.2.1"))
				m.NameNotUsed(updRRs(t, "new.example.org. 0 IN A 192.0.2.1"))
				m.RRsetUsed(updRRs(t, "ns1.example.org. 0 IN A 192.0.2.1"))
				m.RRsetNotUsed(updRRs(t, "www.example.org. 0 IN AAAA ::1"))
				m.Used(updRRs(t, "www.example.org. 0 IN A 192.0.2.11"))
				m.Insert(updRRs(t, "new.example.org. 300 IN A 192.0.2.99"))
				m.RemoveRRset(updRRs(t, "txt.example.org. 0 IN TXT \"x\""))
				m.RemoveName(updRRs(t, "old.example.org. 0 IN A 192.0.2.1"))
				m.Remove(updRRs(t, "www.example.org. 300 IN A 192.0.2.11"))
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeSuccess,
			wantPrereq: []string{
				"www.example.org. 0 ANY ANY",
				"new.example.org. 0 NONE ANY",
				"ns1.example.org. 0 ANY A",
				"www.example.org. 0 NONE AAAA",
				"www.example.org. 0 IN A 192.0.2.11",
			},
			wantUpdates: []string{
				"new.example.org. 300 IN A 192.0.2.99",
				"txt.example.org. 0 ANY TXT",
				"old.example.org. 0 ANY ANY",
				"www.example.org. 0 NONE A 192.0.2.11",
			},
		},
		{
			name:  "signed with sha512, prerequisite fails in the state machine",
			build: func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.org. 60 IN TXT \"hi\"")) },
			key:   keySHA512, secret: secretSHA512,
			srcRcode:    dns.RcodeYXRrset,
			wantRcode:   dns.RcodeYXRrset,
			wantUpdates: []string{`a.example.org. 60 IN TXT "hi"`},
		},
		{
			name:        "commit fails",
			build:       func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5")) },
			key:         keySHA256,
			secret:      secretSHA256,
			srcErr:      errors.New("no leader"),
			wantRcode:   dns.RcodeServerFailure,
			wantUpdates: []string{"a.example.org. 60 IN A 192.0.2.5"},
		},
		{
			name:      "unsigned",
			build:     func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5")) },
			wantRcode: dns.RcodeRefused,
		},
		{
			name:        "unknown key",
			build:       func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5")) },
			key:         "nobody.",
			secret:      secretSHA256,
			wantRcode:   dns.RcodeNotAuth,
			wantTSIGErr: dns.RcodeBadKey,
		},
		{
			name:        "bad signature",
			build:       func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5")) },
			key:         keySHA256,
			secret:      wrongSecret,
			wantRcode:   dns.RcodeNotAuth,
			wantTSIGErr: dns.RcodeBadSig,
		},
		{
			name:      "record outside the zone",
			build:     func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.net. 60 IN A 192.0.2.5")) },
			key:       keySHA256,
			secret:    secretSHA256,
			wantRcode: dns.RcodeNotZone,
		},
		{
			name:      "prerequisite outside the zone",
			build:     func(t *testing.T, m *dns.Msg) { m.NameUsed(updRRs(t, "example.com. 0 IN A 192.0.2.1")) },
			key:       keySHA256,
			secret:    secretSHA256,
			wantRcode: dns.RcodeNotZone,
		},
		{
			name:      "zone we do not serve",
			zone:      "example.net.",
			build:     func(t *testing.T, m *dns.Msg) { m.Insert(updRRs(t, "a.example.net. 60 IN A 192.0.2.5")) },
			key:       keySHA256,
			secret:    secretSHA256,
			wantRcode: dns.RcodeNotAuth,
		},
		{
			name: "prerequisite with a TTL",
			build: func(t *testing.T, m *dns.Msg) {
				m.Answer = updRRs(t, "www.example.org. 60 IN A 192.0.2.11")
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeFormatError,
		},
		{
			name: "delete RRset with a TTL",
			build: func(t *testing.T, m *dns.Msg) {
				m.Ns = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: "www.example.org.", Rrtype: dns.TypeA, Class: dns.ClassANY, Ttl: 60}}}
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeFormatError,
		},
		{
			name: "add of a meta type",
			build: func(t *testing.T, m *dns.Msg) {
				m.Ns = []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: "www.example.org.", Rrtype: dns.TypeAXFR, Class: dns.ClassINET, Ttl: 60}}}
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeFormatError,
		},
		{
			name: "record of another class",
			build: func(t *testing.T, m *dns.Msg) {
				m.Ns = updRRs(t, "www.example.org. 60 CH TXT \"chaos\"")
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeFormatError,
		},
		{
			name: "zone section of type A",
			build: func(t *testing.T, m *dns.Msg) {
				m.Question[0].Qtype = dns.TypeA
				m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5"))
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeFormatError,
		},
		{
			name: "two zones",
			build: func(t *testing.T, m *dns.Msg) {
				m.Question = append(m.Question, m.Question[0])
				m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5"))
			},
			key: keySHA256, secret: secretSHA256,
			wantRcode: dns.RcodeFormatError,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
			env.src.rcode, env.src.err = tc.srcRcode, tc.srcErr
			zone := tc.zone
			if zone == "" {
				zone = "example.org."
			}
			for _, network := range []string{"udp", "tcp"} {
				m := new(dns.Msg)
				m.SetUpdate(zone)
				tc.build(t, m)
				before := len(env.src.updates())
				alg := algs[tc.key]
				if alg == "" {
					alg = dns.HmacSHA256
				}
				r := exchange(t, network, env.addr, m, tc.key, alg, tc.secret)
				if r.Rcode != tc.wantRcode {
					t.Errorf("%s over %s: rcode = %s, want %s", tc.name, network, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.wantRcode])
				}
				if r.Opcode != dns.OpcodeUpdate || r.Id != m.Id {
					t.Errorf("%s over %s: answer opcode %d id %d, want %d and %d", tc.name, network, r.Opcode, r.Id, dns.OpcodeUpdate, m.Id)
				}
				if tc.wantTSIGErr != 0 {
					if ts := r.IsTsig(); ts == nil || ts.Error != tc.wantTSIGErr {
						t.Errorf("%s over %s: answer TSIG = %v, want error %s", tc.name, network, ts, dns.RcodeToString[int(tc.wantTSIGErr)])
					}
				} else if tc.key != "" && r.IsTsig() == nil {
					t.Errorf("%s over %s: answer is not signed", tc.name, network)
				}
				calls := env.src.updates()[before:]
				wantCalls := 0
				if tc.wantUpdates != nil {
					wantCalls = 1
				}
				if len(calls) != wantCalls {
					t.Fatalf("%s over %s: Source.Update called %d times, want %d", tc.name, network, len(calls), wantCalls)
				}
				if wantCalls == 0 {
					continue
				}
				if calls[0].origin != "example.org." {
					t.Errorf("Source.Update origin = %q, want example.org.", calls[0].origin)
				}
				if !slices.Equal(calls[0].prereq, tc.wantPrereq) || !slices.Equal(calls[0].updates, tc.wantUpdates) {
					t.Errorf("%s over %s: Source.Update got prereq\n%s\nupdates\n%s\nwant prereq\n%s\nupdates\n%s", tc.name, network,
						strings.Join(calls[0].prereq, "\n"), strings.Join(calls[0].updates, "\n"),
						strings.Join(tc.wantPrereq, "\n"), strings.Join(tc.wantUpdates, "\n"))
				}
			}
		})
	}
}

func TestUpdateBadTime(t *testing.T) {
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	m := new(dns.Msg)
	m.SetUpdate("example.org.")
	m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5"))
	m.SetTsig(keySHA256, dns.HmacSHA256, 300, time.Now().Add(-time.Hour).Unix())
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{keySHA256: secretSHA256}}
	r, _, err := c.Exchange(m, env.addr)
	if r == nil {
		t.Fatalf("exchange: %v", err)
	}
	ts := r.IsTsig()
	if r.Rcode != dns.RcodeNotAuth || ts == nil || ts.Error != dns.RcodeBadTime || ts.OtherLen != 6 {
		t.Errorf("update signed an hour ago: rcode %s, TSIG %v; want NOTAUTH, BADTIME with our time", dns.RcodeToString[r.Rcode], ts)
	}
	// err is not checked: miekg refuses to verify any NOTAUTH answer
	// (dns.ErrAuth), though ours is signed; kdig and nsupdate check it.
	_ = err
	if n := len(env.src.updates()); n != 0 {
		t.Errorf("Source.Update called %d times for a stale request", n)
	}
}

// updateRecorder is a dns.ResponseWriter for handler tests without a socket.
type updateRecorder struct {
	status error
	msgs   []*dns.Msg
}

func (r *updateRecorder) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (r *updateRecorder) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
}
func (r *updateRecorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}
func (r *updateRecorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	r.msgs = append(r.msgs, m)
	return len(b), nil
}
func (r *updateRecorder) Close() error        { return nil }
func (r *updateRecorder) TsigStatus() error   { return r.status }
func (r *updateRecorder) TsigTimersOnly(bool) {}
func (r *updateRecorder) Hijack()             {}

// A miekg server with no TSIG provider reports every signature as good; the
// handlers must not believe it when no key is configured.
func TestUpdateSignedButNoKeysConfigured(t *testing.T) {
	src := &fakeSource{}
	s := New(Config{Source: src})
	if err := s.SetZone(loadTestZone(t, "example.org.", xfrZoneText, 3), Overlay{}); err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetUpdate("example.org.")
	m.Insert(updRRs(t, "a.example.org. 60 IN A 192.0.2.5"))
	m.SetTsig(keySHA256, dns.HmacSHA256, 300, time.Now().Unix())
	w := &updateRecorder{}
	s.ServeDNSContext(context.Background(), w, m)
	if len(w.msgs) != 1 || w.msgs[0].Rcode != dns.RcodeNotAuth {
		t.Fatalf("signed update to a server without keys: answers %v, want one NOTAUTH", w.msgs)
	}
	if len(src.updates()) != 0 {
		t.Errorf("Source.Update called for an update nobody could verify")
	}
}

func TestNsupdate(t *testing.T) {
	requireTool(t, "nsupdate")
	keys, algs := testKeys()
	env := startServer(t, Config{TSIG: keys, TSIGAlgs: algs}, TCPLimits{})
	host, port, _ := net.SplitHostPort(env.addr)
	script := fmt.Sprintf(`server %s %s
zone example.org.
prereq yxrrset www.example.org. A
update add new.example.org. 300 IN A 192.0.2.99
update delete txt.example.org. TXT
send
`, host, port)
	key := func(secret string) string {
		return "hmac-sha256:" + strings.TrimSuffix(keySHA256, ".") + ":" + secret
	}
	t.Run("signed", func(t *testing.T) {
		before := len(env.src.updates())
		out, err := runTool(t, script, "nsupdate", "-y", key(secretSHA256), "-t", "5")
		if err != nil {
			t.Fatalf("nsupdate: %v\n%s", err, out)
		}
		calls := env.src.updates()[before:]
		if len(calls) != 1 {
			t.Fatalf("nsupdate: Source.Update called %d times, want 1", len(calls))
		}
		wantPrereq := []string{"www.example.org. 0 ANY A"}
		wantUpdates := []string{"new.example.org. 300 IN A 192.0.2.99", "txt.example.org. 0 ANY TXT"}
		if !slices.Equal(calls[0].prereq, wantPrereq) || !slices.Equal(calls[0].updates, wantUpdates) {
			t.Errorf("nsupdate: Source.Update got %q / %q, want %q / %q", calls[0].prereq, calls[0].updates, wantPrereq, wantUpdates)
		}
	})
	t.Run("source says NXRRSET", func(t *testing.T) {
		env.src.mu.Lock()
		env.src.rcode = dns.RcodeNXRrset
		env.src.mu.Unlock()
		defer func() {
			env.src.mu.Lock()
			env.src.rcode = dns.RcodeSuccess
			env.src.mu.Unlock()
		}()
		out, err := runTool(t, script, "nsupdate", "-y", key(secretSHA256), "-t", "5")
		if err == nil || !strings.Contains(out, "NXRRSET") {
			t.Errorf("nsupdate with a failing prerequisite: err %v, output %q; want NXRRSET", err, out)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		before := len(env.src.updates())
		out, err := runTool(t, script, "nsupdate", "-y", key(wrongSecret), "-t", "5")
		if err == nil {
			t.Errorf("nsupdate with a wrong secret succeeded:\n%s", out)
		}
		if n := len(env.src.updates()) - before; n != 0 {
			t.Errorf("nsupdate with a wrong secret: Source.Update called %d times", n)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		before := len(env.src.updates())
		out, err := runTool(t, script, "nsupdate", "-t", "5")
		if err == nil || !strings.Contains(out, "REFUSED") {
			t.Errorf("unsigned nsupdate: err %v, output %q; want REFUSED", err, out)
		}
		if n := len(env.src.updates()) - before; n != 0 {
			t.Errorf("unsigned nsupdate: Source.Update called %d times", n)
		}
	})
}

// FuzzUpdate feeds raw packets, as UPDATE requests, to the server: it must
// never panic, answer at most once, and hand Source.Update only records
// inside the zone.
func FuzzUpdate(f *testing.F) {
	seed := func(build func(m *dns.Msg)) {
		m := new(dns.Msg)
		m.SetUpdate("example.org.")
		build(m)
		m.SetTsig(keySHA256, dns.HmacSHA256, 300, 1700000000)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		return r
	}
	seed(func(m *dns.Msg) { m.Insert([]dns.RR{rr("a.example.org. 60 IN A 192.0.2.5")}) })
	seed(func(m *dns.Msg) {
		m.NameUsed([]dns.RR{rr("www.example.org. 0 IN A 192.0.2.1")})
		m.RRsetNotUsed([]dns.RR{rr("www.example.org. 0 IN AAAA ::1")})
		m.RemoveName([]dns.RR{rr("old.example.org. 0 IN A 192.0.2.1")})
		m.Remove([]dns.RR{rr("www.example.org. 300 IN A 192.0.2.11")})
	})
	seed(func(m *dns.Msg) { m.Insert([]dns.RR{rr("a.example.net. 60 IN A 192.0.2.5")}) })
	seed(func(m *dns.Msg) {
		m.Insert([]dns.RR{rr(`t.example.org. 60 IN TXT "x" "y"`), rr("m.example.org. 60 IN MX 10 mail.example.org.")})
	})

	keys, algs := testKeys()
	src := &fakeSource{}
	s := New(Config{Source: src, TSIG: keys, TSIGAlgs: algs})
	if err := s.SetZone(loadTestZone(f, "example.org.", xfrZoneText, 3), Overlay{}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) < 12 {
			return
		}
		raw = slices.Clone(raw)
		raw[2] = raw[2]&^0xF8 | dns.OpcodeUpdate<<3 // a request, opcode UPDATE
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			return
		}
		src.mu.Lock()
		src.calls = nil
		src.mu.Unlock()
		w := &updateRecorder{} // TsigStatus nil: as if the signature verified
		s.ServeDNSContext(context.Background(), w, r)
		if len(w.msgs) > 1 {
			t.Fatalf("%d answers to one request", len(w.msgs))
		}
		if len(w.msgs) == 1 && (w.msgs[0].Id != r.Id || !w.msgs[0].Response) {
			t.Fatalf("answer id %d response %v, want id %d and QR", w.msgs[0].Id, w.msgs[0].Response, r.Id)
		}
		for _, c := range src.updates() {
			for _, rr := range slices.Concat(r.Answer, r.Ns) {
				if !dns.IsSubDomain(c.origin, rr.Header().Name) {
					t.Fatalf("Source.Update(%s) got %s, outside the zone", c.origin, rr)
				}
			}
		}
	})
}
