package dnsserver

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// answerLines asks name/qtype both ways, checks that the fast path (when
// it answers) agrees with ServeDNS, and returns the rcode and the answer
// section as lowercase zone-file lines.
func answerLines(t *testing.T, s *Server, name string, qtype uint16) (string, []string) {
	t.Helper()
	m := testQuery{name: name, qtype: qtype}.msg()
	slow := askSlow(t, s, m, false).msg
	lines := func(m *dns.Msg) (string, []string) {
		var out []string
		for _, l := range rrStrings(m.Answer) {
			out = append(out, strings.ToLower(l))
		}
		return dns.RcodeToString[m.Rcode], out
	}
	rcode, got := lines(slow)
	if f, _, res := askFast(t, s, m); res == fastDone {
		frc, fgot := lines(f)
		if frc != rcode || !slices.Equal(fgot, got) {
			t.Errorf("%s %s: fast path %s %q, ServeDNS %s %q", name, dns.TypeToString[qtype], frc, fgot, rcode, got)
		}
	}
	return rcode, got
}

func TestOverlay(t *testing.T) {
	s := newTestServer(t, "")
	ov := Overlay{TTL: 5, Records: testRRs(t,
		"leader.example.org. 0 IN A 192.0.2.5",
		"pi2.nodes.example.org. 0 IN A 192.0.2.7",
		"pi2.nodes.example.org. 0 IN AAAA 2001:db8::7",
		"mail.example.org. 30 IN A 192.0.2.26",
		// Ignored: the apex, NS, a wildcard, below a delegation, outside.
		"example.org. 0 IN A 192.0.2.250",
		"nodes.example.org. 0 IN NS ns1.example.org.",
		"*.nodes.example.org. 0 IN A 192.0.2.251",
		"x.sub.example.org. 0 IN A 192.0.2.252",
		"leader.example.net. 0 IN A 192.0.2.253",
	)}
	before := s.cat.Load().zones["example.org."]
	if err := s.SetOverlay("example.org.", ov); err != nil {
		t.Fatalf("SetOverlay: %v", err)
	}
	after := s.cat.Load().zones["example.org."]
	if after.base != before.base {
		t.Errorf("SetOverlay compiled the zone's own records again")
	}
	// The overlay layer holds its 3 names, the empty non-terminal "nodes",
	// and the one base name whose answer depends on them: web (CNAME
	// leader), and the apex, whose MX answer carries mail's address.
	var keys []string
	for k := range after.over {
		keys = append(keys, keyName(k))
	}
	slices.Sort(keys)
	wantKeys := []string{"example.org.", "leader.example.org.", "mail.example.org.", "nodes.example.org.", "pi2.nodes.example.org.", "web.example.org."}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("overlay layer %q, want %q", keys, wantKeys)
	}

	tests := []struct {
		name   string
		qtype  uint16
		rcode  string
		answer []string
	}{
		{"leader.example.org.", dns.TypeA, "NOERROR", []string{"leader.example.org. 5 in a 192.0.2.5"}},
		{"pi2.nodes.example.org.", dns.TypeAAAA, "NOERROR", []string{"pi2.nodes.example.org. 5 in aaaa 2001:db8::7"}},
		{"PI2.Nodes.Example.Org.", dns.TypeA, "NOERROR", []string{"pi2.nodes.example.org. 5 in a 192.0.2.7"}},
		{"nodes.example.org.", dns.TypeA, "NOERROR", nil},
		{"pi3.nodes.example.org.", dns.TypeA, "NXDOMAIN", nil},
		{"web.example.org.", dns.TypeA, "NOERROR", []string{"web.example.org. 300 in cname leader.example.org.", "leader.example.org. 5 in a 192.0.2.5"}},
		{"mail.example.org.", dns.TypeA, "NOERROR", []string{"mail.example.org. 30 in a 192.0.2.26"}},
		{"example.org.", dns.TypeA, "NOERROR", []string{"example.org. 300 in a 192.0.2.1"}},
		{"x.sub.example.org.", dns.TypeA, "NOERROR", nil}, // referral
	}
	for _, tc := range tests {
		rcode, got := answerLines(t, s, tc.name, tc.qtype)
		if rcode != tc.rcode || !slices.Equal(got, tc.answer) {
			t.Errorf("%s %s = %s %q, want %s %q", tc.name, dns.TypeToString[tc.qtype], rcode, got, tc.rcode, tc.answer)
		}
	}
	m := testQuery{name: "example.org.", qtype: dns.TypeMX}.msg()
	if got := rrStrings(askSlow(t, s, m, false).msg.Extra); !slices.Equal(got, []string{"mail.example.org. 30 IN A 192.0.2.26"}) {
		t.Errorf("MX additional %q, want the overlay's address of mail", got)
	}

	// A new overlay replaces the old one entirely.
	if err := s.SetOverlay("example.org.", Overlay{TTL: 5, Records: testRRs(t, "leader.example.org. 0 IN A 192.0.2.6")}); err != nil {
		t.Fatalf("SetOverlay: %v", err)
	}
	for _, tc := range []struct {
		name   string
		rcode  string
		answer []string
	}{
		{"web.example.org.", "NOERROR", []string{"web.example.org. 300 in cname leader.example.org.", "leader.example.org. 5 in a 192.0.2.6"}},
		{"pi2.nodes.example.org.", "NXDOMAIN", nil},
		{"nodes.example.org.", "NXDOMAIN", nil},
		{"mail.example.org.", "NOERROR", []string{"mail.example.org. 300 in a 192.0.2.25"}},
	} {
		rcode, got := answerLines(t, s, tc.name, dns.TypeA)
		if rcode != tc.rcode || !slices.Equal(got, tc.answer) {
			t.Errorf("after the change: %s A = %s %q, want %s %q", tc.name, rcode, got, tc.rcode, tc.answer)
		}
	}
	if err := s.SetOverlay("example.com.", ov); !errors.Is(err, ErrUnknownZone) {
		t.Errorf("SetOverlay(example.com.) = %v, want ErrUnknownZone", err)
	}
}

