package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// TestOverlayEmptyName checks that a name the overlay lists as empty (a
// role with no holder) answers NODATA, through both paths, and that a
// name with records is not made empty.
func TestOverlayEmptyName(t *testing.T) {
	s := newTestServer(t, "")
	ov := Overlay{TTL: 5, Records: testRRs(t, "db.example.org. 0 IN A 192.0.2.9"), Empty: []string{"vip.example.org.", "db.example.org."}}
	if err := s.SetOverlay("example.org.", ov); err != nil {
		t.Fatalf("SetOverlay: %v", err)
	}
	tests := []struct {
		name    string
		rcode   int
		answers int
	}{
		{"vip.example.org.", dns.RcodeSuccess, 0},
		{"db.example.org.", dns.RcodeSuccess, 1},
		{"nosuch.example.org.", dns.RcodeNameError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testQuery{name: tt.name, qtype: dns.TypeA}.msg()
			rec := askSlow(t, s, m, false)
			if rec.msg.Rcode != tt.rcode || len(rec.msg.Answer) != tt.answers {
				t.Fatalf("ServeDNS(%s A) = %s with %d answers, want %s with %d", tt.name,
					dns.RcodeToString[rec.msg.Rcode], len(rec.msg.Answer), dns.RcodeToString[tt.rcode], tt.answers)
			}
			if tt.answers == 0 && (len(rec.msg.Ns) != 1 || rec.msg.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("ServeDNS(%s A): authority %v, want the SOA", tt.name, rec.msg.Ns)
			}
			if f, _, res := askFast(t, s, m); res == fastDone && (f.Rcode != tt.rcode || len(f.Answer) != tt.answers) {
				t.Errorf("fast path (%s A) = %s with %d answers, want %s with %d", tt.name,
					dns.RcodeToString[f.Rcode], len(f.Answer), dns.RcodeToString[tt.rcode], tt.answers)
			}
		})
	}
}