// TestOverlayGlue checks the case the cluster zone lives on: the apex NS
// names are node names, whose addresses only the overlay has.
func TestOverlayGlue(t *testing.T) {
	s := New(Config{})
	z := loadTestZone(t, "buoy.internal.", `
$ORIGIN buoy.internal.
@ 60 IN SOA pi1.nodes hostmaster 1 60 60 600 5
@ 60 IN NS pi1.nodes
@ 60 IN NS pi2.nodes
`, 7)
	ov := Overlay{TTL: 5, Records: testRRs(t, "pi1.nodes.buoy.internal. 0 IN A 192.0.2.1", "pi2.nodes.buoy.internal. 0 IN A 192.0.2.2")}
	if err := s.SetZone(z, ov); err != nil {
		t.Fatalf("SetZone: %v", err)
	}
	m := testQuery{name: "buoy.internal.", qtype: dns.TypeNS}.msg()
	want := []string{"pi1.nodes.buoy.internal. 5 IN A 192.0.2.1", "pi2.nodes.buoy.internal. 5 IN A 192.0.2.2"}
	for _, got := range answersBothWays(t, s, m) {
		if extra := rrStrings(got.Extra); !slices.Equal(extra, want) {
			t.Errorf("NS additional %q, want %q", extra, want)
		}
	}
	m = testQuery{name: "buoy.internal.", qtype: dns.TypeSOA}.msg()
	for _, got := range answersBothWays(t, s, m) {
		if len(got.Answer) != 1 || got.Answer[0].(*dns.SOA).Serial != 7 {
			t.Errorf("SOA %v, want serial 7 from the Zone", got.Answer)
		}
	}
}

func TestZones(t *testing.T) {
	s := newTestServer(t, "")
	net := loadTestZone(t, "example.net.", `
$ORIGIN example.net.
@   300 IN SOA ns1 hostmaster 1 7200 3600 1209600 60
@   300 IN NS  ns1.example.org.
www 300 IN A   192.0.2.80
`, 1)
	child := loadTestZone(t, "Child.Example.Org.", `
$ORIGIN child.example.org.
@    300 IN SOA ns1 hostmaster 1 7200 3600 1209600 60
@    300 IN NS  ns1.example.org.
host 300 IN A   192.0.2.90
`, 1)

	if _, got := answerLines(t, s, "ext.example.org.", dns.TypeA); len(got) != 1 {
		t.Fatalf("ext A = %q before example.net is ours, want the CNAME alone", got)
	}
	if err := s.SetZone(net, Overlay{}); err != nil {
		t.Fatalf("SetZone(example.net.): %v", err)
	}
	m := testQuery{name: "ext.example.org.", qtype: dns.TypeA}.msg()
	if _, _, res := askFast(t, s, m); res != fastSlow {
		t.Errorf("fast path = %v for a chain into another of our zones, want the slow path", res)
	}
	want := []string{"ext.example.org. 300 in cname www.example.net.", "www.example.net. 300 in a 192.0.2.80"}
	if _, got := answerLines(t, s, "ext.example.org.", dns.TypeA); !slices.Equal(got, want) {
		t.Errorf("ext A = %q, want the chain continued in example.net: %q", got, want)
	}

	if err := s.SetZone(child, Overlay{}); err != nil {
		t.Fatalf("SetZone(child): %v", err)
	}
	if _, got := answerLines(t, s, "host.child.example.org.", dns.TypeA); !slices.Equal(got, []string{"host.child.example.org. 300 in a 192.0.2.90"}) {
		t.Errorf("host.child A = %q, want the child zone's answer", got)
	}
	if origins := s.Zones(); len(origins) != 3 {
		t.Errorf("Zones() = %q, want 3 zones", origins)
	}

	// A reload drops what the new version no longer has.
	smaller := loadTestZone(t, "example.org.", strings.Replace(testZoneText, "www      IN A   192.0.2.11\n", "", 1), 2024010102)
	if err := s.SetZone(smaller, Overlay{}); err != nil {
		t.Fatalf("SetZone(smaller): %v", err)
	}
	if _, got := answerLines(t, s, "www.example.org.", dns.TypeA); !slices.Equal(got, []string{"www.example.org. 300 in a 192.0.2.10"}) {
		t.Errorf("www A after reload = %q, want one record", got)
	}

	// A broken zone is refused and the last good one keeps serving.
	for _, bad := range []*Zone{
		{Origin: "example.org.", Records: testRRs(t, "www.example.org. 300 IN A 192.0.2.1")},
		{Origin: "example.org.", Records: testRRs(t, "example.org. 300 IN SOA a. b. 1 2 3 4 5", "www.example.com. 300 IN A 192.0.2.1")},
	} {
		if err := s.SetZone(bad, Overlay{}); !errors.Is(err, ErrBadZone) {
			t.Errorf("SetZone(%v) = %v, want ErrBadZone", bad.Records, err)
		}
	}
	if rcode, _ := answerLines(t, s, "www.example.org.", dns.TypeA); rcode != "NOERROR" {
		t.Errorf("www A after a refused zone = %s, want the old zone's answer", rcode)
	}

	s.DropZone("EXAMPLE.NET")
	if rcode, _ := answerLines(t, s, "www.example.net.", dns.TypeA); rcode != "REFUSED" {
		t.Errorf("www.example.net A after DropZone = %s, want REFUSED", rcode)
	}
	if _, got := answerLines(t, s, "ext.example.org.", dns.TypeA); len(got) != 1 {
		t.Errorf("ext A = %q after example.net is dropped, want the CNAME alone", got)
	}
}

// TestConcurrentChanges queries both paths while zones and overlays change
// underneath (run with -race): readers never see a half-built view.
func TestConcurrentChanges(t *testing.T) {
	s := newTestServer(t, "")
	z := loadTestZone(t, "example.org.", testZoneText, 2)
	reqs := make([][]byte, 0, 3)
	for _, q := range []testQuery{
		{name: "www.example.org.", qtype: dns.TypeA},
		{name: "web.example.org.", qtype: dns.TypeA},
		{name: "pi1.nodes.example.org.", qtype: dns.TypeA, edns: 1232},
	} {
		b, err := q.msg().Pack()
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, b)
	}
	done := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			out := make([]byte, udpSize)
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				for _, req := range reqs {
					if n, res := s.answerFast(req, out); res == fastDone {
						if err := new(dns.Msg).Unpack(out[:n]); err != nil {
							errs <- err
							return
						}
					}
					m := new(dns.Msg)
					_ = m.Unpack(req)
					s.ServeDNS(&queryRecorder{}, m)
				}
			}
		}()
	}
	for i := range 50 {
		ov := Overlay{TTL: 5, Records: testRRs(t, "leader.example.org. 0 IN A 192.0.2.5", "pi1.nodes.example.org. 0 IN A 192.0.2.9")}
		var err error
		switch i % 3 {
		case 0:
			err = s.SetZone(z, ov)
		case 1:
			err = s.SetOverlay("example.org.", Overlay{})
		case 2:
			s.DropZone("example.org.")
			err = s.SetZone(z, Overlay{})
		}
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	close(done)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("fast answer during changes does not unpack: %v", err)
		}
	}
}
